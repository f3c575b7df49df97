"""Declarative bases: ``DeclarativeBase``, ``MappedAsDataclass`` and ``declarative_base()``.

A subclass of a base is mapped when its class statement ends: its columns are scanned
(``scan.py``), its Table built (or ``__table__`` taken), dataclass methods generated for
``MappedAsDataclass`` classes, and the class handed to ``map_imperatively``. The
metaclass exists for two reasons only: Core's ``inspect()`` finds class inspection by the
class's type, and a hand-applied ``@dataclass`` on a mapped class must be refused (it
would take the column descriptors for default values).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Column, MetaData, Table
from typing_extensions import dataclass_transform

from . import typemap
from .attributes import instance_init, instance_repr, instance_setattr, validated_setattr
from .columns import DONT_SET, MappedColumn, mapped_column
from .exc import ArgumentError, InvalidRequestError
from .mapping import Mapper, map_imperatively
from .refusals import LOST, declared, refuse_orm_constructs, where
from .relationships import Relationship
from .scan import Scan, build_table, refuse_table_annotations, scan_columns
from .state import MAPPER_ATTR

_MAPPER_ARGS = frozenset({"version_id_col", "version_id_generator"})
_TYPE_MAP_ATTR = "__sk_type_map__"
_DATACLASS_ATTR = "__sk_dataclass__"
# The dataclass options sessionkit passes on; frozen and slots would take the instance
# __dict__ (where column values live) or its __setattr__ (how changes are tracked).
_DATACLASS_OPTIONS = frozenset(
    {"init", "repr", "eq", "order", "unsafe_hash", "match_args", "kw_only"}
)


class DeclarativeMeta(type):
    """The type of declarative classes."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if name == "__dataclass_params__" and MAPPER_ATTR in cls.__dict__:
            table = cls.__dict__[MAPPER_ATTR].table
            if table.metadata.tables.get(table.key) is table:
                table.metadata.remove(table)  # so that the corrected class can be declared
            raise ArgumentError(
                f"@dataclass cannot be applied to the mapped class {cls.__name__}: its "
                f"columns are already sessionkit descriptors, which the dataclass would take "
                f"for default values and store in every new object. Derive the class from "
                f"sessionkit.MappedAsDataclass instead (class {cls.__name__}("
                f"MappedAsDataclass, Base)), which generates __init__, __repr__ and __eq__ "
                f"from the mapped columns."
            )
        super().__setattr__(name, value)


class DeclarativeBase(metaclass=DeclarativeMeta):
    """Base of typed declarative models: ``class Base(DeclarativeBase): pass``.

    A direct subclass is the application's base (it may set ``metadata`` and
    ``type_annotation_map``); its subclasses with ``__tablename__`` or ``__table__``
    are mapped, ``__abstract__ = True`` ones only lend their columns.
    """

    metadata: ClassVar[MetaData]
    type_annotation_map: ClassVar[dict[Any, Any]]
    __table__: ClassVar[Table]
    __tablename__: ClassVar[Any]
    __table_args__: ClassVar[Any]
    __mapper_args__: ClassVar[Any]
    __abstract__: ClassVar[bool]
    __sk_mapper__: ClassVar[Mapper]

    if TYPE_CHECKING:

        def __init__(self, **kw: Any) -> None: ...

    else:
        __init__ = instance_init
        __repr__ = instance_repr

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if DeclarativeBase in cls.__bases__:
            _set_up_base(cls)
        else:
            # From the bases: a column may be named "metadata" (then the class's own
            # attribute is that column), as in the ORM.
            metadata = next(
                k.__dict__["metadata"]
                for k in cls.__mro__[1:]
                if isinstance(k.__dict__.get("metadata"), MetaData)
            )
            map_declarative(cls, metadata, getattr(cls, _TYPE_MAP_ATTR))


def _set_up_base(cls: type) -> None:
    own = cls.__dict__
    metadata = own.get("metadata")
    if metadata is None:
        type.__setattr__(cls, "metadata", MetaData())
    elif not isinstance(metadata, MetaData):
        raise ArgumentError(
            f"{cls.__name__}.metadata must be a sqlalchemy MetaData, got "
            f"{type(metadata).__name__}; set metadata = MetaData(...) or leave it out."
        )
    type_map = own.get("type_annotation_map", {})
    if not isinstance(type_map, dict):
        raise ArgumentError(
            f"{cls.__name__}.type_annotation_map must be a dict of Python type -> SQL type, "
            f"got {type(type_map).__name__}."
        )
    type.__setattr__(cls, _TYPE_MAP_ATTR, typemap.normalize_type_map(type_map))


