"""Typed models (``DeclarativeBase``, ``Mapped[]``, ``mapped_column()``,
``MappedAsDataclass``), written once for both libraries.

Not imported directly (that would give sessionkit's classes): ``models.typed(api)``
executes this file as a module of its own per library, with ``DeclarativeBase``,
``Mapped``, ``mapped_column`` and ``MappedAsDataclass`` bound to that library's names
(``reference.Typed``), so the ORM's class and sessionkit's come from the same source text.
It is compiled with ``from __future__ import annotations`` (``typed(api)``: every
annotation is a string that each library evaluates in this module's namespace) or without
it (``typed(api, future=False)``: the class statement evaluates them). Type checkers read
it with sessionkit's names.

Each function declares a new base (its own ``MetaData``) and returns the classes; the
``refuse_*`` functions declare a class that cannot be mapped, on a base given by the caller.
"""

import dataclasses
import datetime as dt
import decimal
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

from models import Color, Money, MoneyType
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import WriteOnlyMapped
from typing_extensions import TypeAliasType

if TYPE_CHECKING:
    from sessionkit import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column
else:
    _names = globals().get("TYPED_NAMES")  # set by models.typed()
    if _names is None:  # imported as a plain module: sessionkit's names
        import sessionkit as _names
    DeclarativeBase = _names.DeclarativeBase
    Mapped = _names.Mapped
    mapped_column = _names.mapped_column
    MappedAsDataclass = _names.MappedAsDataclass

# PEP 593 aliases: the mapped_column() inside Annotated[] is merged into each column.
intpk = Annotated[int, mapped_column(primary_key=True)]
str30 = Annotated[str, mapped_column(String(30))]
created_at = Annotated[dt.datetime, mapped_column(server_default=func.now(), index=True)]

# Annotated[] aliases the ORM reads in ways of its own: only the first mapped_column() of
# the metadata; its sort_order; its defaults left out when the attribute gives default=.
indexed_pk = Annotated[intpk, mapped_column(index=True)]
early = Annotated[int, mapped_column(sort_order=-5)]
five = Annotated[int, mapped_column(default=5)]
renamed = Annotated[int, mapped_column("other_name")]
rekeyed = Annotated[int, mapped_column(key="other_key")]
not_in_init = Annotated[int, mapped_column(init=False)]
# Type-map keys that are not plain classes. (The ORM reads a string in Annotated[]
# metadata as a forward reference, and fails on it: the marker is a number.)
Tag = Annotated[str, 30]
Name50 = TypeAliasType("Name50", str)

# What the annotation matrix of test_typed_models.py may name, besides the above.
MATRIX_NAMES = (Optional, Union, Literal, Annotated, dt, decimal, uuid, Color, Money)


# -- the typed twins of models.py's Column models ------------------------------------------


def user_model(tablename: str = "user_account") -> tuple[Any, Any]:
    """``User(id INTEGER autoincrement, name, fullname)``, as ``models.user_model()``."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = tablename
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[Optional[str]] = mapped_column(String(30))  # noqa: UP045
        fullname: Mapped[str | None] = mapped_column(String(60))

    return Base, User


def item_model() -> tuple[Any, Any]:
    """``Item(id VARCHAR client-assigned, name UNIQUE)``, as ``models.item_model()``."""

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[str] = mapped_column(String(10), primary_key=True)
        name: Mapped[str | None] = mapped_column(String(50), unique=True)

    return Base, Item


def string_user_model() -> tuple[Any, Any]:
    """``User`` on table ``user`` with a string key chosen by the application, as the
    transaction-rollback program of test_seed_stories.py declares it with Columns."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "user"
        id: Mapped[str] = mapped_column(String(20), primary_key=True)
        name: Mapped[str | None] = mapped_column(String(20))

    return Base, User


def parent_child_model() -> tuple[Any, Any, Any]:
    """``Parent``, ``Child(parent_id NOT NULL REFERENCES parents)``, as
    ``models.parent_child_model()``."""

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = "parents"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str | None] = mapped_column(String(30))

    class Child(Base):
        __tablename__ = "children"
        id: Mapped[intpk]
        parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"))
        name: Mapped[str | None] = mapped_column(String(30))

    return Base, Parent, Child


