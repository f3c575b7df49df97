"""``Mapped[]`` and ``mapped_column()``: typed declarations of mapped columns.

Both exist for two readers. A type checker reads ``Mapped[int]`` as a descriptor whose
class access is a Core column expression and whose instance access is an ``int``, the
ORM's typing, with no plugin. The declarative scan reads them at class creation: a
``MappedColumn`` carries the ``Column`` it was given plus the dataclass options of
``MappedAsDataclass`` classes, and is replaced by sessionkit's own descriptor once the
class is mapped. Neither is ever seen on a mapped class afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from sqlalchemy import Column
from sqlalchemy.sql.base import SchemaEventTarget
from sqlalchemy.sql.schema import SchemaConst

from .exc import ArgumentError

if TYPE_CHECKING:
    from sqlalchemy.sql._typing import _TypeEngineArgument
    from sqlalchemy.sql.elements import ColumnElement

_T = TypeVar("_T")


class _Unset:
    """Not given: distinct from ``None``, which is a default value like any other."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DONT_SET"

    def __bool__(self) -> bool:
        return False


# A dataclass ``__init__`` parameter that was not passed: the attribute stays unset (and
# reads as its default), so the column's own default applies at INSERT, as in the ORM.
DONT_SET: Any = _Unset()


class Mapped(Generic[_T]):
    """The annotation of a mapped attribute: ``name: Mapped[str]``.

    On the class the attribute is the Core column (``User.name == "x"``), on an
    instance its value (``user.name`` is a ``str``). ``Mapped[str | None]`` makes the
    column nullable; an annotation alone, without a value, declares the column.
    """

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any) -> Column[_T]: ...

        @overload
        def __get__(self, instance: object, owner: Any) -> _T: ...

        def __get__(self, instance: object | None, owner: Any) -> Column[_T] | _T: ...

        def __set__(self, instance: Any, value: _T | ColumnElement[_T]) -> None: ...

        def __delete__(self, instance: Any) -> None: ...


class MappedColumn(Mapped[_T]):
    """What ``mapped_column()`` returns: a ``Column`` waiting for its class."""

    __slots__ = (
        "column",
        "compare",
        "dataclass_metadata",
        "default",
        "default_factory",
        "explicit_nullable",
        "hash",
        "init",
        "kw_only",
        "repr",
        "sort_order",
    )

    column: Column[Any]

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.init = kw.pop("init", DONT_SET)
        self.repr = kw.pop("repr", DONT_SET)
        self.default = kw.pop("default", DONT_SET)
        self.default_factory = kw.pop("default_factory", DONT_SET)
        self.compare = kw.pop("compare", DONT_SET)
        self.kw_only = kw.pop("kw_only", DONT_SET)
        self.hash = kw.pop("hash", DONT_SET)
        self.dataclass_metadata = kw.pop("dataclass_metadata", DONT_SET)
        self.sort_order: int = kw.pop("sort_order", 0)
        insert_default = kw.pop("insert_default", DONT_SET)
        if insert_default is not DONT_SET:
            kw["default"] = insert_default
        elif self.default is not DONT_SET:
            kw["default"] = self.default
        nullable = kw.get("nullable", SchemaConst.NULL_UNSPECIFIED)
        self.explicit_nullable = nullable not in (None, SchemaConst.NULL_UNSPECIFIED)
        self.column = Column(*args, **kw)

    @property
    def has_dataclass_options(self) -> bool:
        return any(
            v is not DONT_SET
            for v in (self.init, self.repr, self.default_factory, self.compare, self.kw_only)
        )

    def copy(self) -> MappedColumn[_T]:
        """A fresh declaration for another class (a mixin's column is copied per class)."""
        new: MappedColumn[_T] = MappedColumn.__new__(MappedColumn)
        for name in MappedColumn.__slots__:
            setattr(new, name, getattr(self, name))
        new.column = self.column._copy()
        return new

    def __repr__(self) -> str:
        return f"mapped_column({self.column!r})"


