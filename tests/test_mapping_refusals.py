"""Nothing the application declares on a mapped class is silently left out of the mapping.

Every class attribute that looks like a mapping construct is either mapped or refused when
the class is created, with an ``ArgumentError`` naming the class, the attribute and what
to declare instead: a value assigned to an attribute that is not mapped would never reach
the table. A class mapped by the SQLAlchemy ORM, given to a sessionkit Session, is told
so rather than called "not mapped".
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as orm
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import Column, Engine, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped

from sessionkit import Session, declarative_base, inspect, map_imperatively
from sessionkit.exc import ArgumentError, UnmappedClassError, UnmappedInstanceError
from support import by_label


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def _validator(self: Any, key: str, value: Any) -> Any:
    return value


def _loaded(self: Any) -> None:
    pass


# (label, attribute value, words the refusal must contain after "User.<attr> is ")
CONSTRUCTS: list[tuple[str, Callable[[], Any], str]] = [
    (
        "mapped_column",
        lambda: orm.mapped_column(String(30)),
        "the ORM's mapped_column(), which sessionkit does not map: its values would never "
        "reach the table. Import mapped_column (and Mapped) from sessionkit instead: it takes "
        "the same arguments.",
    ),
    (
        "mapped_column without a type",
        lambda: orm.mapped_column(),
        "the ORM's mapped_column(), which sessionkit does not map: its values would never "
        "reach the table. Import mapped_column (and Mapped) from sessionkit instead: it takes "
        "the same arguments.",
    ),
    (
        "deferred",
        lambda: orm.deferred(Column(String(30))),
        "the ORM's deferred(), which sessionkit does not map: its values would never reach "
        "the table. Declare it as a Core column with the same arguments: "
        "attr = Column(String(length=30)); sessionkit loads every column with the row.",
    ),
    (
        "column_property",
        lambda: orm.column_property(sa.literal_column("1")),
        "the ORM's column_property(), which sessionkit does not map: sessionkit maps table "
        "columns only. Select the expression next to the class, e.g. "
        "select(User, <expression>), or compute the value in a Python @property.",
    ),
    (
        "relationship",
        lambda: orm.relationship("Address"),
        "the ORM's relationship(), which sessionkit does not map: sessionkit maps the "
        "columns of one table, without relationships. Declare the foreign key as a Column "
        "(e.g. other_id = Column(ForeignKey('other.id'))) and load the related objects with "
        "select() or session.get().",
    ),
    (
        "synonym",
        lambda: orm.synonym("name"),
        "the ORM's synonym('name'), which sessionkit does not map: its values would never "
        "reach the table. Use a Python @property that reads and writes self.name instead.",
    ),
    (
        "composite",
        lambda: orm.composite(Point, Column("x", Integer), Column("y", Integer)),
        "the ORM's composite(), which sessionkit does not map: its values would never reach "
        "the table. Declare each column as its own Column attribute and build the Point "
        "value in a Python @property.",
    ),
    (
        "declared_attr",
        lambda: orm.declared_attr(lambda cls: Column(Integer)),
        "the ORM's @declared_attr, which sessionkit never calls. Declare the Column "
        "directly (the Columns of an unmapped mixin are copied into each class), and set "
        "__tablename__ as a string in each class.",
    ),
    (
        "query_expression",
        lambda: orm.query_expression(),
        "the ORM's column_property(), which sessionkit does not map: sessionkit maps table "
        "columns only. Select the expression next to the class, e.g. "
        "select(User, <expression>), or compute the value in a Python @property.",
    ),
    (
        "validates",
        lambda: orm.validates("name")(_validator),
        "an ORM @validates('name') method, which sessionkit never calls: the values it "
        "should check would reach the table unchecked. Import validates from sessionkit "
        "instead: it takes the same arguments.",
    ),
    (
        "reconstructor",
        lambda: orm.reconstructor(_loaded),
        "an ORM @reconstructor, which sessionkit never calls when it loads an object. "
        "Compute the value on first use instead, e.g. in a Python @property.",
    ),
]
CONSTRUCT_IDS = [label for label, _, _ in CONSTRUCTS]


def _user_class(base: Any, extra: dict[str, Any], bases: tuple[type, ...] = ()) -> type:
    """``class User(*bases, base)`` with an id column, a name column and ``extra``."""
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__tablename__": "user_account",
        "id": Column(Integer, primary_key=True),
        "name": Column(String(30)),
        **extra,
    }
    return type("User", (*bases, base), namespace)


@pytest.mark.parametrize(("label", "make", "words"), CONSTRUCTS, ids=CONSTRUCT_IDS)
def test_an_orm_construct_in_the_class_body_is_refused(
    label: str, make: Callable[[], Any], words: str
) -> None:
    Base = declarative_base()
    with pytest.raises(ArgumentError) as caught:
        _user_class(Base, {"attr": make()})
    assert str(caught.value) == f"User.attr is {words}"
    assert "user_account" not in Base.metadata.tables  # nothing half-mapped is left behind


@pytest.mark.parametrize(("label", "make", "words"), CONSTRUCTS, ids=CONSTRUCT_IDS)
def test_an_orm_construct_in_an_unmapped_mixin_is_refused(
    label: str, make: Callable[[], Any], words: str
) -> None:
    Base = declarative_base()
    Mixin = type("Stamped", (), {"__module__": __name__, "attr": make()})
    with pytest.raises(ArgumentError) as caught:
        _user_class(Base, {}, (Mixin,))
    assert str(caught.value) == f"User.attr (from mixin Stamped) is {words}"


def test_an_orm_construct_in_an_abstract_base_is_refused_at_once() -> None:
    Base = declarative_base()
    with pytest.raises(ArgumentError, match=r"^Common\.created is the ORM's mapped_column\(\)"):

        class Common(Base):
            __abstract__ = True
            created = orm.mapped_column(sa.DateTime)


def test_a_mapped_column_next_to_columns_no_longer_drops_its_value() -> None:
    """The plain class statement: before, the class was accepted and ``name`` never
    reached the table."""
    Base = declarative_base()
    with pytest.raises(ArgumentError) as caught:

        class User(Base):
            __tablename__ = "user_account"
            id = Column(Integer, primary_key=True)
            name = orm.mapped_column(String(30))

    assert str(caught.value) == (
        "User.name is the ORM's mapped_column(), which sessionkit does not map: its values "
        "would never reach the table. Import mapped_column (and Mapped) from sessionkit "
        "instead: it takes the same arguments."
    )


def test_a_relationship_next_to_its_foreign_key_is_refused() -> None:
    Base = declarative_base()

    class Address(Base):
        __tablename__ = "address"
        id = Column(Integer, primary_key=True)
        user_id = Column(ForeignKey("address.id"))

    with pytest.raises(ArgumentError, match=r"^User\.addresses is the ORM's relationship\(\)"):

        class User(Base):
            __tablename__ = "user_account"
            id = Column(Integer, primary_key=True)
            addresses = orm.relationship(Address)


def test_a_hybrid_property_is_an_ordinary_descriptor(engine: Engine) -> None:
    """Not a mapping construct: it works on a sessionkit class as on any class."""
    from sqlalchemy.ext.hybrid import hybrid_property

    Base = declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))

        @hybrid_property
        def shout(self) -> Any:
            return sa.func.upper(self.name) if isinstance(self, type) else self.name.upper()

    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, name="sandy"))
        s.commit()
        assert s.scalars(select(User).where(User.shout == "SANDY")).one().shout == "SANDY"


def test_an_abstract_base_may_type_what_its_subclasses_declare() -> None:
    """A subclass's own Column wins over the base's annotation; without one, the
    annotation declares the column (as in the ORM)."""
    Base = declarative_base()

    class Named(Base):
        __abstract__ = True
        name: Mapped[str | None]

    class User(Named):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))

    assert inspect(User).attr_keys == ("id", "name")
    assert repr(User.__table__.c.name.type) == "String(length=30)"

    class Team(Named):
        __tablename__ = "team"
        id = Column(Integer, primary_key=True)

    assert inspect(Team).attr_keys == ("id", "name")
    assert Team.__table__.c.name.nullable


# -- Mapped[] annotations ---------------------------------------------------------------


def test_an_annotation_only_mapped_attribute_is_a_column() -> None:
    """Under ``from __future__ import annotations`` the annotation is the string."""
    Base = declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name: Mapped[str]

    column = User.__table__.c.name
    assert (repr(column.type), column.nullable) == ("String()", False)


@pytest.mark.parametrize(
    "annotation",
    [Mapped[str], "Mapped['str']", "orm.Mapped[str]", "Mapped[str]"],
    ids=["Mapped object", "quoted", "qualified", "string"],
)
def test_mapped_annotations_in_every_spelling_are_columns(annotation: Any) -> None:
    Base = declarative_base()
    User = _user_class(Base, {"__annotations__": {"nickname": annotation}})
    assert inspect(User).attr_keys == ("id", "name", "nickname")


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (orm.WriteOnlyMapped[str], "is annotated WriteOnlyMapped[str], the ORM's collection"),
        ("DynamicMapped[Any]", "is annotated DynamicMapped[Any], the ORM's collection"),
        ("so.Mapped[str]", "names something that module"),  # imported for type checkers only
    ],
    ids=["WriteOnlyMapped object", "dyn", "unresolved"],
)
def test_mapped_annotations_sessionkit_cannot_map_are_refused(annotation: Any, words: str) -> None:
    Base = declarative_base()
    with pytest.raises(ArgumentError, match=r"User\.nickname") as caught:
        _user_class(Base, {"__annotations__": {"nickname": annotation}})
    assert words in str(caught.value)
    assert "user_account" not in Base.metadata.tables


def test_an_annotation_only_mapped_attribute_in_a_mixin_is_a_column() -> None:
    Base = declarative_base()
    Mixin = type(
        "Audited", (), {"__module__": __name__, "__annotations__": {"created_by": "Mapped[str]"}}
    )
    User = _user_class(Base, {}, (Mixin,))
    assert inspect(User).attr_keys == ("id", "name", "created_by")


def test_a_mapped_annotation_with_a_non_column_value_is_refused() -> None:
    """The ORM maps the class without the attribute here, silently."""
    Base = declarative_base()
    with pytest.raises(ArgumentError, match=r"^User\.nickname is annotated Mapped\[str\] but"):
        _user_class(Base, {"__annotations__": {"nickname": Mapped[str]}, "nickname": "n/a"})


def test_an_applications_own_mapped_generic_is_an_ordinary_annotation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the ORM's ``Mapped`` is a mapping construct; a name that resolves elsewhere is not."""
    shapes = types.ModuleType("shapes")

    class Mapped:  # an application's own generic that happens to share the name
        def __class_getitem__(cls, item: Any) -> Any:
            return cls

    shapes.Mapped = Mapped  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shapes", shapes)
    Base = declarative_base()
    User = type(
        "User",
        (Base,),
        {
            "__module__": "shapes",
            "__tablename__": "user_account",
            "__annotations__": {"tags": "Mapped[int]"},
            "id": Column(Integer, primary_key=True),
        },
    )
    assert inspect(User).attr_keys == ("id",)