def differential_child(shared: MetaData) -> Any:
    """The ``Child`` of test_differential.py, typed, in the MetaData of its Column models:
    ``children(id INTEGER PK, parent_id NOT NULL REFERENCES parents, name, item_id
    REFERENCES items)``; the foreign key columns take their SQL type from the column they
    reference."""

    class TypedBase(DeclarativeBase):
        metadata = shared

    class Child(TypedBase):
        __tablename__ = "children"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"))
        name: Mapped[str | None] = mapped_column(String(30))
        item_id: Mapped[Optional[str]] = mapped_column(ForeignKey("items.id"))  # noqa: UP045

    return Child


# -- every annotation kind in one table ------------------------------------------------------


def kinds_model() -> tuple[Any, Any]:
    """One column per kind of annotation; ``str`` and ``Money`` through the base's
    ``type_annotation_map`` (VARCHAR needs a length on MariaDB)."""

    class Base(DeclarativeBase):
        type_annotation_map = {str: String(50), Money: MoneyType()}

    class Kinds(Base):
        __tablename__ = "kinds"
        id: Mapped[intpk]
        number: Mapped[int]
        text: Mapped[str]
        ratio: Mapped[float]
        flag: Mapped[bool]
        raw: Mapped[bytes]
        at: Mapped[dt.datetime]
        day: Mapped[dt.date]
        clock: Mapped[dt.time]
        span: Mapped[dt.timedelta]
        amount: Mapped[decimal.Decimal]
        token: Mapped[uuid.UUID]
        color: Mapped[Color]
        tier: Mapped[Literal["a", "b"]]
        maybe: Mapped[Optional[int]]  # noqa: UP045
        perhaps: Mapped[int | None]
        either: Mapped[Union[str, None]]  # noqa: UP007
        money: Mapped[Money]
        label: Mapped[Optional[str30]]  # noqa: UP045
        created: Mapped[created_at]
        note: Mapped[str | None] = mapped_column(String(200))

    return Base, Kinds


# -- mapped_column() arguments and column order -------------------------------------------


def arguments_model() -> tuple[Any, Any, Any]:
    """``mapped_column()``'s Column arguments, each on its own attribute."""

    class Base(DeclarativeBase):
        pass

    class Owner(Base):
        __tablename__ = "owners"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)

    class Args(Base):
        __tablename__ = "args"
        id: Mapped[int] = mapped_column(primary_key=True, comment="the key")
        named: Mapped[str] = mapped_column("named_col", String(20))
        keyed: Mapped[str | None] = mapped_column(String(20), key="keyed_key")
        forced_null: Mapped[int] = mapped_column(nullable=True)
        forced_not_null: Mapped[int | None] = mapped_column(nullable=False)
        with_default: Mapped[int] = mapped_column(default=7)
        insert_default: Mapped[int] = mapped_column(insert_default=func.length("abc"))
        server_default: Mapped[str] = mapped_column(String(10), server_default="sd")
        server_text: Mapped[int] = mapped_column(server_default=text("42"))
        updated: Mapped[int | None] = mapped_column(onupdate=5)
        indexed: Mapped[int | None] = mapped_column(index=True)
        unique: Mapped[int | None] = mapped_column(unique=True)
        owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"))
        owner_typed: Mapped[int] = mapped_column(Integer, ForeignKey("owners.id"))
        info_col: Mapped[str | None] = mapped_column(String(5), info={"shown": True})
        commented: Mapped[str | None] = mapped_column(String(5), comment="a comment")
        not_auto: Mapped[int] = mapped_column(autoincrement=False)
        last: Mapped[int | None] = mapped_column(sort_order=-1)

    return Base, Owner, Args


