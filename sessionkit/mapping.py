"""Plain classes onto Core tables.

A ``Mapper`` holds the per-class facts every hot path needs precomputed: the mapped
columns in table order, their attribute keys, where the primary key sits in a row, and a
cache of statements. Classes are mapped either declaratively (``declarative_base()``
with ``Column`` attributes or ``__table__ = existing_table``) or with
``map_imperatively(cls, table)`` for an application's existing classes. Anything else
in a declarative class that looks like a mapping construct (the ORM's ``mapped_column()``,
``relationship()``, an annotation-only ``Mapped[]``...) is refused when the class is
created: left out of the table, the values assigned to it would be lost without a word.
"""

from __future__ import annotations

import inspect
import operator
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Column, FromClause, MetaData, Table
from sqlalchemy.types import NullType

from .attributes import (
    ColumnAttribute,
    instance_delattr,
    instance_init,
    instance_repr,
    instance_setattr,
)
from .exc import ArgumentError, InvalidRequestError, UnmappedClassError, UnmappedInstanceError
from .state import STATE_KEY, InstanceState, Loaded, materialize

MAPPER_ATTR = "__sk_mapper__"


class Mapper:
    """Facts about one mapped class, computed once when the class is mapped."""

    def __init__(
        self,
        class_: type,
        table: Table,
        attr_keys: dict[Column[Any], str],
        version_id_col: Column[Any] | None = None,
        version_id_generator: Callable[[Any], Any] | None = None,
    ) -> None:
        if not table.primary_key.columns:
            raise ArgumentError(
                f"Cannot map class {class_.__name__} to table {table.name!r}: the table has no "
                f"primary key. sessionkit identifies every row by its primary key; declare one "
                f"with Column(..., primary_key=True) or a PrimaryKeyConstraint."
            )
        self.class_ = class_
        self.table = table
        self.columns: tuple[Column[Any], ...] = tuple(table.c)
        self.attr_keys: tuple[str, ...] = tuple(attr_keys.get(c, c.key) for c in self.columns)
        self.col_keys: tuple[str, ...] = tuple(c.key for c in self.columns)
        self.attr_index: dict[str, int] = {k: i for i, k in enumerate(self.attr_keys)}
        self.column_for_attr: dict[str, Column[Any]] = dict(
            zip(self.attr_keys, self.columns, strict=True)
        )
        self.attr_for_column: dict[Column[Any], str] = dict(
            zip(self.columns, self.attr_keys, strict=True)
        )
        self.pk_columns: tuple[Column[Any], ...] = tuple(table.primary_key.columns)
        self.pk_attr_keys: tuple[str, ...] = tuple(self.attr_for_column[c] for c in self.pk_columns)
        self.pk_attr_index = frozenset(self.pk_attr_keys)
        self.pk_positions: tuple[int, ...] = tuple(self.columns.index(c) for c in self.pk_columns)
        self.single_pk = len(self.pk_columns) == 1
        self.all_attrs: frozenset[str] = frozenset(self.attr_keys)
        # An instance dict holding only columns and the state can be replaced wholesale.
        self.dict_keys: frozenset[str] = self.all_attrs | {STATE_KEY}
        self.dict_size = len(self.dict_keys)
        self.detached_marker = Loaded(self, None)
        # Set once any instance gets a non-column attribute: until then expiry may empty
        # instance dicts wholesale instead of removing the columns one by one.
        self.has_extras = False
        # The row -> primary-key value function used by the loader.
        self.row_pk: Callable[[Any], Any] = operator.itemgetter(*self.pk_positions)
        self.selectable: FromClause = table._annotate({"sessionkit_mapper": self})
        self.base_setattr: Callable[[Any, str, Any], None] = object.__setattr__
        self.statement_cache: dict[Any, Any] = {}
        self.compare: dict[str, Callable[[Any, Any], bool]] = {
            k: c.type.compare_values for k, c in zip(self.attr_keys, self.columns, strict=True)
        }
        # Optimistic concurrency: every UPDATE and DELETE checks and bumps this column.
        self.version_column: Column[Any] | None = None
        self.version_attr: str | None = None
        self.version_generator: Callable[[Any], Any] = _next_version
        if version_id_col is not None:
            column = table.c.get(version_id_col.key)
            if column is not version_id_col:
                raise ArgumentError(
                    f"version_id_col {version_id_col!r} of class {class_.__name__} is not a "
                    f"column of table {table.name!r}; pass one of {list(table.c.keys())}."
                )
            if version_id_col.primary_key:
                raise ArgumentError(
                    f"version_id_col {version_id_col.key!r} of class {class_.__name__} is part "
                    f"of the primary key; use a separate integer column."
                )
            self.version_column = version_id_col
            self.version_attr = self.attr_for_column[version_id_col]
            if version_id_generator is not None:
                self.version_generator = version_id_generator
        elif version_id_generator is not None:
            raise ArgumentError(
                f"version_id_generator given for class {class_.__name__} without a "
                f"version_id_col; name the version column too."
            )

    def identity_key_for(self, key: Any) -> tuple[type, tuple[Any, ...], None]:
        return (self.class_, (key,) if self.single_pk else tuple(key), None)

    def key_from_dict(self, d: dict[str, Any]) -> Any:
        """The primary-key value held in an instance dict, or None if incomplete."""
        if self.single_pk:
            return d.get(self.pk_attr_keys[0])
        values = tuple(d.get(k) for k in self.pk_attr_keys)
        return None if None in values else values

    def normalize_key(self, ident: Any) -> Any:
        """``get()``'s argument (scalar, tuple or dict) as an identity-map key."""
        if isinstance(ident, dict):
            if len(ident) != len(self.pk_columns):
                raise self._wrong_identifier("number", len(ident))
            try:
                values = tuple(ident[k] for k in self.pk_attr_keys)
            except KeyError as err:
                raise self._wrong_identifier("names", list(ident)) from err
        elif isinstance(ident, (tuple, list)):
            values = tuple(ident)
        else:
            values = (ident,)
        if len(values) != len(self.pk_columns):
            raise self._wrong_identifier("number", len(values))
        return values[0] if self.single_pk else values

    def _wrong_identifier(self, what: str, got: Any) -> InvalidRequestError:
        """The reference's words, then the key columns and how to pass them."""
        n = len(self.pk_columns)
        cols = ", ".join(self.pk_attr_keys)
        if n == 1:
            fix = f"pass the value itself (or a 1-tuple), or a dict with exactly the key {cols!r}"
        else:
            fix = (
                f"pass a tuple of {n} values in the order ({cols}), or a dict with exactly "
                f"those keys"
            )
        head = (
            f"Incorrect {what} of values in identifier for {self.class_.__name__}: the primary key"
        )
        table = self.table.name
        if what == "names":
            keys = ", ".join(map(str, got))
            return InvalidRequestError(
                f"{head} of table {table!r} has the columns ({cols}), got the keys ({keys}); {fix}."
            )
        return InvalidRequestError(
            f"{head} of table {table!r} has {n} column{'s' if n != 1 else ''} ({cols}), got "
            f"{got} value{'s' if got != 1 else ''}; {fix}."
        )

    def __repr__(self) -> str:
        return f"<Mapper {self.class_.__name__} -> {self.table.name}>"