def test_a_mapped_annotation_on_a_column_is_a_type_hint(engine: Engine, ref_engine: Engine) -> None:
    """``name: Mapped[str] = Column(...)`` maps the Column; the annotation only types it."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base = api.declarative_base()

        class User(Base):
            __tablename__ = "user_account"
            id: Mapped[int] = Column(Integer, primary_key=True)
            name: orm.Mapped[str | None] = Column(String(30))

        class Account(Base):
            __table__ = sa.Table(
                "accounts",
                Base.metadata,
                Column("id", Integer, primary_key=True),
                Column("owner", String(30)),
            )
            owner: Mapped[str]  # a column of __table__: only its type

        Base.metadata.create_all(engine)
        obs.rec.clear()
        with api.Session(engine) as s:
            s.add(User(id=1, name="sandy"))
            s.commit()
            s.add(Account(id=1, owner="sandy"))
            s.commit()
            obs.sql("insert")
        with engine.connect() as conn:
            obs.append(("users", [tuple(r) for r in conn.execute(select(User.__table__))]))
            obs.append(("accounts", [tuple(r) for r in conn.execute(select(Account.__table__))]))

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["users"][1] == [(1, "sandy")]
    assert facts["accounts"][1] == [(1, "sandy")]


def test_a_mapped_annotation_on_a_mixin_column_is_a_type_hint(engine: Engine) -> None:
    Base = declarative_base()

    class Noted:
        note: Mapped[str | None] = Column(String(40))

    class User(Noted, Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        note: Mapped[str | None]  # the mixin's column, typed again here

    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, note="kept"))
        s.commit()
        assert s.scalars(select(User.note)).all() == ["kept"]


# -- __table__ = existing_table ---------------------------------------------------------


def _accounts(md: sa.MetaData | None = None) -> sa.Table:
    return sa.Table(
        "accounts",
        md if md is not None else sa.MetaData(),
        Column("id", Integer, primary_key=True),
        Column("owner_name", String(30)),
    )


def test_a_table_column_assigned_to_another_name_is_mapped_under_it(
    engine: Engine, ref_engine: Engine
) -> None:
    """Before, ``owner`` stayed a bare Column and its value never reached the table."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base = api.declarative_base()
        accounts = _accounts(Base.metadata)

        class Account(Base):
            __table__ = accounts
            owner = accounts.c.owner_name

        Base.metadata.create_all(engine)
        obs.rec.clear()
        with api.Session(engine) as s:
            s.add(Account(id=1, owner="sandy"))
            s.commit()
            obs.sql("insert")
            obs.append(("owner", s.get(Account, 1).owner))
            found = s.scalars(select(Account).where(Account.owner == "sandy")).all()
            obs.append(("where", [a.owner for a in found]))

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["owner"][1] == "sandy"
    assert facts["where"][1] == ["sandy"]


