"""What sessionkit does not map, refused when a class is declared.

An ORM attribute construct (``relationship()``, ``synonym()``, the ORM's own
``mapped_column()``...) or an ORM-decorated method in a sessionkit class would be
silently ignored: its values would never reach the table, its code never run. Each is
refused by name with what to declare instead. The ORM is recognised by the module of a
construct's class, never imported.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column
from sqlalchemy.types import NullType

from .exc import ArgumentError
from .state import MAPPER_ATTR


def declared(cls: type) -> Iterator[tuple[type, str, Any]]:
    """``(owner, name, value)`` for the class and its unmapped bases, the class last."""
    for owner in reversed(cls.__mro__[:-1]):  # object declares nothing
        if owner is cls or MAPPER_ATTR not in owner.__dict__:
            for name, value in owner.__dict__.items():
                yield owner, name, value


_ORM_MODULE = "sqlalchemy.orm"
# Every ORM attribute construct (mapped_column(), relationship(), synonym(), ...,
# @declared_attr) derives from one of these; the ORM's Session or hybrid_property do not.
_ORM_CONSTRUCT_BASES = frozenset({"_MappedAttribute", "MapperProperty", "_declared_attr_common"})
LOST = "its values would never reach the table"


def where(cls: type, owner: type, name: str) -> str:
    """``User.name``, or ``User.name (from mixin Audited)``: how refusals name an attribute."""
    mixin = "" if owner is cls else f" (from mixin {owner.__name__})"
    return f"{cls.__name__}.{name}{mixin}"


def refuse_orm_constructs(cls: type) -> None:
    """ORM attributes and ORM-decorated methods would be silently ignored: refuse them."""
    for owner, name, value in declared(cls):
        fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        marks = fn.__dict__ if isinstance(fn, types.FunctionType) else {}
        if _is_orm_construct(type(value)):
            what = _orm_construct_words(cls, name, value)
        elif "__sa_validators__" in marks:
            names = ", ".join(map(repr, marks["__sa_validators__"]))
            what = (
                f"an ORM @validates({names}) method, which sessionkit never calls: the values "
                f"it should check would reach the table unchecked. Import validates from "
                f"sessionkit instead: it takes the same arguments."
            )
        elif "__sa_reconstructor__" in marks:
            what = (
                "an ORM @reconstructor, which sessionkit never calls when it loads an object. "
                "Compute the value on first use instead, e.g. in a Python @property."
            )
        else:
            continue
        raise ArgumentError(f"{where(cls, owner, name)} is {what}")


def _is_orm_construct(kind: type) -> bool:
    return any(
        k.__name__ in _ORM_CONSTRUCT_BASES and k.__module__.startswith(_ORM_MODULE)
        for k in kind.__mro__
    )


def _orm_construct_words(cls: type, name: str, value: Any) -> str:
    """What the construct is, and what to declare instead."""
    kind = type(value).__name__
    deferred = getattr(value, "deferred", False) is True
    columns = getattr(value, "columns", None) or [None]
    if kind == "MappedColumn":
        if deferred:
            return _column_words("mapped_column()", name, value.column, deferred)
        return (
            f"the ORM's mapped_column(), which sessionkit does not map: {LOST}. Import "
            f"mapped_column (and Mapped) from sessionkit instead: it takes the same arguments."
        )
    if "ColumnProperty" in {k.__name__ for k in type(value).__mro__}:
        if deferred and isinstance(columns[0], Column):
            return _column_words("deferred()", name, columns[0], deferred)
        return (
            f"the ORM's column_property(), which sessionkit does not map: sessionkit maps "
            f"table columns only. Select the expression next to the class, e.g. "
            f"select({cls.__name__}, <expression>), or compute the value in a Python @property."
        )
    if "Relationship" in kind:
        return (
            "the ORM's relationship(), which sessionkit does not map: sessionkit maps the "
            "columns of one table, without relationships. Declare the foreign key as a Column "
            "(e.g. other_id = Column(ForeignKey('other.id'))) and load the related objects "
            "with select() or session.get()."
        )
    if kind == "Synonym":
        target = getattr(value, "name", "...")
        return (
            f"the ORM's synonym({target!r}), which sessionkit does not map: {LOST}. Use a "
            f"Python @property that reads and writes self.{target} instead."
        )
    if kind == "Composite":
        built = getattr(value, "composite_class", None)
        built_name = built.__name__ if isinstance(built, type) else "composite"
        return (
            f"the ORM's composite(), which sessionkit does not map: {LOST}. Declare each "
            f"column as its own Column attribute and build the {built_name} value in a Python "
            f"@property."
        )
    if "_declared_attr_common" in {k.__name__ for k in type(value).__mro__}:
        return (
            "the ORM's @declared_attr, which sessionkit never calls. Declare the Column "
            "directly (the Columns of an unmapped mixin are copied into each class), and set "
            "__tablename__ as a string in each class."
        )
    return (
        f"a SQLAlchemy ORM {kind}, which sessionkit does not map: {LOST}. sessionkit maps "
        f"columns only: declare {name} with sessionkit's mapped_column() or a Column instead."
    )


def _column_words(what: str, name: str, column: Column[Any], deferred: bool) -> str:
    args = [] if column.name is None else [repr(column.name)]
    args.append("<SQL type>" if isinstance(column.type, NullType) else repr(column.type))
    if column.primary_key:
        args.append("primary_key=True")
    tail = "; sessionkit loads every column with the row" if deferred else ""
    return (
        f"the ORM's {what}, which sessionkit does not map: {LOST}. Declare it as a Core "
        f"column with the same arguments: {name} = Column({', '.join(args)}){tail}."
    )