def _next_version(version: Any) -> int:
    """The default version counter: 1 on INSERT, then +1 on every UPDATE."""
    return (version or 0) + 1


class _ClauseElementHook:
    """Makes ``select(User)`` work: Core asks the class for ``__clause_element__()``."""

    def __init__(self, mapper: Mapper) -> None:
        self.mapper = mapper

    def __get__(self, obj: object | None, owner: type) -> Callable[[], FromClause]:
        if obj is not None:
            raise AttributeError("__clause_element__")
        selectable = self.mapper.selectable
        return lambda: selectable


def map_imperatively(
    cls: type,
    table: Table,
    *,
    attribute_names: dict[str, str] | None = None,
    version_id_col: Column[Any] | None = None,
    version_id_generator: Callable[[Any], Any] | None = None,
) -> Mapper:
    """Map an existing plain class onto an existing Core ``Table``.

    ``attribute_names`` maps column keys to attribute names where they differ.
    ``version_id_col`` names a column that every UPDATE and DELETE checks and bumps
    (``version_id_generator(old) -> new``, default ``old + 1``): a concurrent change
    makes the flush raise StaleDataError instead of silently overwriting it.
    The class keeps its own ``__init__``; only columns become descriptors.
    """
    if _orm_mapped(cls):
        raise ArgumentError(
            f"Class {cls.__module__}.{cls.__qualname__} is mapped by the SQLAlchemy ORM, not by "
            f"sessionkit; a class can be mapped only once. Map a separate plain class onto its "
            f"table instead."
        )
    if MAPPER_ATTR in cls.__dict__:
        raise ArgumentError(
            f"Class {cls.__module__}.{cls.__qualname__} is already mapped to table "
            f"{cls.__dict__[MAPPER_ATTR].table.name!r}; a class can be mapped only once. "
            f"Create a separate class for the second table."
        )
    for base in cls.__mro__[1:]:
        if MAPPER_ATTR in base.__dict__:
            raise ArgumentError(
                f"Class {cls.__name__} inherits from mapped class {base.__name__}; sessionkit "
                f"does not map class hierarchies. Map {cls.__name__} to its own table "
                f"without inheriting from {base.__name__}, or share columns through an "
                f"unmapped mixin."
            )
    names = attribute_names or {}
    attr_keys = {c: names.get(c.key, c.key) for c in table.c}
    mapper = Mapper(cls, table, attr_keys, version_id_col, version_id_generator)
    for key, column in mapper.column_for_attr.items():
        if key == STATE_KEY or key.startswith("__"):
            raise ArgumentError(f"Column {column.key!r} cannot be mapped as attribute {key!r}")
        setattr(cls, key, ColumnAttribute(key, column, mapper))
    own_setattr: Any = cls.__setattr__
    if own_setattr is not instance_setattr:
        mapper.base_setattr = own_setattr
    type.__setattr__(cls, "__setattr__", instance_setattr)
    type.__setattr__(cls, "__delattr__", instance_delattr)
    type.__setattr__(cls, "__clause_element__", _ClauseElementHook(mapper))
    type.__setattr__(cls, MAPPER_ATTR, mapper)
    if "__table__" not in cls.__dict__:
        type.__setattr__(cls, "__table__", table)
    return mapper