@pytest.mark.parametrize("api", [SK, ORM], ids=["sessionkit", "orm"])
def test_a_column_that_is_not_in_the_table_is_refused(api: Api) -> None:
    Base = api.declarative_base()
    with pytest.raises(sa.exc.ArgumentError, match=r"^Can't add additional column 'nickname' when"):

        class Account(Base):
            __table__ = _accounts()
            nickname = Column(String(30))

    Mixin = type("Named", (), {"__module__": __name__, "nickname": Column(String(30))})
    with pytest.raises(sa.exc.ArgumentError, match=r"^Can't add additional column 'nickname' when"):
        type("Named", (Mixin, Base), {"__module__": __name__, "__table__": _accounts()})


def test_a_column_that_is_not_in_the_table_says_what_to_do() -> None:
    Base = declarative_base()
    with pytest.raises(ArgumentError) as caught:

        class Account(Base):
            __table__ = _accounts()
            nickname = Column(String(30))

    assert str(caught.value) == (
        "Can't add additional column 'nickname' when specifying __table__: Account.nickname is "
        "not a column of table 'accounts', so its values would never reach the table. Add the "
        "column to the Table, or assign one of the table's own columns to the attribute "
        "(nickname = <table>.c.<column>)."
    )


def test_a_mixin_column_that_the_table_has_is_the_tables() -> None:
    """As in the ORM: the mixin's copy gives way to the table's own column."""
    Base = declarative_base()
    Mixin = type("Keyed", (), {"__module__": __name__, "id": Column(Integer, primary_key=True)})
    accounts = _accounts()
    Account = type("Account", (Mixin, Base), {"__module__": __name__, "__table__": accounts})
    assert inspect(Account).attr_keys == ("id", "owner_name")
    assert Account.id is accounts.c.id