# The ORM constructs of mapped_column() that sessionkit has no use for: refused when
# given, because each changes what is loaded or written in a way sessionkit never would.
_REFUSED: dict[str, str] = {
    "deferred": "sessionkit loads every column with its row; drop deferred=",
    "deferred_group": "sessionkit loads every column with its row; drop deferred_group=",
    "deferred_raiseload": "sessionkit loads every column with its row; drop deferred_raiseload=",
    "use_existing_column": "sessionkit does not map class hierarchies onto one table",
    "active_history": (
        "sessionkit keeps no attribute history beyond the value before the first change; "
        "load the old value yourself before a change if you need it"
    ),
}


def mapped_column(
    __name_pos: str | _TypeEngineArgument[Any] | SchemaEventTarget | None = None,
    __type_pos: _TypeEngineArgument[Any] | SchemaEventTarget | None = None,
    /,
    *args: SchemaEventTarget,
    init: bool | _Unset = DONT_SET,
    repr: bool | _Unset = DONT_SET,
    default: Any | None = DONT_SET,
    default_factory: Callable[[], _T] | _Unset = DONT_SET,
    compare: bool | _Unset = DONT_SET,
    kw_only: bool | _Unset = DONT_SET,
    hash: bool | _Unset | None = DONT_SET,
    nullable: bool | Literal[SchemaConst.NULL_UNSPECIFIED] | None = (SchemaConst.NULL_UNSPECIFIED),
    primary_key: bool | None = False,
    deferred: bool | _Unset = DONT_SET,
    deferred_group: str | None = None,
    deferred_raiseload: bool | None = None,
    use_existing_column: bool = False,
    name: str | None = None,
    type_: _TypeEngineArgument[Any] | None = None,
    autoincrement: bool | Literal["auto", "ignore_fk"] = "auto",
    doc: str | None = None,
    key: str | None = None,
    index: bool | None = None,
    unique: bool | None = None,
    info: dict[Any, Any] | None = None,
    onupdate: Any | None = None,
    insert_default: Any | None = DONT_SET,
    server_default: Any | None = None,
    server_onupdate: Any | None = None,
    active_history: bool = False,
    quote: bool | None = None,
    system: bool = False,
    comment: str | None = None,
    sort_order: int | _Unset = DONT_SET,
    dataclass_metadata: Mapping[Any, Any] | _Unset | None = DONT_SET,
    **kw: Any,
) -> MappedColumn[Any]:
    """Declare a mapped column: the ORM's ``mapped_column()``, for sessionkit classes.

    Takes ``Column``'s arguments; the SQL type and NULL-ability may come from the
    ``Mapped[]`` annotation instead. ``init``, ``repr``, ``default``,
    ``default_factory``, ``compare``, ``kw_only`` and ``hash`` shape the generated
    ``__init__`` of ``MappedAsDataclass`` classes.
    """
    given = {
        "deferred": deferred is not DONT_SET and deferred is not False,
        "deferred_group": deferred_group is not None,
        "deferred_raiseload": deferred_raiseload is not None,
        "use_existing_column": use_existing_column,
        "active_history": active_history,
    }
    for option, on in given.items():
        if on:
            raise ArgumentError(
                f"mapped_column({option}=...) is not supported: {_REFUSED[option]}."
            )
    options: dict[str, Any] = {
        "init": init,
        "repr": repr,
        "default": default,
        "default_factory": default_factory,
        "compare": compare,
        "kw_only": kw_only,
        "hash": hash,
        "dataclass_metadata": dataclass_metadata,
        "insert_default": insert_default,
    }
    if sort_order is not DONT_SET:
        options["sort_order"] = sort_order
    positional = [a for a in (__name_pos, __type_pos) if a is not None]
    return MappedColumn(
        *positional,
        *args,
        name=name,
        type_=type_,
        autoincrement=autoincrement,
        doc=doc,
        key=key,
        index=index,
        unique=unique,
        info=info,
        nullable=nullable,
        onupdate=onupdate,
        primary_key=primary_key,
        server_default=server_default,
        server_onupdate=server_onupdate,
        quote=quote,
        system=system,
        comment=comment,
        **options,
        **kw,
    )