def _declared(cls: type) -> Iterator[tuple[type, str, Any]]:
    """``(owner, name, value)`` for the class and its unmapped bases, the class last."""
    for owner in reversed(cls.__mro__[:-1]):  # object declares nothing
        if owner is cls or MAPPER_ATTR not in owner.__dict__:
            for name, value in owner.__dict__.items():
                yield owner, name, value


def _declarative_columns(cls: type) -> dict[str, Column[Any]]:
    """Column attributes of a declarative class, own ones and copies from mixins."""
    found: dict[str, Column[Any]] = {}
    for owner, name, value in _declared(cls):
        if isinstance(value, Column):
            found[name] = value if owner is cls else value._copy()
    return found


def _map_declarative(cls: type, metadata: MetaData) -> None:
    _refuse_orm_constructs(cls)
    if cls.__dict__.get("__abstract__", False):
        return  # its annotations may type columns that each subclass declares
    table = cls.__dict__.get("__table__")
    tablename = cls.__dict__.get("__tablename__")
    if table is None and tablename is None:
        for base in cls.__mro__[1:]:
            if MAPPER_ATTR in base.__dict__:
                raise ArgumentError(
                    f"Class {cls.__name__} inherits from mapped class {base.__name__} without "
                    f"a __tablename__ or __table__ of its own; sessionkit does not map class "
                    f"hierarchies. Give {cls.__name__} its own table, or move shared columns "
                    f"into an unmapped mixin."
                )
        raise ArgumentError(
            f"Class {cls.__name__} has no __tablename__ or __table__; declare one, or set "
            f"__abstract__ = True for a base class that is not mapped."
        )
    attr_names: dict[str, str] = {}
    if table is None:
        columns = _declarative_columns(cls)
        if not columns:
            raise ArgumentError(f"Class {cls.__name__} declares no Column attributes")
        _refuse_bare_annotations(cls, set(columns), None)
        for name, col in columns.items():
            if getattr(col, "name", None) is None:
                col.name = col.key = name
            attr_names[col.key] = name
            if name in cls.__dict__:
                type.__delattr__(cls, name)
        table_args: Any = cls.__dict__.get("__table_args__", ())
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if isinstance(table_args, dict):
            kwargs = table_args
        elif table_args and isinstance(table_args[-1], dict):
            args, kwargs = tuple(table_args[:-1]), table_args[-1]
        else:
            args = tuple(table_args)
        table = Table(str(tablename), metadata, *columns.values(), *args, **kwargs)
    elif not isinstance(table, Table):
        raise ArgumentError(
            f"{cls.__name__}.__table__ must be a sqlalchemy Table, got {type(table).__name__}"
        )
    else:
        attr_names = _table_attribute_names(cls, table)
        mapped = {attr_names.get(c.key, c.key) for c in table.c}
        _refuse_bare_annotations(cls, mapped, table)
    mapper_args: Any = cls.__dict__.get("__mapper_args__", {})
    unknown = set(mapper_args) - _MAPPER_ARGS
    if unknown:
        raise ArgumentError(
            f"{cls.__name__}.__mapper_args__ has unsupported key(s) {sorted(unknown)}; "
            f"sessionkit understands {sorted(_MAPPER_ARGS)}."
        )
    map_imperatively(cls, table, attribute_names=attr_names, **mapper_args)


