"""Detaching objects (docs/behaviour.md: states-8, states-9, states-15, close-1) and closing
the session (docs/behaviour.md, "Close, reset and detached objects"): expunge(), close(), a
garbage-collected session, deleted objects after close or commit, the context managers,
close_resets_only=False with reset(), and expunge_all(). Each scenario runs on sessionkit
and on the SQLAlchemy ORM.

Each scenario runs on sessionkit and on the SQLAlchemy ORM through ``compare()``; the
recorded SQL, transaction and pool events, states and error classes must be equal. After
each comparison a few spot checks pin the expected facts from docs/behaviour.md, so a
behaviour shared by both runs but contrary to the documented behaviour cannot hide.

Messages are checked by prefix inside the scenario (``str(err).startswith(<reference's
words>)``) so that the same check runs on both libraries; sessionkit may add guidance
after the reference's words.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from models import setup_users
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import Engine, select
from sqlalchemy.exc import InvalidRequestError

from support import (
    by_label,
    by_unique_label,
    event_kinds,
    hexid,
    message_starts,
    named_key,
    not_bound,
    record_message,
    user_ids,
)

# -- states-8, states-9, states-15, close-1. Objects leaving the session -------------------


def test_states9_expunge(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        pending = User(name="p")
        session.add(pending)
        session.expunge(pending)
        obs.append(("pending -> transient", api.state(pending), pending in session))
        obs.append(("pending values", api.visible(pending), len(session.new)))
        session.expunge(sandy)
        insp = api.inspect(sandy)
        obs.append(("persistent -> detached", api.state(sandy), sandy in session))
        obs.append(("detached facts", insp.session is None, api.visible(sandy)))
        obs.append(("out of the map", (User, (1,), None) in session.identity_map))
        obs.sql("expunge: no SQL")

        err = obs.error("expunge detached again", lambda: session.expunge(sandy))
        record_message(
            obs,
            "detached message",
            err,
            f"Instance <User at {hexid(sandy)}> is not present in this Session",
        )
        transient = User(name="t")
        err = obs.error("expunge transient", lambda: session.expunge(transient))
        record_message(
            obs,
            "transient message",
            err,
            f"Instance <User at {hexid(transient)}> is not present in this Session",
        )
        err = obs.error("expunge expunged pending", lambda: session.expunge(pending))
        obs.append(("states after errors", api.state(sandy), api.state(pending)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["pending -> transient"][1:] == ("transient", False)
    assert facts["pending values"][1:] == ({"name": "p"}, 0)
    assert facts["persistent -> detached"][1:] == ("detached", False)
    assert facts["detached facts"][1:] == (True, {"id": 1, "name": "sandy", "fullname": "Sandy"})
    assert facts["out of the map"][1] is False
    assert facts["expunge: no SQL"][1] == []
    for label in ("expunge detached again", "expunge transient", "expunge expunged pending"):
        assert facts[label][1:] == ("raises", "InvalidRequestError")
    expected = "Instance <User at 0x...> is not present in this Session"
    assert facts["detached message"][1:] == (True, expected)
    assert facts["transient message"][1:] == (True, expected)
    assert facts["states after errors"][1:] == ("detached", "transient")


def test_close1_close_detaches_persistent_and_makes_pending_transient(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        patrick = session.get(User, 2)
        patrick.name = "changed"
        inserted = User(name="inserted")
        session.add(inserted)
        session.flush()
        pending = User(name="pending")
        session.add(pending)
        obs.rec.clear()
        session.close()
        obs.sql("close", pool=True)
        for label, o in [
            ("sandy", sandy),
            ("patrick", patrick),
            ("inserted", inserted),
            ("pending", pending),
        ]:
            insp = api.inspect(o)
            obs.append((label, api.state(o), insp.session is None, o in session, api.visible(o)))
        obs.append(("collections", len(session.new), len(session.dirty), len(session.identity_map)))
        obs.append(("checked out", engine.pool.checkedout()))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert event_kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
    assert facts["sandy"][1:] == (
        "detached",
        True,
        False,
        {"id": 1, "name": "sandy", "fullname": "Sandy"},
    )
    assert facts["patrick"][1:4] == ("detached", True, False)
    assert facts["patrick"][4]["name"] == "changed"
    assert facts["inserted"][1:4] == ("detached", True, False)
    assert facts["inserted"][4] == {"name": "inserted", "id": 4}
    assert facts["pending"][1:] == ("transient", True, False, {"name": "pending"})
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["checked out"][1] == 0


def test_states15_garbage_collected_session_detaches_its_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        sandy = session.get(User, 1)
        session.commit()
        pending = User(name="pending")
        session.add(pending)
        obs.append(("before", api.state(sandy), api.state(pending)))
        session_ref = weakref.ref(session)
        del session
        gc.collect()
        obs.append(("session collected", session_ref() is None))
        obs.append(("after", api.state(sandy), api.state(pending)))
        obs.append(("no session", api.inspect(sandy).session, api.inspect(pending).session))
        obs.append(("values kept", api.visible(sandy), api.visible(pending)))
        other = api.Session(engine)
        obs.rec.clear()
        other.add(sandy)
        other.add(pending)
        obs.sql("re-add: no SQL")
        obs.append(("re-added", api.state(sandy), api.state(pending), sandy in other))
        other.commit()
        obs.sql("commit")
        obs.append(("pending inserted", named_key(api, pending)))
        other.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["before"][1:] == ("persistent", "pending")
    assert facts["session collected"][1] is True
    assert facts["after"][1:] == ("detached", "transient")
    assert facts["no session"][1:] == (None, None)
    assert facts["re-add: no SQL"][1] == []
    assert facts["re-added"][1:] == ("persistent", "pending", True)
    assert event_kinds(facts["commit"][1]) == ["BEGIN", "INSERT", "COMMIT"]
    assert facts["pending inserted"][1] == ("User", (4,), None)


def test_states8_delete_detached_reattaches_then_rollback_restores(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        u = first.get(User, 2)
        first.close()
        session = api.Session(engine)
        obs.rec.clear()
        session.delete(u)
        obs.sql("delete(detached): no SQL")
        obs.append(("re-attached", api.state(u), u in session, u in session.deleted))
        session.flush()
        obs.sql("flush")
        obs.append(("flushed", api.state(u), u in session, api.inspect(u).session is session))
        session.rollback()
        obs.sql("rollback")
        obs.append(("rolled back", api.state(u), u in session, u in session.deleted))
        obs.append(("expired", api.loaded(u), api.inspect(u).was_deleted))
        obs.append(("row is back", u.name))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["delete(detached): no SQL"][1] == []
    assert facts["re-attached"][1:] == ("persistent", True, True)
    assert event_kinds(facts["flush"][1]) == ["BEGIN", "DELETE"]
    assert facts["flushed"][1:] == ("deleted", False, True)
    assert event_kinds(facts["rollback"][1]) == ["ROLLBACK"]
    assert facts["rolled back"][1:] == ("persistent", True, False)
    assert facts["expired"][1:] == ([], False)
    assert facts["row is back"][1] == "patrick"


def _flushed_delete_then(api: Api, engine: Engine, how: str) -> tuple[Any, Any]:
    User = setup_users(api, engine)
    session = api.Session(engine, expire_on_commit=(how == "close"))
    u = session.get(User, 1)
    session.delete(u)
    session.flush()
    if how == "close":
        session.close()
    else:
        session.commit()
    return session, u


@pytest.mark.parametrize("how", ["close", "commit with expire_on_commit=False"])
def test_states8_flushed_delete_is_detached_in_sessionkit(engine: Engine, how: str) -> None:
    """A documented difference: sessionkit detaches a flushed-deleted object on close()
    (and on commit with expire_on_commit=False); the reference leaves it 'deleted' and
    attached to the closed session."""
    session, u = _flushed_delete_then(SK, engine, how)
    insp = SK.inspect(u)
    assert SK.state(u) == "detached"
    assert insp.was_deleted is True
    assert insp.session is None
    assert u not in session
    assert SK.visible(u) == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    other = SK.Session(engine)
    with pytest.raises(InvalidRequestError) as info:
        other.add(u)
    assert str(info.value).startswith(f"Instance '<User at {hexid(u)}>' has been deleted.")
    other.close()


@pytest.mark.parametrize("how", ["close", "commit with expire_on_commit=False"])
def test_states8_reference_quirk_leaves_flushed_delete_attached(
    ref_engine: Engine, how: str
) -> None:
    """The reference side of the difference above, so a change in it is noticed."""
    session, u = _flushed_delete_then(ORM, ref_engine, how)
    insp = ORM.inspect(u)
    assert ORM.state(u) == "deleted"
    assert insp.was_deleted is True
    assert insp.session is session
    assert u not in session


# -- F. close(), context managers, reset(), expunge_all() ----------------------------------


PERMANENTLY_CLOSED = (
    "This Session has been permanently closed and is unable to handle any more transaction "
    "requests."
)


def f1_close_after_flushed_insert(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    n = User(name="n")
    s.add(n)
    s.flush()
    pending = User(name="pending")
    s.add(pending)
    obs.rec.clear()
    s.close()
    obs.sql("close", pool=True)
    obs.append(("checked out", engine.pool.checkedout(), s.in_transaction()))
    for label, o in {"inserted": n, "sandy": sandy}.items():
        insp = api.inspect(o)
        obs.append((label, api.state(o), insp.identity, api.visible(o), insp.session is None))
    obs.append(("pending", api.state(pending), api.visible(pending)))
    obs.append(("rows", user_ids(api, engine, User)))


def test_close2_close_detaches_objects_inserted_in_the_rolled_back_transaction(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(f1_close_after_flushed_insert, engine, ref_engine))
    assert event_kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
    assert facts["checked out"][1:] == (0, False)
    assert facts["inserted"][1:] == ("detached", (4,), {"name": "n", "id": 4}, True)
    assert facts["sandy"][1:] == (
        "detached",
        (1,),
        {"id": 1, "name": "sandy", "fullname": "Sandy"},
        True,
    )
    assert facts["pending"][1:] == ("transient", {"name": "pending"})
    assert len(facts["rows"][1]) == 3


def f2_detached_keeps_values(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    users = s.scalars(select(User).order_by(User.id)).all()
    users[1].name = "unflushed"
    s.close()
    obs.rec.clear()
    obs.append(("values", [(u.id, u.name, u.fullname) for u in users]))
    obs.append(("states", [api.state(u) for u in users]))
    obs.sql("reads", pool=True)
    s2 = api.Session(engine)
    s2.add(users[1])
    obs.append(("re-added dirty", users[1] in s2.dirty))
    s2.commit()
    obs.sql("the detached change is flushed")
    s2.close()
    err = obs.error("expired after commit + close", lambda: users[1].name)
    obs.append(("message", message_starts(err, not_bound(users[1]))))


def test_close3_detached_objects_keep_loaded_values(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(f2_detached_keeps_values, engine, ref_engine))
    assert facts["values"][1] == [
        (1, "sandy", "Sandy"),
        (2, "unflushed", "Patrick"),
        (3, "squidward", "Squidward"),
    ]
    assert facts["states"][1] == ["detached"] * 3
    assert facts["reads"][1] == []
    assert facts["re-added dirty"][1] is True
    assert event_kinds(facts["the detached change is flushed"][1]) == ["BEGIN", "UPDATE", "COMMIT"]
    assert facts["expired after commit + close"][2] == "DetachedInstanceError"
    assert facts["message"][1] is True


def f3_reusable_after_close(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.close()
    obs.append(("identity map", len(list(s.identity_map.keys())), s.in_transaction()))
    obs.rec.clear()
    again = s.get(User, 1)
    obs.sql("new autobegin", pool=True)
    obs.append(("fresh object", again is sandy, api.state(again), api.state(sandy)))
    s.close()
    obs.sql("close", pool=True)
    s.close()
    obs.sql("close again", pool=True)


def test_close4_session_reusable_after_close_with_fresh_identity_map(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(f3_reusable_after_close, engine, ref_engine))
    assert facts["identity map"][1:] == (0, False)
    assert event_kinds(facts["new autobegin"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert facts["fresh object"][1:] == (False, "persistent", "detached")
    assert event_kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
    assert facts["close again"][1] == []


def f4_context_managers(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    with api.Session(engine) as s, s.begin():
        n = User(name="n")
        s.add(n)
        sandy = s.get(User, 1)
    obs.sql("with Session() as s, s.begin()", pool=True)
    for label, o in {"n": n, "sandy": sandy}.items():
        obs.append((label, api.state(o), api.loaded(o)))
    obs.error("read after the block", lambda: n.name)
    obs.append(("checked out", engine.pool.checkedout()))

    with api.Session(engine) as s2:
        s2.add(User(name="m"))
        s2.commit()
        obs.sql("commit inside with Session()", pool=True)
    obs.sql("exit after commit", pool=True)
    obs.append(("rows", [r[1] for r in user_ids(api, engine, User)]))


def test_close5_context_managers_close_and_detach(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(f4_context_managers, engine, ref_engine))
    assert event_kinds(facts["with Session() as s, s.begin()"][1]) == [
        "checkout",
        "BEGIN",
        "INSERT",
        "SELECT",
        "COMMIT",
        "checkin",
    ]
    assert facts["n"][1:] == ("detached", [])
    assert facts["sandy"][1:] == ("detached", [])
    assert facts["read after the block"][2] == "DetachedInstanceError"
    assert facts["checked out"][1] == 0
    assert event_kinds(facts["commit inside with Session()"][1]) == [
        "checkout",
        "BEGIN",
        "INSERT",
        "COMMIT",
        "checkin",
    ]
    assert facts["exit after commit"][1] == []
    assert facts["rows"][1] == ["sandy", "patrick", "squidward", "n", "m"]


def f5_close_resets_only_false(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, close_resets_only=False)
    sandy = s.get(User, 1)
    s.close()
    obs.rec.clear()
    ops = {
        "add": lambda: s.add(User(name="x")),
        "add detached": lambda: s.add(sandy),
        "get": lambda: s.get(User, 1),
        "execute": lambda: s.execute(select(User)),
        "scalars": lambda: s.scalars(select(User.name)),
        "connection": lambda: s.connection(),
        "begin": lambda: s.begin(),
        "commit": lambda: s.commit(),
        "rollback": lambda: s.rollback(),
        "flush": lambda: s.flush(),
        "close": lambda: s.close(),
    }
    for label, op in ops.items():
        err = obs.error(label, op)
        obs.append(
            (f"{label}: message", None if err is None else message_starts(err, PERMANENTLY_CLOSED))
        )
    s.reset()
    err = obs.error("get after reset", lambda: s.get(User, 1))
    obs.append(("get after reset: message", message_starts(err, PERMANENTLY_CLOSED)))
    obs.append(("states", api.state(sandy), s.in_transaction()))
    obs.sql("nothing ran", pool=True)

    obs.rec.clear()
    r = api.Session(engine, close_resets_only=False)
    first = r.get(User, 1)
    r.reset()
    obs.sql("reset", pool=True)
    obs.append(("reset detaches", api.state(first)))
    obs.error("get after reset instead of close", lambda: r.get(User, 2))
    obs.sql("still usable", pool=True)
    r.close()
    obs.error("get after the final close", lambda: r.get(User, 3))


def test_close6_close_resets_only_false_closes_for_good(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(f5_close_resets_only_false, engine, ref_engine))
    raising = ("add", "add detached", "get", "execute", "scalars", "connection", "begin", "commit")
    for label in raising:
        assert facts[label][1:] == ("raises", "InvalidRequestError"), label
        assert facts[f"{label}: message"][1] is True, label
    for label in ("rollback", "flush", "close"):
        assert facts[label][1] == "ok", label
    assert facts["get after reset"][2] == "InvalidRequestError"
    assert facts["get after reset: message"][1] is True
    assert facts["states"][1:] == ("detached", False)
    assert facts["nothing ran"][1] == []
    assert event_kinds(facts["reset"][1]) == ["checkout", "BEGIN", "SELECT", "ROLLBACK", "checkin"]
    assert facts["reset detaches"][1] == "detached"
    assert facts["get after reset instead of close"][1] == "ok"
    assert event_kinds(facts["still usable"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert facts["get after the final close"][2] == "InvalidRequestError"


def f6_expunge_all(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    sandy.name = "unflushed"
    n = User(name="n")
    s.add(n)
    obs.rec.clear()
    s.expunge_all()
    obs.sql("expunge_all", pool=True)
    obs.append(("sandy", api.state(sandy), api.visible(sandy), sandy in s))
    obs.append(("n", api.state(n), n in s))
    obs.append(("kept", s.in_transaction(), engine.pool.checkedout(), len(s.identity_map)))
    obs.append(("collections", len(s.new), len(s.dirty), len(s.deleted)))
    s.commit()
    obs.sql("commit", pool=True)
    obs.append(("sandy after commit", api.visible(sandy)))
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_close7_expunge_all_keeps_transaction_and_connection(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(f6_expunge_all, engine, ref_engine))
    assert facts["expunge_all"][1] == []
    assert facts["sandy"][1:] == (
        "detached",
        {"id": 1, "name": "unflushed", "fullname": "Sandy"},
        False,
    )
    assert facts["n"][1:] == ("transient", False)
    assert facts["kept"][1:] == (True, 1, 0)
    assert facts["collections"][1:] == (0, 0, 0)
    assert event_kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
    assert facts["sandy after commit"][1]["name"] == "unflushed"
    assert [tuple(r) for r in facts["rows"][1]] == [(1, "sandy"), (2, "patrick"), (3, "squidward")]
