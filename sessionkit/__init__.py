"""sessionkit: the ORM Session's object lifecycle for SQLAlchemy Core applications."""

from .aliasing import AliasedClass, FromStatement, aliased
from .columns import Mapped, MappedColumn, mapped_column
from .declarative import DeclarativeBase, DeclarativeMeta, MappedAsDataclass, declarative_base
from .inspection import History, InstanceInspection, inspect
from .mapping import Mapper, map_imperatively
from .query import Query
from .retry import is_retryable, run_transaction
from .session import Session, make_transient, make_transient_to_detached, sessionmaker
from .state import NO_VALUE
from .transaction import SessionTransaction

__all__ = [
    "NO_VALUE",
    "AliasedClass",
    "DeclarativeBase",
    "DeclarativeMeta",
    "FromStatement",
    "History",
    "InstanceInspection",
    "Mapped",
    "MappedAsDataclass",
    "MappedColumn",
    "Mapper",
    "Query",
    "Session",
    "SessionTransaction",
    "aliased",
    "declarative_base",
    "inspect",
    "is_retryable",
    "make_transient",
    "make_transient_to_detached",
    "map_imperatively",
    "mapped_column",
    "run_transaction",
    "sessionmaker",
]

__version__ = "0.1.0"