def _table_attribute_names(cls: type, table: Table) -> dict[str, str]:
    """Column key -> attribute name for the Columns of a ``__table__`` class.

    As in the ORM, a Column of the class must be one of the table's own (it maps that
    column under the attribute's name) and a mixin's Column gives way to the table's
    column of the same name; any other Column would hold values that never reach the table.
    """
    names: dict[str, str] = {}
    for owner, name, value in _declared(cls):
        if not isinstance(value, Column):
            continue
        key = name if value.key is None else value.key
        own = table.c.get(key)
        if owner is cls and own is value:
            if key in names:
                raise ArgumentError(
                    f"{cls.__name__}.{names[key]} and {cls.__name__}.{name} both name column "
                    f"{key!r} of table {table.name!r}; only one attribute can map it and values "
                    f"assigned to the other would never reach the table. Keep one, and give "
                    f"the other name as a Python @property."
                )
            names[key] = name
        elif owner is cls or own is None or key != name:
            raise ArgumentError(
                f"Can't add additional column {key!r} when specifying __table__: "
                f"{_where(cls, owner, name)} is not a column of table {table.name!r}, so "
                f"{_LOST}. Add the column to the Table, or assign one of the table's own "
                f"columns to the attribute ({name} = <table>.c.<column>)."
            )
    return names


# -- what sessionkit does not map -------------------------------------------------------

_ORM_MODULE = "sqlalchemy.orm"
# Every ORM attribute construct (mapped_column(), relationship(), synonym(), ...,
# @declared_attr) derives from one of these; the ORM's Session or hybrid_property do not.
_ORM_CONSTRUCT_BASES = frozenset({"_MappedAttribute", "MapperProperty", "_declared_attr_common"})
_ORM_MAPPED_NAMES = frozenset({"Mapped", "WriteOnlyMapped", "DynamicMapped"})
# Where the ORM keeps a mapped class's instrumentation.
_ORM_MANAGER = "_sa_class_manager"
_ANNOTATION_HEAD = re.compile(r"\s*((?:\w+\.)*(\w+))\s*(?:\[|$)")
_LOST = "its values would never reach the table"


def _where(cls: type, owner: type, name: str) -> str:
    mixin = "" if owner is cls else f" (from mixin {owner.__name__})"
    return f"{cls.__name__}.{name}{mixin}"