def test_one_table_column_under_two_names_is_refused() -> None:
    Base = declarative_base()
    accounts = _accounts()
    with pytest.raises(ArgumentError) as caught:

        class Account(Base):
            __table__ = accounts
            owner = accounts.c.owner_name
            holder = accounts.c.owner_name

    assert str(caught.value) == (
        "Account.owner and Account.holder both name column 'owner_name' of table 'accounts'; "
        "only one attribute can map it and values assigned to the other would never reach "
        "the table. Keep one, and give the other name as a Python @property."
    )


def test_an_annotation_for_a_column_the_table_lacks_is_refused() -> None:
    Base = declarative_base()
    with pytest.raises(ArgumentError) as caught:

        class Account(Base):
            __table__ = _accounts()
            nickname: Mapped[str]

    assert str(caught.value) == (
        "Account.nickname is annotated Mapped[str], but table 'accounts' given as __table__ "
        "has no column for it, so its values would never reach the table. Add the column to "
        "the Table, or remove the annotation."
    )


# -- classes mapped by the SQLAlchemy ORM -----------------------------------------------


def _orm_user() -> type:
    class OrmBase(orm.DeclarativeBase):
        pass

    class OrmUser(OrmBase):
        __tablename__ = "user_account"
        id: Mapped[int] = orm.mapped_column(primary_key=True)
        name: Mapped[str | None] = orm.mapped_column(String(30))

    return OrmUser


ORM_MAPPED = (
    "Class 'test_mapping_refusals._orm_user.<locals>.OrmUser' is mapped by the SQLAlchemy ORM, "
    "not by sessionkit; a sessionkit Session works only with classes mapped by sessionkit's "
    "declarative_base() or map_imperatively(). Use a sqlalchemy.orm.Session for OrmUser, or "
    "map a separate class of your own onto its table (__table__ = OrmUser.__table__)."
)

