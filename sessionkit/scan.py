"""The declarative scan: a class body read as a Table and the attribute names of its columns.

A column is declared by a ``Column`` value, a ``mapped_column()`` value or a bare
``Mapped[...]`` annotation; mixins (unmapped bases) contribute copies of theirs. The
order is the ORM's: the class's own attributes as written, then the mixins' typed
attributes, then the mixins' plain ``Column`` ones, then stable-sorted by ``sort_order``.
Anything that looks like a column but cannot become one is refused here, naming the
attribute, so that no value assigned to it is lost.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, MetaData, Table

from . import typemap
from .columns import MappedColumn
from .exc import ArgumentError
from .refusals import LOST, where
from .relationships import Relationship
from .state import MAPPER_ATTR

_MAPPED_HEAD = re.compile(r"\s*(?:\w+\.)*(Mapped|WriteOnlyMapped|DynamicMapped)\s*\[")
_CLASSVAR_HEAD = re.compile(r"\s*(?:\w+\.)*ClassVar\b")


@dataclass
class Declared:
    """One mapped column as the class declares it."""

    name: str
    owner: type
    column: Column[Any]
    mapped: MappedColumn[Any] | None = None  # None for a plain Column
    sort_order: int = 0


@dataclass
class Scan:
    """The columns of one declarative class, in table order."""

    columns: list[Declared] = field(default_factory=list)

    @property
    def attribute_names(self) -> dict[str, str]:
        return {d.column.key: d.name for d in self.columns}


def scan_columns(cls: type, type_map: dict[Any, Any]) -> Scan:
    """Collect the class's and its mixins' columns (copies for mixins), typed and ordered."""
    own: list[Declared] = []
    mixin_typed: list[Declared] = []
    mixin_plain: list[Declared] = []
    seen: set[str] = set()
    owners = [cls, *(b for b in cls.__mro__[1:-1] if MAPPER_ATTR not in b.__dict__)]
    for i, owner in enumerate(owners):
        annotations = typemap.own_annotations(owner)
        for name in _ordered_names(owner, annotations):
            if name in seen or name.startswith("__"):
                continue
            if name not in owner.__dict__ and any(
                isinstance(later.__dict__.get(name), (Column, MappedColumn))
                for later in owners[i + 1 :]
            ):
                continue  # only re-types a base's column, which the base declares
            found = _declared_column(cls, owner, name, annotations.get(name, None), type_map)
            if found is None:
                continue
            seen.add(name)
            if owner is cls:
                own.append(found)
            elif found.mapped is None:
                mixin_plain.append(found)
            else:
                mixin_typed.append(found)
    columns = own + mixin_typed + mixin_plain
    columns.sort(key=lambda d: d.sort_order)
    return Scan(columns)


def _ordered_names(owner: type, annotations: dict[str, Any]) -> list[str]:
    """The body's names as written: assigned ones, with annotation-only ones in place."""
    names: list[str] = []
    pending = list(annotations)
    for name in owner.__dict__:
        if name in annotations:
            while pending and pending[0] != name:
                names.append(pending.pop(0))
            if pending:
                pending.pop(0)
        names.append(name)
    names.extend(pending)
    return names


def _declared_column(
    cls: type, owner: type, name: str, annotation: Any, type_map: dict[Any, Any]
) -> Declared | None:
    value = owner.__dict__.get(name)
    if isinstance(value, Relationship):
        return None  # Mapped[list["Book"]] = relationship(...): not a column
    container, python_type = _mapped_annotation(cls, owner, name, annotation)
    if isinstance(value, Column):
        column = value if owner is cls else value._copy()
        _name_column(column, name)
        return Declared(name, owner, column)
    if isinstance(value, MappedColumn):
        if annotation is not None and container is None and not _is_classvar(annotation):
            raise ArgumentError(
                f"{where(cls, owner, name)} is a mapped_column() annotated "
                f"{_written(annotation)}, which is not Mapped[...]: write "
                f"{name}: Mapped[{_written(annotation)}] = mapped_column(...), or annotate a "
                f"class variable that is not a column with ClassVar[...]."
            )
        mapped = value if owner is cls else value.copy()
    elif container is None:
        return None
    elif value is not None or name in owner.__dict__:
        raise ArgumentError(
            f"{where(cls, owner, name)} is annotated {_written(annotation)} but its value is "
            f"{value!r}, not a column, so {LOST}. Declare the column with "
            f"{name}: Mapped[...] = mapped_column(...) (e.g. mapped_column(default={value!r}))"
            f", or annotate a plain class attribute with ClassVar[...]."
        )
    else:
        mapped = MappedColumn()
    if container is not None and container != "Mapped":
        raise ArgumentError(
            f"{where(cls, owner, name)} is annotated {_written(annotation)}, the ORM's "
            f"collection loader, which sessionkit does not map: {LOST}. Declare a "
            f"Mapped[...] column."
        )
    column = mapped.column
    _name_column(column, name)
    _type_column(cls, owner, name, mapped, python_type, type_map)
    return Declared(name, owner, column, mapped, mapped.sort_order)


