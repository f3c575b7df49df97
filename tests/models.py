"""Model definitions shared by scenario tests, built for either library, and helpers that
create their tables and commit a few rows outside any recording."""

from __future__ import annotations
import __future__

import decimal
import enum
import sys
import types
from pathlib import Path
from typing import Any

from reference import Api
from sqlalchemy import Column, Dialect, ForeignKey, Integer, Numeric, String, TypeDecorator

# -- typed models ----------------------------------------------------------------------------

TYPED_SOURCE = Path(__file__).with_name("models_typed.py")
TYPED_MODULE = "models_typed"
_typed_modules: dict[tuple[str, bool], types.ModuleType] = {}


def typed(api: Api, *, future: bool = True) -> Any:
    """``models_typed.py`` executed as a module of ``api``'s own: its ``DeclarativeBase``,
    ``Mapped``, ``mapped_column`` and ``MappedAsDataclass`` are that library's, so the ORM's
    classes and sessionkit's come from one source text.

    ``future=True`` compiles it with ``from __future__ import annotations`` (each library
    evaluates the annotation strings in that module's namespace), ``future=False`` without
    (the class statement evaluates them).

    Both libraries look string annotations up in ``sys.modules[cls.__module__]``, and the
    four modules are all named ``models_typed`` (so that class reprs, and messages that
    show them, are the same for both libraries): each call makes the returned module the
    one ``sys.modules`` holds. Call ``typed(api)`` right before declaring, not earlier.
    """
    key = (api.name, future)
    module = _typed_modules.get(key)
    if module is None:
        module = types.ModuleType(TYPED_MODULE)
        module.__file__ = str(TYPED_SOURCE)
        module.__dict__["TYPED_NAMES"] = api.typed
        flags = __future__.annotations.compiler_flag if future else 0
        code = compile(
            TYPED_SOURCE.read_text(), str(TYPED_SOURCE), "exec", flags=flags, dont_inherit=True
        )
        sys.modules[TYPED_MODULE] = module
        exec(code, module.__dict__)
        _typed_modules[key] = module
    sys.modules[TYPED_MODULE] = module
    return module


class Color(enum.Enum):
    """An ``enum.Enum`` for ``Mapped[Color]`` (shared by both libraries' typed models)."""

    red = "red"
    green = "green"


class Money:
    """An application class with no SQL type of its own: typed through
    ``type_annotation_map = {Money: MoneyType()}``."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)

    def __repr__(self) -> str:
        return f"Money({self.cents})"


class MoneyType(TypeDecorator[Money]):
    """``Money`` stored as ``NUMERIC(12, 2)``."""

    impl = Numeric(12, 2)
    cache_ok = True

    def process_bind_param(self, value: Money | None, dialect: Dialect) -> decimal.Decimal | None:
        return None if value is None else decimal.Decimal(value.cents) / 100

    def process_result_value(self, value: Any, dialect: Dialect) -> Money | None:
        return None if value is None else Money(int(decimal.Decimal(value) * 100))


# -- Column models ---------------------------------------------------------------------------


def user_model(api: Api, tablename: str = "user_account") -> tuple[Any, Any]:
    """``User(id INTEGER autoincrement, name, fullname)`` and its Base (typed for
    ``api.typed_models``)."""
    if api.typed_models:
        return typed(api).user_model(tablename)  # type: ignore[no-any-return]
    Base = api.declarative_base()

    class User(Base):
        __tablename__ = tablename
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column(String(60))

    return Base, User


def item_model(api: Api) -> tuple[Any, Any]:
    """``Item(id VARCHAR client-assigned, name UNIQUE)`` and its Base (typed for
    ``api.typed_models``)."""
    if api.typed_models:
        return typed(api).item_model()  # type: ignore[no-any-return]
    Base = api.declarative_base()

    class Item(Base):
        __tablename__ = "items"
        id = Column(String(10), primary_key=True)
        name = Column(String(50), unique=True)

    return Base, Item


def parent_child_model(api: Api) -> tuple[Any, Any, Any]:
    """``Parent``, ``Child(parent_id NOT NULL REFERENCES parents)`` and their Base (typed
    for ``api.typed_models``)."""
    if api.typed_models:
        return typed(api).parent_child_model()  # type: ignore[no-any-return]
    Base = api.declarative_base()

    class Parent(Base):
        __tablename__ = "parents"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))

    class Child(Base):
        __tablename__ = "children"
        id = Column(Integer, primary_key=True)
        parent_id = Column(Integer, ForeignKey("parents.id"), nullable=False)
        name = Column(String(30))

    return Base, Parent, Child


def setup_users(
    api: Api, engine: Any, names: tuple[str, ...] = ("sandy", "patrick", "squidward")
) -> Any:
    """Create the table and commit one row per name (ids 1..n) outside any recording."""
    Base, User = user_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([User(name=n, fullname=n.title()) for n in names])
        s.commit()
    return User


def empty_users(api: Api, engine: Any) -> Any:
    """Create the ``user_account`` table of :func:`user_model`, empty."""
    Base, User = user_model(api)
    Base.metadata.create_all(engine)
    return User


def setup_users_table(api: Api, engine: Any, names: tuple[str, ...] = ("a", "b", "c", "d")) -> Any:
    """A ``users`` table (the name docs/behaviour.md uses), one committed row per name, ids 1..n."""
    Base, User = user_model(api, "users")
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([User(name=n, fullname=n.upper()) for n in names])
        s.commit()
    return User


def setup_items(api: Api, engine: Any, rows: tuple[tuple[str, str], ...] = ()) -> Any:
    """The ``items`` table of :func:`item_model` with the committed ``(id, name)`` rows."""
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    if rows:
        with api.Session(engine) as s:
            s.add_all([Item(id=i, name=n) for i, n in rows])
            s.commit()
    return Item
