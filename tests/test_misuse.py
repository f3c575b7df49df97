"""Misusing the API: each mistake gets a specific error that names the object (or class)
and the fix, with the ORM's error class and the ORM's words first; nothing committed is
lost, and the session keeps working.

Scenarios that exist in both libraries run on both (``reference.compare``) and must
observe the same outcomes; sessionkit's longer messages are checked separately.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as orm
from models import setup_users, user_model
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, String, select, text

from sessionkit import Session, map_imperatively
from sessionkit.exc import (
    ArgumentError,
    InvalidRequestError,
    UnmappedClassError,
    UnmappedInstanceError,
)
from support import by_label, hexid, message_starts_or_none


def _rows(engine: Engine, sql: str = "SELECT id, name FROM user_account ORDER BY id") -> Any:
    """Committed rows, read through a separate connection."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _still_works(api: Api, session: Any, User: Any, engine: Engine, obs: Obs) -> None:
    """The session can still add, change and commit; and the committed rows are intact."""
    session.add(User(name="added after the mistake"))
    session.get(User, 1).name = "sandy, after the mistake"
    session.commit()
    obs.append(("rows after", _rows(engine)))


# -- unmapped objects and classes -----------------------------------------------------------

SESSION_METHODS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("add", lambda s, o: s.add(o)),
    ("add_all", lambda s, o: s.add_all([o])),
    ("delete", lambda s, o: s.delete(o)),
    ("expire", lambda s, o: s.expire(o)),
    ("refresh", lambda s, o: s.refresh(o)),
    ("merge", lambda s, o: s.merge(o)),
    ("expunge", lambda s, o: s.expunge(o)),
    ("in", lambda s, o: o in s),
    ("is_modified", lambda s, o: s.is_modified(o)),
]


class Plain:
    """A class nobody mapped."""


@pytest.mark.parametrize("method", [m[0] for m in SESSION_METHODS])
def test_unmapped_instances_are_refused_like_the_orm(
    engine: Engine, ref_engine: Engine, method: str
) -> None:
    call = dict(SESSION_METHODS)[method]

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        session.get(User, 1)
        obs.rec.clear()
        for label, obj in [("object()", object()), ("None", None), ("Plain()", Plain())]:
            err = obs.error(f"{method}({label})", lambda obj=obj: call(session, obj))
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            obs.append(
                (f"{label} message", message_starts_or_none(err, f"Class '{name}' is not mapped"))
            )
        obs.sql("no SQL")
        _still_works(api, session, User, engine, obs)
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    for label in ("object()", "None", "Plain()"):
        assert facts[f"{method}({label})"][1:] == ("raises", "UnmappedInstanceError")
        assert facts[f"{label} message"][1] is True
    assert facts["no SQL"][1] == []
    assert facts["rows after"][1][0] == (1, "sandy, after the mistake")


@pytest.mark.parametrize("method", [m[0] for m in SESSION_METHODS if m[0] != "in"])
def test_a_class_passed_where_an_instance_is_needed(
    engine: Engine, ref_engine: Engine, method: str
) -> None:
    call = dict(SESSION_METHODS)[method]

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        err = obs.error(method, lambda: call(session, User))
        hint = f"was a class ({User.__module__}.User) supplied where an instance was required?"
        obs.append(("names the class", err is not None and hint in str(err)))
        obs.sql("no SQL")
        _still_works(api, session, User, engine, obs)
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts[method][1:] == ("raises", "UnmappedInstanceError")
    assert facts["names the class"][1] is True
    assert facts["no SQL"][1] == []


def test_a_class_passed_where_an_instance_is_needed_says_what_to_pass() -> None:
    _, User = user_model(SK)
    with pytest.raises(UnmappedInstanceError) as caught:
        Session().add(User)
    assert str(caught.value) == (
        "Class 'sessionkit.declarative.DeclarativeMeta' is not mapped; was a class (models.User) "
        "supplied where an "
        "instance was required? Pass an instance, e.g. session.add(User(...)), not the "
        "class itself."
    )


