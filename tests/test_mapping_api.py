"""Mapping, instrumentation and the smaller public API; compared with the reference where it
has the same concept."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from models import item_model, setup_users, user_model
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, String, select

import sessionkit
from sessionkit import Session, declarative_base, inspect, map_imperatively, sessionmaker
from sessionkit.exc import ArgumentError, InvalidRequestError, UnmappedClassError


def test_class_attributes_are_core_columns() -> None:
    _, User = user_model(SK)
    assert User.name is User.__table__.c.name
    stmt = select(User).where(User.name == "sandy").order_by(User.id)
    assert str(stmt).startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert "WHERE user_account.name = :name_1 ORDER BY user_account.id" in str(stmt)


def test_keyword_constructor_and_repr() -> None:
    _, User = user_model(SK)
    u = User(name="sandy", fullname="Sandy Cheeks")
    assert repr(u) == "User(name='sandy', fullname='Sandy Cheeks')"
    assert SK.visible(u) == {"name": "sandy", "fullname": "Sandy Cheeks"}
    with pytest.raises(TypeError, match="'nickname' is an invalid keyword argument for User"):
        User(nickname="x")


def test_repr_never_loads(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    assert repr(sandy) == "User(<expired: id, name, fullname>)"
    assert s.get_transaction() is None  # nothing was loaded
    s.close()


def test_existing_table_and_metadata() -> None:
    app_metadata = sa.MetaData()
    accounts = sa.Table(
        "accounts",
        app_metadata,
        Column("id", Integer, primary_key=True),
        Column("owner", String(30)),
    )
    Base = declarative_base(metadata=app_metadata)

    class Account(Base):
        __table__ = accounts

    class Note(Base):
        __tablename__ = "notes"
        __table_args__ = (sa.UniqueConstraint("note_body"), {"comment": "notes"})
        id = Column(Integer, primary_key=True)
        body = Column("note_body", String(50))

    assert Account.__table__ is accounts
    assert set(app_metadata.tables) == {"accounts", "notes"}
    assert Note.__table__.comment == "notes"
    assert Note.body.name == "note_body"
    n = Note(body="hi")
    assert SK.visible(n) == {"body": "hi"}
    assert inspect(Note).attr_keys == ("id", "body")


def test_column_with_another_name_round_trips(engine: Engine) -> None:
    Base = declarative_base()

    class Note(Base):
        __tablename__ = "notes"
        id = Column(Integer, primary_key=True)
        body = Column("note_body", String(50))

    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Note(body="hello"))
        s.commit()
        note = s.scalars(select(Note)).one()
        assert note.body == "hello"
        note.body = "changed"
        s.commit()
        assert s.scalar(select(Note.body)) == "changed"


def test_map_imperatively_keeps_the_class_own_init(engine: Engine) -> None:
    md = sa.MetaData()
    table = sa.Table(
        "people", md, Column("pid", Integer, primary_key=True), Column("nm", String(30))
    )

    class Person:
        def __init__(self, name: str) -> None:
            self.name = name

    map_imperatively(Person, table, attribute_names={"pid": "id", "nm": "name"})
    md.create_all(engine)
    with Session(engine) as s:
        p = Person("ada")
        s.add(p)
        s.commit()
        assert p.id == 1  # type: ignore[attr-defined]
        assert s.get(Person, 1) is p
        assert s.scalars(select(Person).where(Person.name == "ada")).one() is p


def test_mapping_errors_name_the_class_and_the_fix() -> None:
    md = sa.MetaData()
    nokey = sa.Table("nokey", md, Column("a", Integer))
    Base = declarative_base()
    with pytest.raises(ArgumentError, match="table 'nokey': the table has no primary key"):

        class NoKey(Base):
            __table__ = nokey

    with pytest.raises(ArgumentError, match="no __tablename__ or __table__"):

        class Nothing(Base):
            id = Column(Integer, primary_key=True)

    _, User = user_model(SK)
    with pytest.raises(ArgumentError, match="already mapped"):
        map_imperatively(User, User.__table__)

    with pytest.raises(ArgumentError, match="does not map class hierarchies"):

        class Admin(User):  # type: ignore[misc, valid-type]
            pass

    with pytest.raises(UnmappedClassError, match=r"Class 'builtins\.int' is not mapped"):
        Session().get(int, 1)


def test_abstract_base_and_mixin_columns() -> None:
    Base = declarative_base()

    class Timestamped:
        created = Column(Integer, default=0)

    class Thing(Timestamped, Base):
        __tablename__ = "things"
        id = Column(Integer, primary_key=True)

    class Other(Timestamped, Base):
        __tablename__ = "others"
        id = Column(Integer, primary_key=True)

    assert Thing.__table__.c.created is not Other.__table__.c.created
    assert inspect(Thing).attr_keys == ("id", "created")  # the ORM's order: mixins last


def test_unbound_session_says_how_to_bind() -> None:
    _, User = user_model(SK)
    with pytest.raises(InvalidRequestError, match=r"Session\(engine\)"):
        Session().get(User, 1)


def test_bad_bind_and_join_mode() -> None:
    with pytest.raises(ArgumentError, match="Engine or a Connection"):
        Session(bind="sqlite://")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="join_transaction_mode"):
        Session(join_transaction_mode="sometimes")  # type: ignore[arg-type]


def test_sessionmaker_configure(engine: Engine) -> None:
    maker = sessionmaker()
    maker.configure(bind=engine, expire_on_commit=False)
    s = maker()
    assert s.bind is engine and s.expire_on_commit is False
    assert maker(expire_on_commit=True).expire_on_commit is True
    assert "sessionmaker" in repr(maker)


def test_public_names() -> None:
    for name in (
        "Session",
        "sessionmaker",
        "declarative_base",
        "inspect",
        "make_transient",
        "make_transient_to_detached",
        "map_imperatively",
    ):
        assert hasattr(sessionkit, name)
    import sessionkit.exc as exc

    assert issubclass(exc.DetachedInstanceError, sa.exc.SQLAlchemyError)
    assert not issubclass(exc.DetachedInstanceError, sa.exc.InvalidRequestError)
    assert exc.DetachedInstanceError.code == "bhk3"
    assert issubclass(exc.ObjectDeletedError, sa.exc.InvalidRequestError)
    assert issubclass(exc.UnmappedInstanceError, exc.UnmappedError)
    assert issubclass(exc.UnmappedError, sa.exc.InvalidRequestError)
    assert issubclass(exc.StaleDataError, sa.exc.SQLAlchemyError)
    assert issubclass(exc.FlushError, sa.exc.SQLAlchemyError)


# -- query facade and results, against the reference --------------------------------------


def query_facade(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick", "squidward", "gary"))
    obs.rec.clear()
    s = api.Session(engine)
    q = s.query(User)
    obs.append(("all", [u.name for u in q.order_by(User.id).all()]))
    obs.append(("filter_by", [u.id for u in q.filter_by(name="gary").all()]))
    obs.append(("limit offset", [u.id for u in q.order_by(User.id).limit(2).offset(1).all()]))
    obs.append(("first", q.order_by(User.id.desc()).first().name))
    obs.append(("one_or_none", q.filter(User.id == 99).one_or_none()))
    obs.append(("count", q.filter(User.id > 1).count()))
    obs.error("one() with two rows", lambda: q.filter(User.id > 2).one())
    obs.error("one() with no row", lambda: q.filter(User.id > 20).one())
    obs.sql("queries")
    rows = s.execute(select(User, User.name).order_by(User.id)).all()
    obs.append(("mixed row", rows[0][0] is s.get(User, 1), rows[0][1], rows[0]._fields))
    obs.append(("plain columns", s.execute(select(User.id, User.name).where(User.id == 1)).all()))
    obs.append(("text", s.execute(sa.text("SELECT name FROM user_account WHERE id = 2")).all()))
    obs.append(("scalar", s.scalar(select(User).where(User.id == 3)).name))
    obs.sql("results")
    s.close()


def test_query_facade_and_results(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(query_facade, engine, ref_engine)
    facts = {o[0]: o for o in obs}
    assert facts["all"][1] == ["sandy", "patrick", "squidward", "gary"]
    assert facts["limit offset"][1] == [2, 3]
    assert facts["count"][1] == 3
    assert facts["one() with two rows"][2] == "MultipleResultsFound"
    assert facts["one() with no row"][2] == "NoResultFound"
    assert facts["mixed row"][1:] == (True, "sandy", ("User", "name"))


def identity_map_view(api: Api, engine: Engine, obs: Obs) -> None:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    s = api.Session(engine)
    a = Item(id="a", name="A")
    s.add(a)
    s.flush()
    key = api.inspect(a).identity_key
    obs.append(("key", key[0].__name__, key[1:]))
    obs.append(("mapping", s.identity_map[key] is a, key in s.identity_map, len(s.identity_map)))
    obs.append(("keys", [(k[0].__name__, k[1]) for k in s.identity_map]))
    obs.append(("populate_existing get", s.get(Item, "a", populate_existing=True) is a))
    obs.sql("SQL")
    s.close()


def test_identity_map_as_a_mapping(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(identity_map_view, engine, ref_engine)
    assert obs[0] == ("key", "Item", (("a",), None))


@pytest.mark.parametrize("api", [SK, ORM], ids=["sessionkit", "orm"])
def test_unmapped_instance(api: Api) -> None:
    s: Any = api.Session()
    with pytest.raises(api.UnmappedInstanceError, match=r"Class 'builtins\.object' is not mapped"):
        s.add(object())
    with pytest.raises(api.UnmappedInstanceError, match=r"Class 'builtins\.str' is not mapped"):
        "x" in s  # noqa: B015