def own_order_model() -> tuple[Any, Any, Any]:
    """Column order of a class's own attributes: as written, annotation-only ones in
    place, then ``sort_order`` (models-2); ``Column`` and ``mapped_column()`` mixed."""

    class Base(DeclarativeBase):
        pass

    class Ordered(Base):
        __tablename__ = "ordered"
        zeta: Mapped[int | None]
        id: Mapped[int] = mapped_column(primary_key=True)
        plain = Column(String(10))
        alpha: Mapped[str | None] = mapped_column(String(10))
        late: Mapped[int | None] = mapped_column(sort_order=10)
        first: Mapped[int | None] = mapped_column(sort_order=-10)
        beta: Mapped[int | None]

    class Mixed(Base):
        """``Column`` and ``mapped_column()`` in one class, a Column annotated too."""

        __tablename__ = "mixed"
        id = Column(Integer, primary_key=True)
        typed: Mapped[str] = mapped_column(String(10))
        hinted: Mapped[str | None] = Column(String(10))  # type: ignore[assignment]
        plain = Column(String(10), nullable=False)

    return Base, Ordered, Mixed


def mixin_order_model() -> tuple[Any, Any]:
    """Column order with mixins: the class's own columns, then its mixins' (models-2)."""

    class Base(DeclarativeBase):
        pass

    class Audited:
        audit_plain = Column(String(20))
        audit_typed: Mapped[str | None] = mapped_column(String(20))
        audit_bare: Mapped[int | None]
        audit_first: Mapped[int | None] = mapped_column(sort_order=-10)

    class Tagged:
        tag_typed: Mapped[str | None] = mapped_column(String(20))
        tag_plain = Column(Integer)

    class Ordered(Audited, Tagged, Base):
        __tablename__ = "ordered"
        id: Mapped[int] = mapped_column(primary_key=True)
        own: Mapped[str | None] = mapped_column(String(10))

    return Base, Ordered


def mixin_model() -> tuple[Any, Any, Any]:
    """One typed mixin shared by two classes: each gets copies of its columns."""

    class Base(DeclarativeBase):
        pass

    class Stamped:
        stamp: Mapped[str | None] = mapped_column(String(20), default="new")
        version: Mapped[int] = mapped_column(default=1)

    class Left(Stamped, Base):
        __tablename__ = "lefts"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Right(Stamped, Base):
        __tablename__ = "rights"
        id: Mapped[str] = mapped_column(String(10), primary_key=True)

    return Base, Left, Right


def conventions_model() -> tuple[Any, Any, Any]:
    """A base with a naming convention, ``__table_args__`` (constraints, an index, table
    options) and ``doc=``."""

    class Base(DeclarativeBase):
        metadata = MetaData(
            naming_convention={
                "ix": "ix_%(column_0_label)s",
                "uq": "uq_%(table_name)s_%(column_0_name)s",
                "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                "pk": "pk_%(table_name)s",
            }
        )

    class Team(Base):
        __tablename__ = "teams"
        id: Mapped[int] = mapped_column(primary_key=True)
        code: Mapped[str] = mapped_column(String(5), unique=True)

    class Member(Base):
        __tablename__ = "members"
        __table_args__ = (
            UniqueConstraint("team_id", "name"),
            Index("ix_members_name_lower", func.lower(text("name"))),
            {"comment": "team members"},
        )
        id: Mapped[int] = mapped_column(primary_key=True)
        team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
        name: Mapped[str] = mapped_column(String(20), doc="the member's name")

    return Base, Team, Member


def versioned_model() -> tuple[Any, Any]:
    """``__mapper_args__ = {"version_id_col": <a mapped_column()>}``."""

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        version: Mapped[int] = mapped_column()
        title: Mapped[str | None] = mapped_column(String(20))
        __mapper_args__ = {"version_id_col": version}

    return Base, Doc


def table_model() -> tuple[Any, Any]:
    """``__table__ = existing_table``: the ``Mapped[]`` annotations are only type hints."""

    class Base(DeclarativeBase):
        pass

    accounts = Table(
        "accounts",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("owner", String(30)),
        Column("balance", Integer, nullable=False, server_default="0"),
    )

    class Account(Base):
        __table__ = accounts
        id: Mapped[int]
        owner: Mapped[Optional[str]]  # noqa: UP045
        balance: Mapped[str]  # wrong on purpose: an annotation never re-types a table column

    return Base, Account