def _refuse_orm_constructs(cls: type) -> None:
    """ORM attributes and ORM-decorated methods would be silently ignored: refuse them."""
    for owner, name, value in _declared(cls):
        fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        marks = fn.__dict__ if isinstance(fn, types.FunctionType) else {}
        if _is_orm_construct(type(value)):
            what = _orm_construct_words(cls, name, value)
        elif "__sa_validators__" in marks:
            names = ", ".join(map(repr, marks["__sa_validators__"]))
            what = (
                f"an ORM @validates({names}) method, which sessionkit never calls: the values "
                f"it should check would reach the table unchecked. sessionkit has no attribute "
                f"events; check the value before assigning it, e.g. in __init__ or in a method "
                f"that sets the attribute."
            )
        elif "__sa_reconstructor__" in marks:
            what = (
                "an ORM @reconstructor, which sessionkit never calls when it loads an object. "
                "Compute the value on first use instead, e.g. in a Python @property."
            )
        else:
            continue
        raise ArgumentError(f"{_where(cls, owner, name)} is {what}")


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
        return _column_words("mapped_column()", name, value.column, deferred)
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
            f"the ORM's synonym({target!r}), which sessionkit does not map: {_LOST}. Use a "
            f"Python @property that reads and writes self.{target} instead."
        )
    if kind == "Composite":
        built = getattr(value, "composite_class", None)
        built_name = built.__name__ if isinstance(built, type) else "composite"
        return (
            f"the ORM's composite(), which sessionkit does not map: {_LOST}. Declare each "
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
        f"a SQLAlchemy ORM {kind}, which sessionkit does not map: {_LOST}. sessionkit maps "
        f"Column attributes only: declare {name} = Column(<SQL type>) instead."
    )


def _column_words(what: str, name: str, column: Column[Any], deferred: bool) -> str:
    args = [] if column.name is None else [repr(column.name)]
    args.append("<SQL type>" if isinstance(column.type, NullType) else repr(column.type))
    if column.primary_key:
        args.append("primary_key=True")
    tail = "; sessionkit loads every column with the row" if deferred else ""
    return (
        f"the ORM's {what}, which sessionkit does not map: {_LOST}. Declare it as a Core "
        f"column with the same arguments: {name} = Column({', '.join(args)}){tail}."
    )


def _refuse_bare_annotations(cls: type, mapped: set[str], table: Table | None) -> None:
    """A ``Mapped[]`` annotation is a type hint for a mapped attribute, and refused on any
    other: the ORM would map it, sessionkit would silently not."""
    for owner in reversed(cls.__mro__[:-1]):
        if owner is not cls and MAPPER_ATTR in owner.__dict__:
            continue
        for name, annotation in _own_annotations(owner).items():
            written = _orm_annotation(owner, annotation)
            if written is None or name in mapped:
                continue
            where = _where(cls, owner, name)
            if table is not None:
                raise ArgumentError(
                    f"{where} is annotated {written}, but table {table.name!r} given as "
                    f"__table__ has no column for it, so {_LOST}. Add the column to the "
                    f"Table, or remove the annotation."
                )
            raise ArgumentError(
                f"{where} is annotated {written} but has no Column value: sessionkit does not "
                f"map annotation-only Mapped[] attributes, so {_LOST}. Declare it as "
                f"{name}: {written} = Column(<SQL type>); the annotation is then a type hint."
            )


def _own_annotations(owner: type) -> dict[str, Any]:
    """The annotations written in ``owner``'s body, unevaluated where they are strings."""
    if sys.version_info >= (3, 14):
        import annotationlib

        return dict(annotationlib.get_annotations(owner, format=annotationlib.Format.FORWARDREF))
    return dict(inspect.get_annotations(owner))