@dataclass_transform(field_specifiers=(MappedColumn, mapped_column))
class MappedAsDataclass(metaclass=DeclarativeMeta):
    """Mixin making each mapped subclass a dataclass, as the ORM's does.

    ``__init__``, ``__repr__`` and ``__eq__`` are generated from the mapped columns;
    ``mapped_column(init=, default=, default_factory=, repr=, compare=, kw_only=)``
    shape them. A column left out of the constructor call stays unset and reads as its
    default, so the column's own default applies at INSERT.
    """

    def __init_subclass__(cls, **kw: Any) -> None:
        options = {k: kw.pop(k) for k in list(kw) if k in _DATACLASS_OPTIONS}
        for refused in ("frozen", "slots", "weakref_slot", "dataclass_callable"):
            if refused in kw:
                raise ArgumentError(
                    f"{cls.__name__}: the dataclass option {refused}= is not supported on "
                    f"mapped classes; sessionkit keeps column values in the instance "
                    f"__dict__ and tracks changes through __setattr__."
                )
        type.__setattr__(cls, _DATACLASS_ATTR, options)
        super().__init_subclass__(**kw)
        if not hasattr(cls, "metadata"):
            _dataclass_mixin(cls, options)  # a mixin: its columns become inherited fields


def _dataclass_mixin(cls: type, options: dict[str, Any]) -> None:
    """A ``MappedAsDataclass`` mixin outside any base is a dataclass of its column
    declarations, which stay on the class for each mapped subclass to copy."""
    columns = {
        name: value if isinstance(value, MappedColumn) else None
        for name in typemap.own_annotations(cls)
        if isinstance(value := cls.__dict__.get(name), (MappedColumn, Column))
    }
    _make_dataclass(cls, columns, options, restore=True)


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
        map_declarative(sub, md, {})

    namespace: dict[str, Any] = {
        "metadata": md,
        "__abstract__": True,
        "__init__": instance_init,
        "__repr__": instance_repr,
        "__init_subclass__": classmethod(__init_subclass__),
        "__doc__": "Declarative base: subclasses with __tablename__ or __table__ are mapped.",
    }
    base: type = DeclarativeMeta(name, (cls,), namespace)
    return base


def map_declarative(cls: type, metadata: MetaData, type_map: dict[Any, Any]) -> None:
    refuse_orm_constructs(cls)
    dc_options = cls.__dict__.get(_DATACLASS_ATTR)
    if cls.__dict__.get("__abstract__", False):
        if dc_options is not None:
            # Its columns become dataclass fields that mapped subclasses inherit.
            _apply_dataclass(cls, scan_columns(cls, type_map), dc_options, restore=True)
        return
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
    mapper_args: Any = cls.__dict__.get("__mapper_args__", {})
    unknown = set(mapper_args) - _MAPPER_ARGS
    if unknown:
        raise ArgumentError(
            f"{cls.__name__}.__mapper_args__ has unsupported key(s) {sorted(unknown)}; "
            f"sessionkit understands {sorted(_MAPPER_ARGS)}."
        )
    mapper_args = {
        k: v.column if isinstance(v, MappedColumn) else v for k, v in mapper_args.items()
    }
    scan: Scan | None = None
    if table is None:
        scan = scan_columns(cls, type_map)
        if dc_options is not None:
            _refuse_plain_bases(cls, scan)
        table = build_table(cls, str(tablename), metadata, scan)
        attr_names = scan.attribute_names
        if dc_options is not None:
            try:
                _apply_dataclass(cls, scan, dc_options, restore=False)
            except (TypeError, ValueError) as err:
                metadata.remove(table)  # nothing half-registered: the class can be fixed
                raise InvalidRequestError(
                    f"Python dataclasses error encountered when creating dataclass for "
                    f"{cls.__name__!r}: {err!r}. Give the fields without a default first, or "
                    f"pass kw_only=True (in the class statement or to mapped_column())."
                ) from err
        for d in scan.columns:
            if d.owner is cls and d.name in cls.__dict__:
                type.__delattr__(cls, d.name)
    elif not isinstance(table, Table):
        raise ArgumentError(
            f"{cls.__name__}.__table__ must be a sqlalchemy Table, got {type(table).__name__}"
        )
    else:
        attr_names = _table_attribute_names(cls, table)
        refuse_table_annotations(cls, {attr_names.get(c.key, c.key) for c in table.c}, table)
        if dc_options is not None:
            raise ArgumentError(
                f"{cls.__name__} is a MappedAsDataclass class with __table__; declare its "
                f"columns with mapped_column() instead, so that they become dataclass fields."
            )
    rels = {name: v for name, v in cls.__dict__.items() if isinstance(v, Relationship)}
    if rels and dc_options is not None:
        if scan is not None:
            metadata.remove(table)
        raise ArgumentError(
            f"{cls.__name__} is a MappedAsDataclass class with relationship() attribute(s) "
            f"{sorted(rels)}; sessionkit maps relationships on plain declarative classes only "
            f"for now. Drop MappedAsDataclass for this class."
        )
    try:
        mapper = map_imperatively(
            cls,
            table,
            attribute_names=attr_names,
            properties=rels,
            annotations={
                k: typemap.relationship_target(v)
                for k, v in typemap.own_annotations(cls).items()
                if k in rels
            },
            **mapper_args,
        )
    except (ArgumentError, InvalidRequestError):
        if scan is not None:
            metadata.remove(table)  # nothing half-registered: the class can be fixed
        raise
    if dc_options is not None and scan is not None:
        mapper.unset_defaults = {
            d.name: d.mapped.default
            for d in scan.columns
            if d.mapped is not None and d.mapped.default is not DONT_SET
        }
        setter = dataclass_validated_setattr if mapper.validators else dataclass_setattr
        type.__setattr__(cls, "__setattr__", setter)