def abstract_models() -> tuple[Any, Any, Any]:
    """An ``__abstract__`` base lending typed columns to two mapped classes."""

    class Base(DeclarativeBase):
        pass

    class Entity(Base):
        __abstract__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        created: Mapped[str | None] = mapped_column(String(20), default="now")

    class Person(Entity):
        __tablename__ = "people"
        name: Mapped[str] = mapped_column(String(20))

    class Place(Entity):
        __tablename__ = "places"
        city: Mapped[str | None] = mapped_column(String(20))

    return Base, Person, Place


# -- MappedAsDataclass ---------------------------------------------------------------------


def note_model() -> tuple[Any, Any]:
    """``class Base(MappedAsDataclass, DeclarativeBase)``: every mapped class a dataclass."""

    class Base(MappedAsDataclass, DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = "notes"
        id: Mapped[int] = mapped_column(init=False, primary_key=True)
        title: Mapped[str] = mapped_column(String(50))
        body: Mapped[str] = mapped_column(String(200), default="")
        tags: Mapped[str | None] = mapped_column(String(50), default=None)

    return Base, Note


def options_model() -> tuple[Any, Any]:
    """``class Dc(MappedAsDataclass, Base)`` on a plain base, with every field option."""

    class Base(DeclarativeBase):
        pass

    class Options(MappedAsDataclass, Base):
        __tablename__ = "options"
        id: Mapped[int] = mapped_column(primary_key=True, init=False, repr=False)
        name: Mapped[str] = mapped_column(String(30))
        secret: Mapped[str | None] = mapped_column(String(30), repr=False, default=None)
        score: Mapped[int] = mapped_column(default=0, compare=False)
        made: Mapped[str] = mapped_column(String(30), default_factory=lambda: "made")
        hidden: Mapped[str] = mapped_column(String(30), init=False, default="h")
        keyword: Mapped[int] = mapped_column(default=3, kw_only=True)
        server: Mapped[str | None] = mapped_column(String(10), server_default="srv", init=False)

    return Base, Options


def kw_only_model() -> tuple[Any, Any]:
    """Class-level dataclass options: ``class Point(Base, kw_only=True, order=True)``, and
    a ``__post_init__``."""

    class Base(MappedAsDataclass, DeclarativeBase):
        pass

    class Point(Base, kw_only=True, order=True):
        __tablename__ = "points"
        id: Mapped[int] = mapped_column(primary_key=True)
        x: Mapped[int]
        y: Mapped[int] = mapped_column(default=0)
        label: Mapped[str | None] = mapped_column(String(20), init=False)

        def __post_init__(self) -> None:
            self.label = f"{self.x},{self.y}"  # y unset: reads as its default

    return Base, Point


def abstract_dataclass_models() -> tuple[Any, Any, Any]:
    """An ``__abstract__`` dataclass base with the ``id`` column, inherited by two classes."""

    class Base(MappedAsDataclass, DeclarativeBase):
        pass

    class Keyed(Base):
        __abstract__ = True
        id: Mapped[int] = mapped_column(primary_key=True, init=False)

    class Cat(Keyed):
        __tablename__ = "cats"
        name: Mapped[str] = mapped_column(String(20))

    class Dog(Keyed):
        __tablename__ = "dogs"
        name: Mapped[str] = mapped_column(String(20))
        good: Mapped[bool] = mapped_column(default=True)

    return Base, Cat, Dog


def dataclass_mixin_model() -> tuple[Any, Any]:
    """A ``MappedAsDataclass`` mixin (not mapped itself) lending a column and its field."""

    class Base(MappedAsDataclass, DeclarativeBase):
        pass

    class Audit(MappedAsDataclass):
        created_by: Mapped[str] = mapped_column(String(20), default="sys")

    class Doc(Audit, Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True, init=False)
        title: Mapped[str] = mapped_column(String(20), default="t")

    return Base, Doc


def hashable_dataclass_models() -> tuple[Any, Any, Any]:
    """``eq=False`` (identity hash) and ``unsafe_hash=True`` dataclass models."""

    class Base(DeclarativeBase):
        pass

    class ByIdentity(MappedAsDataclass, Base, eq=False):
        __tablename__ = "by_identity"
        id: Mapped[int] = mapped_column(primary_key=True)

    class ByValue(MappedAsDataclass, Base, unsafe_hash=True):
        __tablename__ = "by_value"
        id: Mapped[int] = mapped_column(primary_key=True)

    return Base, ByIdentity, ByValue


def hand_dataclass(Base: Any) -> Any:
    """``@dataclasses.dataclass`` applied by hand on top of a mapped class (models-5)."""

    @dataclasses.dataclass
    class Manual(Base):  # type: ignore[misc]
        __tablename__ = "manual"
        id: Mapped[int] = mapped_column(primary_key=True)  # noqa: RUF009
        name: Mapped[str | None] = mapped_column(String(20))  # noqa: RUF009

    return Manual


# -- what cannot be mapped (models-4) -------------------------------------------------------


def refuse_object(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[object]

    return Bad


def refuse_untyped(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload = mapped_column()

    return Bad


def refuse_plain_annotation(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: int = mapped_column()  # type: ignore[assignment]

    return Bad


def refuse_plain_value(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[int] = 5  # type: ignore[assignment]

    return Bad


def refuse_write_only(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: WriteOnlyMapped[int]

    return Bad


def refuse_bare_annotation(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: int

    return Bad


def refuse_both_defaults(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[int | None] = mapped_column(insert_default=5, default=None)

    return Bad


def refuse_no_tablename(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[int | None]

    return Bad


def refuse_no_primary_key(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        payload: Mapped[int | None]

    return Bad


def refuse_mapped_column_with_table(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __table__ = Table("bad", Base.metadata, Column("id", Integer, primary_key=True))
        payload: Mapped[int | None] = mapped_column()

    return Bad


def refuse_undefined_name(Base: Any) -> Any:
    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[Undefined]  # type: ignore[name-defined]  # noqa: F821

    return Bad


def refuse_plain_mixin_in_dataclass(Base: Any) -> Any:
    """A plain (not ``MappedAsDataclass``) mixin's column in a dataclass model."""

    class Audit:
        created_by: Mapped[str] = mapped_column(String(20), default="sys")

    class Bad(Audit, Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True, init=False)

    return Bad


def column_named_metadata(Base: Any) -> Any:
    """An attribute named like the base's ``metadata``."""

    class Odd(Base):  # type: ignore[misc]
        __tablename__ = "odd"
        id: Mapped[int] = mapped_column(primary_key=True)
        metadata: Mapped[str | None] = mapped_column(String(10))

    return Odd


def good_after_refusal(Base: Any) -> Any:
    """The class a refused one tried to be, declared right: the table is free."""

    class Bad(Base):  # type: ignore[misc]
        __tablename__ = "bad"
        id: Mapped[int] = mapped_column(primary_key=True)
        payload: Mapped[int | None]

    return Bad


def base(type_map: dict[Any, Any] | None = None) -> Any:
    """A ``DeclarativeBase`` subclass, with ``type_annotation_map = type_map`` if given."""

    class Base(DeclarativeBase):
        if type_map is not None:
            type_annotation_map = type_map

    return Base


def dataclass_base() -> Any:
    """A ``MappedAsDataclass, DeclarativeBase`` subclass."""

    class Base(MappedAsDataclass, DeclarativeBase):
        pass

    return Base


def misordered_dataclass(Base: Any) -> Any:
    """A dataclass whose field without a default follows one with a default."""

    class Misordered(Base):  # type: ignore[misc]
        __tablename__ = "misordered"
        id: Mapped[int] = mapped_column(primary_key=True, default=None)
        name: Mapped[str] = mapped_column(String(20))

    return Misordered
