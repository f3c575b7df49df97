"""sessionkit: the ORM Session's object lifecycle for SQLAlchemy Core applications."""

from .aliasing import AliasedClass, FromStatement, aliased
from .asyncretry import run_transaction_async
from .asyncsession import (
    AsyncAttrs,
    AsyncSession,
    AsyncSessionTransaction,
    async_object_session,
    async_sessionmaker,
)
from .columns import Mapped, MappedColumn, mapped_column
from .declarative import DeclarativeBase, DeclarativeMeta, MappedAsDataclass, declarative_base
from .events import MapperEvents, SessionEvents
from .inspection import History, InstanceInspection, inspect
from .mapping import Mapper, map_imperatively
from .objects import make_transient, make_transient_to_detached, object_session
from .query import Query
from .relationships import Relationship, relationship
from .relloading import LoaderOption, joinedload, lazyload, raiseload, selectinload
from .retry import is_retryable, run_transaction
from .scoping import scoped_session
from .session import Session, sessionmaker
from .state import NO_VALUE
from .transaction import FlushContext, SessionTransaction, SessionTransactionOrigin
from .validation import validates

__all__ = [
    "NO_VALUE",
    "AliasedClass",
    "AsyncAttrs",
    "AsyncSession",
    "AsyncSessionTransaction",
    "DeclarativeBase",
    "DeclarativeMeta",
    "FlushContext",
    "FromStatement",
    "History",
    "InstanceInspection",
    "LoaderOption",
    "Mapped",
    "MappedAsDataclass",
    "MappedColumn",
    "Mapper",
    "MapperEvents",
    "Query",
    "Relationship",
    "Session",
    "SessionEvents",
    "SessionTransaction",
    "SessionTransactionOrigin",
    "aliased",
    "async_object_session",
    "async_sessionmaker",
    "declarative_base",
    "inspect",
    "is_retryable",
    "joinedload",
    "lazyload",
    "make_transient",
    "make_transient_to_detached",
    "map_imperatively",
    "mapped_column",
    "object_session",
    "raiseload",
    "relationship",
    "run_transaction",
    "run_transaction_async",
    "scoped_session",
    "selectinload",
    "sessionmaker",
    "validates",
]

__version__ = "0.1.0"