def _refuse_plain_bases(cls: type, scan: Scan) -> None:
    """A dataclass's fields come from dataclass bases only: a plain mixin's column would be
    mapped but missing from ``__init__``, ``__repr__`` and ``__eq__``."""
    plain = [d for d in scan.columns if d.owner is not cls and not _is_dataclass(d.owner)]
    if plain:
        names = ", ".join(repr(d.name) for d in plain)
        owner = plain[0].owner.__name__
        raise InvalidRequestError(
            f"When transforming {cls.__name__} to a dataclass, attribute(s) {names} "
            f"originates from superclass {owner}, which is not a dataclass. Derive {owner} "
            f"from MappedAsDataclass too, or declare the column(s) on {cls.__name__}."
        )


def _is_dataclass(owner: type) -> bool:
    return "__dataclass_fields__" in owner.__dict__


def dataclass_setattr(self: Any, key: str, value: Any) -> None:
    """The generated ``__init__`` passes DONT_SET for a column not given: leave it unset."""
    if value is not DONT_SET:
        instance_setattr(self, key, value)


def dataclass_validated_setattr(self: Any, key: str, value: Any) -> None:
    """As ``dataclass_setattr``, for a class with validators: a column the call leaves
    out is not validated, as in the ORM (its default is not assigned)."""
    if value is not DONT_SET:
        validated_setattr(self, key, value)


def _apply_dataclass(cls: type, scan: Scan, options: dict[str, Any], restore: bool) -> None:
    """Run ``dataclasses.dataclass`` over the class with a field per own typed column."""
    annotations = typemap.own_annotations(cls)
    columns = {d.name: d.mapped for d in scan.columns if d.owner is cls and d.name in annotations}
    _make_dataclass(cls, columns, options, restore)


def _make_dataclass(
    cls: type, columns: dict[str, MappedColumn[Any] | None], options: dict[str, Any], restore: bool
) -> None:
    """Each column's class attribute becomes its dataclass field for the time of
    ``dataclasses.dataclass``; then it is removed, or put back (``restore``) for
    subclasses to copy."""
    saved = {name: cls.__dict__.get(name, DONT_SET) for name in columns}
    for name, mapped in columns.items():
        type.__setattr__(cls, name, _field_for(mapped))
    dataclasses.dataclass(cls, **options)
    for name, value in saved.items():
        if name in cls.__dict__:
            type.__delattr__(cls, name)
        if restore and value is not DONT_SET:
            type.__setattr__(cls, name, value)


def _field_for(mapped: MappedColumn[Any] | None) -> Any:
    if mapped is None:  # a plain Column with a Mapped[] annotation
        return dataclasses.field(default=DONT_SET)
    kw: dict[str, Any] = {}
    for option in ("init", "repr", "compare", "kw_only", "hash"):
        value = getattr(mapped, option)
        if value is not DONT_SET:
            kw[option] = value
    if mapped.dataclass_metadata is not DONT_SET:
        kw["metadata"] = mapped.dataclass_metadata
    if mapped.default_factory is not DONT_SET:
        kw["default_factory"] = mapped.default_factory
    elif mapped.default is not DONT_SET:
        kw["default"] = DONT_SET
    return dataclasses.field(**kw)


def _table_attribute_names(cls: type, table: Table) -> dict[str, str]:
    """Column key -> attribute name for the Columns of a ``__table__`` class.

    As in the ORM, a Column of the class must be one of the table's own (it maps that
    column under the attribute's name) and a mixin's Column gives way to the table's
    column of the same name; any other Column would hold values that never reach the table.
    """
    names: dict[str, str] = {}
    for owner, name, value in declared(cls):
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
                f"{where(cls, owner, name)} is not a column of table {table.name!r}, so "
                f"{LOST}. Add the column to the Table, or assign one of the table's own "
                f"columns to the attribute ({name} = <table>.c.<column>)."
            )
    return names