def _orm_annotation(owner: type, annotation: Any) -> str | None:
    """The annotation as written if it is the ORM's ``Mapped[...]`` (or a sibling), else
    None. A string names it; when the name resolves in the class's module, to something
    else, it is some other ``Mapped``."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__forward_arg__", 0)
    if isinstance(text, str):
        head = _ANNOTATION_HEAD.match(text)
        if head is None or head.group(2) not in _ORM_MAPPED_NAMES:
            return None
        target: Any = sys.modules.get(owner.__module__)
        for part in head.group(1).split("."):
            target = getattr(target, part, None)
        if target is not None and not str(getattr(target, "__module__", "")).startswith(
            _ORM_MODULE
        ):
            return None
        return text.strip()
    origin = typing.get_origin(annotation) or annotation
    if (
        isinstance(origin, type)
        and origin.__name__ in _ORM_MAPPED_NAMES
        and origin.__module__.startswith(_ORM_MODULE)
    ):
        return re.sub(r"\bsqlalchemy\.orm\.\w+\.", "", repr(annotation))
    return None


def _orm_mapped(cls: type) -> bool:
    return any(_ORM_MANAGER in k.__dict__ for k in cls.__mro__)


def _orm_mapped_message(cls: type) -> str:
    return (
        f"Class '{cls.__module__}.{cls.__qualname__}' is mapped by the SQLAlchemy ORM, not by "
        f"sessionkit; a sessionkit Session works only with classes mapped by sessionkit's "
        f"declarative_base() or map_imperatively(). Use a sqlalchemy.orm.Session for "
        f"{cls.__name__}, or map a separate class of your own onto its table "
        f"(__table__ = {cls.__name__}.__table__)."
    )


_MAPPER_ARGS = frozenset({"version_id_col", "version_id_generator"})


def declarative_base(
    *, metadata: MetaData | None = None, name: str = "Base", cls: type = object
) -> Any:
    """A base class whose subclasses are mapped when they are defined.

    Pass ``metadata=app_metadata`` to put the tables in an application's existing
    ``MetaData``. The base supplies a keyword constructor and a repr showing loaded values.
    """
    md = metadata if metadata is not None else MetaData()

    def __init_subclass__(sub: Any, /, **kw: Any) -> None:
        parent: Any = super(base, sub)
        parent.__init_subclass__(**kw)
        _map_declarative(sub, md)

    namespace: dict[str, Any] = {
        "metadata": md,
        "__abstract__": True,
        "__init__": instance_init,
        "__repr__": instance_repr,
        "__init_subclass__": classmethod(__init_subclass__),
        "__doc__": "Declarative base: subclasses with __tablename__ or __table__ are mapped.",
    }
    base: type = type(name, (cls,), namespace)
    return base


def mapper_of_class(cls: object) -> Mapper:
    if not isinstance(cls, type):
        # An instance (or a name) where a class is needed: the reference's words first.
        given = repr(cls)
        given = given if len(given) <= 80 else f"{given[:65]}...{given[-10:]}"
        owner = type(cls)
        if MAPPER_ATTR in owner.__dict__:
            fix = f"pass the class {owner.__name__} itself, not an instance of it"
        elif _orm_mapped(owner):
            fix = (
                f"{owner.__name__} is mapped by the SQLAlchemy ORM, not by sessionkit: pass a "
                f"class mapped by sessionkit"
            )
        else:
            fix = "pass a mapped class"
        raise ArgumentError(f"Expected mapped class or mapper, got: {given}; {fix}.")
    mapper = cls.__dict__.get(MAPPER_ATTR)
    if mapper is None:
        if _orm_mapped(cls):
            raise UnmappedClassError(_orm_mapped_message(cls))
        name = f"{cls.__module__}.{cls.__qualname__}"
        raise UnmappedClassError(
            f"Class '{name}' is not mapped; map it with a declarative_base() subclass or "
            f"map_imperatively() first."
        )
    return mapper  # type: ignore[no-any-return]


def mapper_of(obj: object) -> Mapper:
    """The mapper of an instance, or UnmappedInstanceError naming its class."""
    cls = type(obj)
    mapper = cls.__dict__.get(MAPPER_ATTR)
    if mapper is None:
        if _orm_mapped(cls):
            raise UnmappedInstanceError(_orm_mapped_message(cls))
        head = f"Class '{cls.__module__}.{cls.__qualname__}' is not mapped"
        if isinstance(obj, type):
            raise UnmappedInstanceError(
                f"{head}; was a class ({obj.__module__}.{obj.__name__}) supplied where an "
                f"instance was required? Pass an instance, e.g. session.add("
                f"{obj.__name__}(...)), not the class itself."
            )
        raise UnmappedInstanceError(
            f"{head}; only instances of classes mapped with declarative_base() or "
            f"map_imperatively() can be used with a Session."
        )
    return mapper  # type: ignore[no-any-return]


def state_of(obj: object) -> InstanceState:
    """The object's state, created on first use for objects never seen by a Session."""
    d = getattr(obj, "__dict__", None)
    state: Any = None if d is None else d.get(STATE_KEY)
    if state.__class__ is Loaded:
        return materialize(obj, state)
    if state is not None:
        return state  # type: ignore[no-any-return]
    mapper = mapper_of(obj)
    d = obj.__dict__
    new_state = d[STATE_KEY] = InstanceState(mapper)
    # Values set before the object met a Session count as changes, as in the reference.
    new_state.modified = any(k in d for k in mapper.attr_keys)
    return new_state