ORM_INSTANCE_USES: list[tuple[str, Callable[[Session, Any], Any]]] = [
    ("add", lambda s, o: s.add(o)),
    ("add_all", lambda s, o: s.add_all([o])),
    ("delete", lambda s, o: s.delete(o)),
    ("merge", lambda s, o: s.merge(o)),
    ("expunge", lambda s, o: s.expunge(o)),
    ("refresh", lambda s, o: s.refresh(o)),
    ("in", lambda s, o: o in s),
    ("inspect", lambda s, o: inspect(o)),
]


@pytest.mark.parametrize(
    "use", [u for _, u in ORM_INSTANCE_USES], ids=[n for n, _ in ORM_INSTANCE_USES]
)
def test_an_orm_object_is_told_it_is_mapped_by_the_orm(
    engine: Engine, use: Callable[[Session, Any], Any]
) -> None:
    OrmUser = _orm_user()
    with Session(engine) as s:
        with pytest.raises(UnmappedInstanceError) as caught:
            use(s, OrmUser(id=1, name="sandy"))
        assert str(caught.value) == ORM_MAPPED
        assert s.get_transaction() is None  # nothing began


@pytest.mark.parametrize(
    "use",
    [lambda s, c: s.get(c, 1), lambda s, c: s.query(c), lambda s, c: inspect(c)],
    ids=["get", "query", "inspect"],
)
def test_an_orm_class_is_told_it_is_mapped_by_the_orm(
    engine: Engine, use: Callable[[Session, Any], Any]
) -> None:
    OrmUser = _orm_user()
    with Session(engine) as s:
        with pytest.raises(UnmappedClassError) as caught:
            use(s, OrmUser)
        assert str(caught.value) == ORM_MAPPED


def test_a_subclass_of_an_orm_class_is_told_it_too() -> None:
    OrmUser = _orm_user()
    Plain = type("Plain", (OrmUser,), {"__module__": __name__, "__abstract__": True})
    with pytest.raises(UnmappedClassError, match="is mapped by the SQLAlchemy ORM, not by"):
        inspect(Plain)


def test_an_orm_object_passed_where_a_class_is_needed_says_both(engine: Engine) -> None:
    OrmUser = _orm_user()
    with Session(engine) as s, pytest.raises(ArgumentError) as caught:
        s.get(OrmUser(id=1), 1)
    assert str(caught.value).endswith(
        "; OrmUser is mapped by the SQLAlchemy ORM, not by sessionkit: pass a class mapped "
        "by sessionkit."
    )


def test_an_orm_class_is_not_mapped_a_second_time() -> None:
    OrmUser = _orm_user()
    table = OrmUser.__table__  # type: ignore[attr-defined]
    with pytest.raises(ArgumentError) as caught:
        map_imperatively(OrmUser, table)
    assert str(caught.value) == (
        "Class test_mapping_refusals._orm_user.<locals>.OrmUser is mapped by the SQLAlchemy "
        "ORM, not by sessionkit; a class can be mapped only once. Map a separate plain class "
        "onto its table instead."
    )
    assert "__sk_mapper__" not in OrmUser.__dict__


def test_an_orm_class_table_maps_onto_a_sessionkit_class(engine: Engine) -> None:
    """What the message advises works."""
    OrmUser = _orm_user()
    Base = declarative_base(metadata=OrmUser.metadata)  # type: ignore[attr-defined]

    class User(Base):
        __table__ = OrmUser.__table__  # type: ignore[attr-defined]

    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, name="sandy"))
        s.commit()
        assert s.get(User, 1).name == "sandy"


def test_selecting_an_orm_class_is_told_it_is_mapped_by_the_orm(engine: Engine) -> None:
    OrmUser = _orm_user()
    OrmUser.metadata.create_all(engine)  # type: ignore[attr-defined]
    with Session(engine) as s, pytest.raises(UnmappedClassError) as caught:
        s.execute(select(OrmUser))
    assert str(caught.value) == ORM_MAPPED


def test_a_plain_class_is_still_just_not_mapped(engine: Engine) -> None:
    class Plain:
        pass

    with Session(engine) as s:
        with pytest.raises(UnmappedInstanceError, match=r"Plain' is not mapped; only instances"):
            s.add(Plain())
        with pytest.raises(UnmappedClassError, match=r"Plain' is not mapped; map it with"):
            s.get(Plain, 1)
