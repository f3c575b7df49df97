"""Plain classes onto Core tables.

A ``Mapper`` holds the per-class facts every hot path needs precomputed: the mapped
columns in table order, their attribute keys, where the primary key sits in a row, and a
cache of statements. ``map_imperatively(cls, table)`` maps a class; the declarative
bases (``declarative.py``) build the table from the class body and end here too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, FromClause, Table
from sqlalchemy.event import EventTarget
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import immutabledict

from .attributes import ColumnAttribute, instance_delattr, instance_setattr, validated_setattr
from .exc import ArgumentError, InvalidRequestError, UnmappedClassError, UnmappedInstanceError
from .portable import class_mapped
from .relationships import Relationship, install, register_class
from .state import MAPPER_ATTR, STATE_KEY, InstanceState, Loaded, materialize
from .validation import Validator, collect_validators

# The compile-state plugin that gives sessionkit entities their meaning in Core statements
# (aliasing.py registers it): Core copies these attributes from the first element that
# has them onto every statement built around it.
PLUGIN = "sessionkit"
PLUGIN_ATTRS: immutabledict[str, Any] = immutabledict(
    {"compile_state_plugin": PLUGIN, "plugin_subject": None}
)


class Mapper(EventTarget):
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
        # What an unset attribute reads as: None, or a dataclass field's default.
        self.unset_defaults: dict[str, Any] = {}
        # The row -> primary-key value function used by the loader.
        self.row_pk: Callable[[Any], Any] = operator.itemgetter(*self.pk_positions)
        # The compile plugin (aliasing.py) gives select(User).from_statement() a meaning.
        self.selectable: FromClause = table._annotate(
            {"sessionkit_mapper": self}
        )._set_propagate_attrs(PLUGIN_ATTRS)
        self.base_setattr: Callable[[Any, str, Any], None] = object.__setattr__
        # @validates methods, as the ORM's Mapper.validators: key -> (method, options).
        # A class with none keeps the plain __setattr__ and constructor.
        self.validators: immutabledict[str, Validator] = immutabledict()
        self.validator_fns: dict[str, Callable[[Any, str, Any], Any]] = {}
        # The constructor keywords stored straight into a new object's __dict__: the
        # attributes without a validator.
        self.init_keys: frozenset[str] = self.all_attrs
        self.statement_cache: dict[Any, Any] = {}
        # relationship() attributes by name; what expiry forgets (columns, then them).
        self.relationships: dict[str, Relationship] = {}
        self.expire_keys: tuple[str, ...] = self.attr_keys
        # Some one-to-many relationship points here: a flush sets foreign keys from it.
        self.synced_by_parents = False
        self.compare: dict[str, Callable[[Any, Any], bool]] = {
            k: c.type.compare_values for k, c in zip(self.attr_keys, self.columns, strict=True)
        }
        # Columns whose type compares values its own way; the others compare with ==,
        # which the flush writes inline (it runs once per changed attribute).
        self.custom_compare: frozenset[str] = frozenset(
            k
            for k, c in zip(self.attr_keys, self.columns, strict=True)
            if type(c.type).compare_values is not TypeEngine.compare_values
        )
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

    def set_validators(self, validators: dict[str, Validator]) -> None:
        self.validators = immutabledict(validators)
        self.validator_fns = {k: fn for k, (fn, _) in validators.items()}
        self.init_keys = self.all_attrs - validators.keys()

    def add_relationships(self, rels: dict[str, Relationship]) -> None:
        self.relationships = {**self.relationships, **rels}
        self.expire_keys = self.attr_keys + tuple(self.relationships)
        # Loaded relationships live in the instance dict beside the columns.
        self.has_extras = True

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
    properties: dict[str, Any] | None = None,
    annotations: dict[str, tuple[Any, bool] | None] | None = None,
) -> Mapper:
    """Map an existing plain class onto an existing Core ``Table``.

    ``attribute_names`` maps column keys to attribute names where they differ.
    ``version_id_col`` names a column that every UPDATE and DELETE checks and bumps
    (``version_id_generator(old) -> new``, default ``old + 1``): a concurrent change
    makes the flush raise StaleDataError instead of silently overwriting it.
    ``properties`` holds ``relationship()`` attributes, as in the ORM's
    ``registry.map_imperatively()``. The class keeps its own ``__init__``; only columns
    and relationships become descriptors.
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
    rels: dict[str, Relationship] = {}
    for key, value in (properties or {}).items():
        if not isinstance(value, Relationship):
            raise ArgumentError(
                f"map_imperatively({cls.__name__}): properties[{key!r}] is {value!r}; sessionkit "
                f"maps relationship() there. Rename columns with attribute_names={{...}}."
            )
        rels[key] = value
    names = attribute_names or {}
    attr_keys = {c: names.get(c.key, c.key) for c in table.c}
    mapper = Mapper(cls, table, attr_keys, version_id_col, version_id_generator)
    mapper.set_validators(
        collect_validators(cls, mapper.attr_keys, f"Mapper[{cls.__name__}({table.description})]")
    )
    for key, column in mapper.column_for_attr.items():
        if key == STATE_KEY or key.startswith("__"):
            raise ArgumentError(f"Column {column.key!r} cannot be mapped as attribute {key!r}")
        setattr(cls, key, ColumnAttribute(key, column, mapper))
    own_setattr: Any = cls.__setattr__
    if own_setattr is not instance_setattr and own_setattr is not validated_setattr:
        mapper.base_setattr = own_setattr
    setter = validated_setattr if mapper.validators else instance_setattr
    type.__setattr__(cls, "__setattr__", setter)
    type.__setattr__(cls, "__delattr__", instance_delattr)
    type.__setattr__(cls, "__clause_element__", _ClauseElementHook(mapper))
    type.__setattr__(cls, MAPPER_ATTR, mapper)
    if "__table__" not in cls.__dict__:
        type.__setattr__(cls, "__table__", table)
    if rels:
        install(mapper, rels, annotations)
    register_class(cls)
    class_mapped(cls)
    return mapper


# Where the ORM keeps a mapped class's instrumentation.
_ORM_MANAGER = "_sa_class_manager"


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