def _name_column(column: Column[Any], name: str) -> None:
    """A column declared without a name takes the attribute's (its key too)."""
    if getattr(column, "name", None) is None:
        column.name = name
    if getattr(column, "key", None) is None:
        column.key = column.name


def _mapped_annotation(
    cls: type, owner: type, name: str, annotation: Any
) -> tuple[str | None, Any]:
    """``("Mapped", X)`` for ``Mapped[X]`` (a string evaluated in the module), else (None, None)."""
    if annotation is None:
        return None, None
    if isinstance(annotation, str):
        head = _MAPPED_HEAD.match(annotation)
        if head is None:
            return None, None
        if head.group(1) in typemap.UNSUPPORTED_NAMES:
            return head.group(1), None  # refused by name, whatever it would resolve to
    try:
        resolved = typemap.resolve_annotation(owner, annotation)
    except NameError as err:
        raise ArgumentError(
            f"The annotation {annotation!r} of {where(cls, owner, name)} names something "
            f"that module {owner.__module__!r} does not define ({err}); import the names "
            f"it uses at module level."
        ) from err
    container = typemap.mapped_container(resolved)
    if container is None:
        return None, None
    return container, typemap.mapped_argument(resolved)


def _type_column(
    cls: type,
    owner: type,
    name: str,
    mapped: MappedColumn[Any],
    python_type: Any,
    type_map: dict[Any, Any],
) -> None:
    """Nullability and, where none was given, the SQL type, from ``Mapped[X]``."""
    column = mapped.column
    if python_type is None:
        if column.type._isnull and not column.foreign_keys:
            raise ArgumentError(
                f"{where(cls, owner, name)} is a mapped_column() without a SQL type and "
                f"without a Mapped[] annotation to take one from: write "
                f"{name}: Mapped[<python type>] = mapped_column(...), or pass the SQL type "
                f"(mapped_column(String(50)))."
            )
        return
    if isinstance(python_type, str):
        raise ArgumentError(
            f"The Mapped[{python_type!r}] annotation of {where(cls, owner, name)} is a "
            f"string that could not be resolved to a type; name a Python type that the "
            f"module imports (e.g. Mapped[int])."
        )
    if not mapped.explicit_nullable:
        column.nullable = typemap.is_nullable(python_type)
    inner, metadata = typemap.annotated_parts(typemap.inner_type(python_type))
    inner = typemap.inner_type(inner)
    for extra in metadata:
        if isinstance(extra, MappedColumn):
            extra.column._copy()._merge(column)
    if column.type._isnull and not column.foreign_keys:
        sql_type = typemap.sql_type_for(inner, type_map, where(cls, owner, name))
        column._set_type(sql_type)


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return bool(_CLASSVAR_HEAD.match(annotation))
    return typing.get_origin(annotation) is typing.ClassVar or annotation is typing.ClassVar


def _written(annotation: Any) -> str:
    """The annotation as the class body wrote it, without module prefixes."""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(?:sqlalchemy\.orm|sessionkit)\.\w+\.", "", repr(annotation))


def build_table(cls: type, tablename: str, metadata: MetaData, scan: Scan) -> Table:
    """The Table of a declarative class, with its ``__table_args__``."""
    if not scan.columns:
        raise ArgumentError(
            f"Class {cls.__name__} declares no columns; declare them as "
            f"name: Mapped[<python type>] = mapped_column(...) or name = Column(<SQL type>)."
        )
    table_args: Any = cls.__dict__.get("__table_args__", ())
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if isinstance(table_args, dict):
        kwargs = table_args
    elif table_args and isinstance(table_args[-1], dict):
        args, kwargs = tuple(table_args[:-1]), table_args[-1]
    else:
        args = tuple(table_args)
    return Table(tablename, metadata, *(d.column for d in scan.columns), *args, **kwargs)


def refuse_table_annotations(cls: type, mapped: set[str], table: Table) -> None:
    """On a ``__table__`` class a ``Mapped[]`` annotation only types a column of the
    table; one naming no column of it would map nothing."""
    for owner in reversed(cls.__mro__[:-1]):
        if owner is not cls and MAPPER_ATTR in owner.__dict__:
            continue
        for name, annotation in typemap.own_annotations(owner).items():
            container, _ = _mapped_annotation(cls, owner, name, annotation)
            if container is None or name in mapped:
                continue
            raise ArgumentError(
                f"{where(cls, owner, name)} is annotated {_written(annotation)}, but table "
                f"{table.name!r} given as __table__ has no column for it, so {LOST}. Add the "
                f"column to the Table, or remove the annotation."
            )
        for name, value in owner.__dict__.items():
            if isinstance(value, MappedColumn):
                raise ArgumentError(
                    f"Can't add additional column {name!r} when specifying __table__: "
                    f"{where(cls, owner, name)} is a mapped_column(), and {LOST}. Add the "
                    f"column to the Table, or assign one of the table's own columns to the "
                    f"attribute ({name} = <table>.c.<column>)."
                )