def test_an_instance_passed_where_a_class_is_needed(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        err = obs.error("get(instance, 1)", lambda: session.get(sandy, 1))
        obs.append(
            ("message", message_starts_or_none(err, "Expected mapped class or mapper, got: "))
        )
        obs.sql("no SQL")
        obs.append(("get(User, 1) still", session.get(User, 1) is sandy))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["get(instance, 1)"][1:] == ("raises", "ArgumentError")
    assert facts["message"][1] is True
    assert facts["no SQL"][1] == []


def test_an_instance_passed_where_a_class_is_needed_says_what_to_pass(engine: Engine) -> None:
    User = setup_users(SK, engine)
    with Session(engine) as s:
        sandy = s.get(User, 1)
        with pytest.raises(ArgumentError) as caught:
            s.get(sandy, 1)
        assert str(caught.value) == (
            "Expected mapped class or mapper, got: User(id=1, name='sandy', fullname='Sandy'); "
            "pass the class User itself, not an instance of it."
        )
        with pytest.raises(ArgumentError, match="pass the class User itself"):
            s.query(sandy)
        with pytest.raises(ArgumentError, match=r"got: 'user_account'; pass a mapped class"):
            s.get("user_account", 1)  # type: ignore[call-overload]
        with pytest.raises(UnmappedClassError, match=r"Class 'test_misuse\.Plain' is not mapped"):
            s.get(Plain, 1)


# -- mapping mistakes -----------------------------------------------------------------------


def test_a_class_mapped_twice_is_refused_and_keeps_its_first_mapping(engine: Engine) -> None:
    Base, User = user_model(SK)
    other = sa.Table("other_users", sa.MetaData(), Column("id", Integer, primary_key=True))
    for table in (User.__table__, other):  # declarative, then imperatively (same or other)
        with pytest.raises(ArgumentError) as caught:
            map_imperatively(User, table)
        assert str(caught.value) == (
            "Class models.user_model.<locals>.User is already mapped to table 'user_account'; "
            "a class can be mapped only once. Create a separate class for the second table."
        )

    class Legacy:
        pass

    first = sa.Table("legacy_a", Base.metadata, Column("id", Integer, primary_key=True))
    second = sa.Table("legacy_b", Base.metadata, Column("key", Integer, primary_key=True))
    map_imperatively(Legacy, first)
    with pytest.raises(ArgumentError, match=r"Legacy is already mapped to table 'legacy_a'"):
        map_imperatively(Legacy, second)
    # Both classes still work as first mapped.
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([User(name="u"), Legacy()])
        s.commit()
        assert s.scalars(select(Legacy)).one().id == 1  # type: ignore[attr-defined]
    assert _rows(engine) == [(1, "u")]


def test_a_class_mapped_twice_is_an_argument_error_in_the_orm_too() -> None:
    _, User = user_model(ORM)
    with pytest.raises(sa.exc.ArgumentError, match="already has a primary mapper"):
        orm.registry().map_imperatively(User, User.__table__)


@pytest.mark.parametrize("api", [SK, ORM], ids=["sessionkit", "orm"])
def test_a_table_without_a_primary_key_is_an_argument_error(api: Api) -> None:
    Base = api.declarative_base()
    with pytest.raises(sa.exc.ArgumentError, match="'nokey_a'"):

        class NoKeyA(Base):
            __tablename__ = "nokey_a"
            name = Column(String(20))
            other = Column(Integer)

    nokey_b = sa.Table("nokey_b", sa.MetaData(), Column("name", String(20)))
    with pytest.raises(sa.exc.ArgumentError, match="'nokey_b'"):

        class NoKeyB(Base):
            __table__ = nokey_b


def test_a_table_without_a_primary_key_says_how_to_declare_one() -> None:
    nokey = sa.Table("nokey", sa.MetaData(), Column("name", String(20)))

    class Legacy:
        pass

    with pytest.raises(ArgumentError) as caught:
        map_imperatively(Legacy, nokey)
    assert str(caught.value) == (
        "Cannot map class Legacy to table 'nokey': the table has no primary key. sessionkit "
        "identifies every row by its primary key; declare one with Column(..., "
        "primary_key=True) or a PrimaryKeyConstraint."
    )
    assert not hasattr(Legacy, "__sk_mapper__")  # nothing half-mapped is left behind


# -- an object of another session -----------------------------------------------------------

OTHER_SESSION_METHODS = ["add", "delete", "expire", "refresh", "expunge"]


def test_an_object_of_another_live_session(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        second = api.Session(engine)
        sandy = first.get(User, 1)
        sandy.name = "changed in first"
        obs.rec.clear()
        for method in OTHER_SESSION_METHODS:
            call = dict(SESSION_METHODS)[method]
            err = obs.error(method, lambda call=call: call(second, sandy))
            obs.append((f"{method}: still in first", sandy in first, sandy in second))
            message = None if err is None else str(err).replace(hexid(sandy), "0x...")
            obs.append((f"{method}: message", message and message[:40]))
        obs.sql("no SQL")
        copy = second.merge(sandy)  # the way to use it in the second session
        obs.append(("merge copies", copy is not sandy, copy.name, sandy in first))
        second.commit()
        obs.append(("committed by second", _rows(engine)[0]))
        first.rollback()
        obs.append(("first rolled back", sandy.name))
        second.close()
        first.close()
        second.add(sandy)  # the first session let go of it: now it can move
        obs.append(("moved", sandy in second, api.state(sandy)))
        second.close()

    facts = by_label(compare(scen, engine, ref_engine))
    for method in OTHER_SESSION_METHODS:
        assert facts[method][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{method}: still in first"][1:] == (True, False)
    assert facts["no SQL"][1] == []
    assert facts["merge copies"][1:] == (True, "changed in first", True)
    assert facts["committed by second"][1] == (1, "changed in first")
    assert facts["first rolled back"][1] == "changed in first"
    assert facts["moved"][1:] == (True, "persistent")


def test_an_object_of_another_live_session_message_names_both_and_the_fix(
    engine: Engine,
) -> None:
    User = setup_users(SK, engine)
    first, second = Session(engine), Session(engine)
    sandy = first.get(User, 1)
    who = f"'<User at {hexid(sandy)}>'"
    where = (
        f"it is attached to session '{first.hash_key}' (this is '{second.hash_key}'): use "
        f"that session, or copy it into this one with session.merge(obj)"
    )
    for call in (second.expire, second.refresh):
        with pytest.raises(InvalidRequestError) as caught:
            call(sandy)
        assert str(caught.value) == (
            f"Instance {who} is not persistent within this Session; {where}."
        )
    with pytest.raises(InvalidRequestError) as caught:
        second.expunge(sandy)
    assert str(caught.value) == (
        f"Instance <User at {hexid(sandy)}> is not present in this Session; {where}."
    )
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("setup", "state"),
    [
        (lambda s, User: User(name="new"), "it is transient: add it with session.add(obj)"),
        (
            lambda s, User: (s.add(u := User(name="new")), u)[1],
            "it is pending: call session.flush() first",
        ),
        (
            lambda s, User: (s.expunge(u := s.get(User, 1)), u)[1],
            "it is detached: re-attach it with session.add(obj) first",
        ),
        (
            lambda s, User: (s.delete(u := s.get(User, 1)), s.flush(), u)[2],
            "it was deleted: its DELETE was flushed",
        ),
    ],
    ids=["transient", "pending", "detached", "deleted"],
)
def test_refresh_of_an_object_that_is_not_persistent_says_why(
    engine: Engine, setup: Callable[[Any, Any], Any], state: str
) -> None:
    User = setup_users(SK, engine)
    with Session(engine) as s:
        obj = setup(s, User)
        with pytest.raises(InvalidRequestError) as caught:
            s.refresh(obj)
        assert str(caught.value) == (
            f"Instance '<User at {hexid(obj)}>' is not persistent within this Session; {state}."
        )


# -- the engine was disposed ----------------------------------------------------------------


def test_a_session_survives_engine_dispose_like_the_orm(engine: Engine, ref_engine: Engine) -> None:
    """``Engine.dispose()`` replaces the pool: a connection a session holds stays usable
    until the session returns it, the next transaction checks out a new one. Nothing
    committed or flushed is lost, and the SQL is the ORM's."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        session.commit()  # sandy expired, the connection back in the (old) pool
        engine.dispose()
        obs.sql("dispose between transactions", pool=True)
        obs.append(("reload after dispose", sandy.name))
        sandy.name = "flushed before dispose"
        session.add(User(name="new before dispose"))
        session.flush()
        obs.sql("a new connection, then the flush", pool=True)
        engine.dispose()  # while the session holds its connection, mid-transaction
        patrick = session.get(User, 2)
        patrick.name = "changed after dispose"
        session.commit()
        obs.sql("the held connection finishes the transaction", pool=True)
        obs.append(("rows", _rows(engine)))
        obs.append(("values", sandy.name, patrick.name))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["rows"][1] == [
        (1, "flushed before dispose"),
        (2, "changed after dispose"),
        (3, "squidward"),
        (4, "new before dispose"),
    ]
    assert facts["values"][1:] == ("flushed before dispose", "changed after dispose")
    assert ("checkout",) in facts["a new connection, then the flush"][1]


# -- a permanently closed session -----------------------------------------------------------

PERMANENTLY_CLOSED = (
    "This Session has been permanently closed and is unable to handle any more transaction "
    "requests."
)
CLOSED_OPERATIONS: list[tuple[str, Callable[[Any, Any, Any], Any]]] = [
    ("add", lambda s, User, sandy: s.add(User(name="late"))),
    ("get", lambda s, User, sandy: s.get(User, 1)),
    ("execute", lambda s, User, sandy: s.execute(select(User))),
    ("query", lambda s, User, sandy: s.query(User).all()),
    ("merge", lambda s, User, sandy: s.merge(User(id=1, name="merged"))),
    ("begin", lambda s, User, sandy: s.begin()),
    ("begin_nested", lambda s, User, sandy: s.begin_nested()),
    ("connection", lambda s, User, sandy: s.connection()),
    ("commit", lambda s, User, sandy: s.commit()),
    ("rollback", lambda s, User, sandy: s.rollback()),
    ("flush", lambda s, User, sandy: s.flush()),
    ("close", lambda s, User, sandy: s.close()),
]


def test_a_permanently_closed_session_refuses_work_like_the_orm(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine, close_resets_only=False)
        sandy = session.get(User, 1)
        sandy.name = "never committed"
        session.close()
        obs.rec.clear()
        for label, op in CLOSED_OPERATIONS:
            err = obs.error(label, lambda op=op: op(session, User, sandy))
            obs.append((f"{label}: message", message_starts_or_none(err, PERMANENTLY_CLOSED)))
        obs.sql("no SQL")
        obs.append(("sandy", api.state(sandy), sandy.name))
        obs.append(("rows", _rows(engine)))
        fresh = api.Session(engine)  # the way out
        fresh.add(sandy)
        fresh.commit()
        obs.append(("rows after", _rows(engine)[0]))
        fresh.close()

    facts = by_label(compare(scen, engine, ref_engine))
    for label, _ in CLOSED_OPERATIONS:
        if label in ("rollback", "flush", "close"):
            assert facts[label][1:] == ("ok",)
        else:
            assert facts[label][1:] == ("raises", "InvalidRequestError")
            assert facts[f"{label}: message"][1] is True
    assert facts["no SQL"][1] == []
    assert facts["sandy"][1:] == ("detached", "never committed")
    assert facts["rows"][1][0] == (1, "sandy")
    assert facts["rows after"][1] == (1, "never committed")


def test_a_permanently_closed_session_says_what_to_do(engine: Engine) -> None:
    User = setup_users(SK, engine)
    session = Session(engine, close_resets_only=False)
    session.close()
    with pytest.raises(InvalidRequestError) as caught:
        session.get(User, 1)
    assert str(caught.value) == (
        f"{PERMANENTLY_CLOSED} It was closed by close() with close_resets_only=False; "
        f"create a new Session, or pass close_resets_only=True (the default) to keep using "
        f"one Session after close()."
    )


# -- get() with a wrong identifier ----------------------------------------------------------


def _composite(api: Api, engine: Engine) -> Any:
    Base = api.declarative_base()

    class Pair(Base):
        __tablename__ = "pairs"
        a = Column(Integer, primary_key=True)
        b = Column(String(5), primary_key=True)
        name = Column(String(20))

    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add(Pair(a=1, b="x", name="one-x"))
        s.commit()
    return Pair


WRONG_IDENTIFIERS: list[tuple[str, str, Any]] = [
    ("single: two values", "User", (1, 2)),
    ("single: no values", "User", ()),
    ("single: dict with an extra key", "User", {"id": 1, "name": "sandy"}),
    ("composite: a scalar", "Pair", 1),
    ("composite: one value", "Pair", (1,)),
    ("composite: three values", "Pair", [1, "x", 2]),
    ("composite: dict missing a key", "Pair", {"a": 1}),
    ("composite: dict with an extra key", "Pair", {"a": 1, "b": "x", "c": 3}),
    ("composite: dict with a wrong name", "Pair", {"a": 1, "c": "x"}),
]


def test_get_with_a_wrong_identifier_is_refused_like_the_orm(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        classes = {"User": setup_users(api, engine), "Pair": _composite(api, engine)}
        session = api.Session(engine)
        obs.rec.clear()
        for label, cls, ident in WRONG_IDENTIFIERS:
            err = obs.error(label, lambda cls=cls, ident=ident: session.get(classes[cls], ident))
            obs.append((f"{label}: message", message_starts_or_none(err, "Incorrect ")))
        obs.sql("no SQL")
        obs.append(("right ones", session.get(classes["Pair"], (1, "x")).name))
        obs.append(("by name", session.get(classes["Pair"], {"b": "x", "a": 1}).name))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.append(("get(None)", session.get(classes["User"], None)))
            obs.append(("get((None, None))", session.get(classes["Pair"], (None, None))))
        obs.append(("warnings", [str(w.message)[:50] for w in caught]))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    for label, _, _ in WRONG_IDENTIFIERS:
        assert facts[label][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{label}: message"][1] is True
    assert facts["no SQL"][1] == []
    assert facts["right ones"][1] == facts["by name"][1] == "one-x"
    assert facts["get(None)"][1] is None
    assert facts["warnings"][1] == ["fully NULL primary key identity cannot load any ob"] * 2


def test_get_with_a_wrong_identifier_names_the_columns_and_the_fix(engine: Engine) -> None:
    Pair = _composite(SK, engine)
    fix = "pass a tuple of 2 values in the order (a, b), or a dict with exactly those keys"
    with Session(engine) as s:
        with pytest.raises(InvalidRequestError) as caught:
            s.get(Pair, (1,))
        assert str(caught.value) == (
            "Incorrect number of values in identifier for Pair: the primary key of table "
            f"'pairs' has 2 columns (a, b), got 1 value; {fix}."
        )
        with pytest.raises(InvalidRequestError) as caught:
            s.get(Pair, {"a": 1, "c": "x"})
        assert str(caught.value) == (
            "Incorrect names of values in identifier for Pair: the primary key of table "
            f"'pairs' has the columns (a, b), got the keys (a, c); {fix}."
        )


def test_get_with_a_value_of_the_wrong_type_like_the_orm(
    engine: Engine, ref_engine: Engine
) -> None:
    """A key the database cannot compare (PostgreSQL: text for an integer column) fails in
    the SELECT, as Core and the ORM fail; rollback() makes the session usable again."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        session.get(User, 1).name = "unflushed"
        err = obs.error("get(User, 'abc')", lambda: session.get(User, "abc"))
        if err is not None:
            session.rollback()
        obs.append(("rows", _rows(engine)))
        obs.append(("after", session.get(User, 2).name))
        session.get(User, 2).name = "patrick, committed"
        session.commit()
        obs.append(("rows after", _rows(engine)[1]))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["rows"][1][0] == (1, "sandy")
    assert facts["rows after"][1] == (2, "patrick, committed")
