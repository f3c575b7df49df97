"""Object states (SPEC A), re-adding objects (G), the identity map (H) and the session's
collections (K1), each run on sessionkit and on the SQLAlchemy ORM.

Every scenario records what both libraries must agree on; the assertions after
``compare()`` check the expected facts from the SPEC so that a bug shared by both runs
cannot hide. Error messages are recorded with ``0x...`` addresses normalised; sessionkit
may add guidance after the reference's words, so only the start of a message is compared.
"""

from __future__ import annotations

import gc
import re
import warnings
import weakref
from typing import Any

import pytest
from models import item_model, setup_users, user_model
from reference import ORM, SK, STATES, Api, Obs, compare
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import InvalidRequestError

from support import hexid

_ADDRESS = re.compile(r"0x[0-9a-f]+")
_SESSION_NUMBER = re.compile(r"session '\d+' \(this is '\d+'\)")


def _norm(message: str) -> str:
    """A message with object addresses (and session numbers) made run-independent."""
    message = _ADDRESS.sub("0x...", message)
    return _SESSION_NUMBER.sub("session 'N' (this is 'M')", message)


def _message(obs: Obs, label: str, err: BaseException | None, expected: str) -> None:
    """Record whether ``err``'s message starts with ``expected`` (the reference's words,
    with this run's real addresses) and, normalised, the part of it that should match."""
    if err is None:
        obs.append((label, "no error"))
        return
    message = str(err)
    obs.append((label, message.startswith(expected), _norm(message)[: len(_norm(expected))]))


def _key(api: Api, obj: object) -> Any:
    """``inspect(obj).identity_key`` with the class replaced by its name."""
    key = api.inspect(obj).identity_key
    return None if key is None else (key[0].__name__, key[1], key[2])


def _kinds(events: list[Any]) -> list[str]:
    """``["BEGIN", "SELECT", ...]`` for the events of one ``obs.sql()`` step."""
    return [e[1].split(None, 1)[0].upper() if e[0] == "SQL" else e[0] for e in events]


def _facts(obs: Obs) -> dict[str, Any]:
    """Observations by label (the last one wins)."""
    return {o[0]: o for o in obs}


def _empty_users(api: Api, engine: Engine) -> Any:
    Base, User = user_model(api)
    Base.metadata.create_all(engine)
    return User


# -- A. Object states ----------------------------------------------------------------------


def test_A1_new_object_is_transient(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        insp = api.inspect(u)
        obs.append(("state", api.state(u), insp.key, insp.identity_key, insp.session is None))
        obs.append(("in session", u in session))
        obs.append(("__dict__", api.visible(u)))
        u.fullname = "Sandy Cheeks"
        obs.append(("after assignment", api.visible(u), api.state(u)))
        obs.append(("never set reads None", User().name, api.visible(User())))
        obs.sql("nothing")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["state"][1:] == ("transient", None, None, True)
    assert facts["in session"][1] is False
    assert facts["__dict__"][1] == {"name": "sandy"}
    assert facts["after assignment"][1:] == (
        {"name": "sandy", "fullname": "Sandy Cheeks"},
        "transient",
    )
    assert facts["never set reads None"][1:] == (None, {})
    assert facts["nothing"][1] == []


def test_A2_add_makes_pending_without_sql(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        obs.append(("in transaction before", session.in_transaction()))
        session.add(u)
        obs.sql("add: no SQL, no checkout", pool=True)
        obs.append(("pending", api.state(u), u in session, u in session.new))
        obs.append(("in transaction after", session.in_transaction()))
        session.add(u)
        session.add_all([u])
        obs.sql("adding again: nothing", pool=True)
        obs.append(("still one pending", len(session.new), api.state(u)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["in transaction before"][1] is False
    assert facts["add: no SQL, no checkout"][1] == []
    assert facts["pending"][1:] == ("pending", True, True)
    assert facts["in transaction after"][1] is True
    assert facts["adding again: nothing"][1] == []
    assert facts["still one pending"][1:] == (1, "pending")


def test_A3_flush_makes_persistent(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        session.add(u)
        session.flush()
        obs.sql("flush")
        key = api.inspect(u).identity_key
        obs.append(("persistent", api.state(u), _key(api, u), key == (User, (1,), None)))
        obs.append(("in identity map", key in session.identity_map))
        obs.append(("map entry", session.identity_map[key] is u))
        obs.append(("left new", u in session.new, len(session.new), u in session))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert _kinds(facts["flush"][1]) == ["BEGIN", "INSERT"]
    assert facts["persistent"][1:] == ("persistent", ("User", (1,), None), True)
    assert facts["in identity map"][1] is True
    assert facts["map entry"][1] is True
    assert facts["left new"][1:] == (False, 0, True)


def test_A4_commit_leaves_persistent_and_expired(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        session.add(u)
        session.commit()
        obs.sql("commit")
        insp = api.inspect(u)
        obs.append(("after commit", api.state(u), u in session, insp.session is session))
        obs.append(("expired", insp.expired, api.loaded(u), sorted(insp.expired_attributes)))
        obs.append(("reload", u.name))
        obs.sql("reload: BEGIN + SELECT")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert _kinds(facts["commit"][1]) == ["BEGIN", "INSERT", "COMMIT"]
    assert facts["after commit"][1:] == ("persistent", True, True)
    assert facts["expired"][1:] == (True, [], ["fullname", "id", "name"])
    assert facts["reload"][1] == "sandy"
    assert _kinds(facts["reload: BEGIN + SELECT"][1]) == ["BEGIN", "SELECT"]


def test_A5_delete_marks_then_flush_deletes_then_commit_detaches(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 1)
        key = api.inspect(u).identity_key
        obs.rec.clear()
        session.delete(u)
        obs.sql("delete(): no SQL")
        obs.append(("marked", api.state(u), u in session, u in session.deleted))
        session.flush()
        obs.sql("flush")
        insp = api.inspect(u)
        obs.append(("flushed", api.state(u), u in session, key in session.identity_map))
        obs.append(("flushed facts", insp.was_deleted, api.visible(u), u in session.deleted))
        session.commit()
        obs.sql("commit")
        insp = api.inspect(u)
        obs.append(("committed", api.state(u), insp.was_deleted, insp.session is None))
        obs.append(("values kept", api.visible(u), u in session))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["delete(): no SQL"][1] == []
    assert facts["marked"][1:] == ("persistent", True, True)
    assert _kinds(facts["flush"][1]) == ["DELETE"]
    assert facts["flushed"][1:] == ("deleted", False, False)
    row = {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["flushed facts"][1:] == (True, row, False)
    assert _kinds(facts["commit"][1]) == ["COMMIT"]
    assert facts["committed"][1:] == ("detached", True, True)
    assert facts["values kept"][1:] == (row, False)


def test_A5b_delete_expired_object_loads_row_at_flush(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 2)
        session.commit()
        obs.rec.clear()
        session.delete(u)
        obs.sql("delete(): no SQL")
        session.flush()
        obs.sql("flush: SELECT full row, then DELETE")
        obs.append(("after flush", api.state(u), api.visible(u)))
        session.commit()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["delete(): no SQL"][1] == []
    flush = facts["flush: SELECT full row, then DELETE"][1]
    assert _kinds(flush) == ["BEGIN", "SELECT", "DELETE"]
    assert flush[1][1].startswith(
        "SELECT user_account.id, user_account.name, user_account.fullname"
    )
    assert flush[2][1].startswith("DELETE FROM user_account WHERE user_account.id = ")
    assert flush[2][2] == (2,)
    assert facts["after flush"][1:] == (
        "deleted",
        {"id": 2, "name": "patrick", "fullname": "Patrick"},
    )


def test_A6_delete_transient_is_an_error(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        transient = User(name="t")
        err = obs.error("delete transient", lambda: session.delete(transient))
        _message(
            obs,
            "transient message",
            err,
            f"Instance '<User at {hexid(transient)}>' is not persisted",
        )
        obs.append(("transient after", api.state(transient)))
        pending = User(name="p")
        session.add(pending)
        err = obs.error("delete pending", lambda: session.delete(pending))
        _message(
            obs, "pending message", err, f"Instance '<User at {hexid(pending)}>' is not persisted"
        )
        obs.append(("pending after", api.state(pending), pending in session.new))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["delete transient"][1:] == ("raises", "InvalidRequestError")
    assert facts["delete pending"][1:] == ("raises", "InvalidRequestError")
    expected = "Instance '<User at 0x...>' is not persisted"
    assert facts["transient message"][1:] == (True, expected)
    assert facts["pending message"][1:] == (True, expected)
    assert facts["transient after"][1] == "transient"
    assert facts["pending after"][1:] == ("pending", True)
    assert facts["no SQL"][1] == []


def test_A7_expunge(engine: Engine, ref_engine: Engine) -> None:
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
        _message(
            obs,
            "detached message",
            err,
            f"Instance <User at {hexid(sandy)}> is not present in this Session",
        )
        transient = User(name="t")
        err = obs.error("expunge transient", lambda: session.expunge(transient))
        _message(
            obs,
            "transient message",
            err,
            f"Instance <User at {hexid(transient)}> is not present in this Session",
        )
        err = obs.error("expunge expunged pending", lambda: session.expunge(pending))
        obs.append(("states after errors", api.state(sandy), api.state(pending)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
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


def test_A8_close_detaches_persistent_and_makes_pending_transient(
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
    facts = _facts(obs)
    assert _kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
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


def test_A9_add_deleted_is_an_error_until_make_transient(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 3)
        session.delete(u)
        session.flush()
        expected = (
            f"Instance '<User at {hexid(u)}>' has been deleted.  Use the make_transient() "
            "function to send this object back to the transient state."
        )
        err = obs.error("add flushed-deleted", lambda: session.add(u))
        _message(obs, "flushed-deleted message", err, expected)
        obs.append(("still deleted", api.state(u)))
        session.commit()
        obs.append(("after commit", api.state(u)))
        err = obs.error("add committed-deleted, same session", lambda: session.add(u))
        _message(obs, "same session message", err, expected)
        other = api.Session(engine)
        err = obs.error("add committed-deleted, other session", lambda: other.add(u))
        _message(obs, "other session message", err, expected)
        obs.append(("detached after errors", api.state(u), u in other))

        api.make_transient(u)
        insp = api.inspect(u)
        obs.append(("make_transient", api.state(u), insp.key, insp.was_deleted))
        obs.append(("keeps __dict__", api.visible(u)))
        obs.rec.clear()
        other.add(u)
        obs.append(("re-added", api.state(u), u in other.new))
        other.commit()
        obs.sql("INSERT with the old primary key")
        obs.append(("persistent again", api.state(u), _key(api, u)))
        other.close()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    expected = (
        "Instance '<User at 0x...>' has been deleted.  Use the make_transient() function to "
        "send this object back to the transient state."
    )
    for label in (
        "add flushed-deleted",
        "add committed-deleted, same session",
        "add committed-deleted, other session",
    ):
        assert facts[label][1:] == ("raises", "InvalidRequestError")
    for label in ("flushed-deleted message", "same session message", "other session message"):
        assert facts[label][1:] == (True, expected)
    assert facts["still deleted"][1] == "deleted"
    assert facts["after commit"][1] == "detached"
    assert facts["detached after errors"][1:] == ("detached", False)
    assert facts["make_transient"][1:] == ("transient", None, False)
    assert facts["keeps __dict__"][1] == {"id": 3, "name": "squidward", "fullname": "Squidward"}
    assert facts["re-added"][1:] == ("pending", True)
    insert = facts["INSERT with the old primary key"][1]
    assert _kinds(insert) == ["BEGIN", "INSERT", "COMMIT"]
    assert insert[1][1].startswith("INSERT INTO user_account (id, name, fullname)")
    assert insert[1][2] == (3, "squidward", "Squidward")
    assert facts["persistent again"][1:] == ("persistent", ("User", (3,), None))


def test_A10_inspection_through_every_state(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)

        def snap(label: str, u: Any) -> None:
            insp = api.inspect(u)
            hist = insp.attrs.name.history
            facts = {
                "state": api.state(u),
                "flags": [
                    getattr(insp, n)
                    for n in ("transient", "pending", "persistent", "deleted", "detached")
                ],
                "was_deleted": insp.was_deleted,
                "has_identity": insp.has_identity,
                "identity_key": _key(api, u),
                "key is identity_key": insp.key == insp.identity_key,
                "identity": insp.identity,
                "session": "this" if insp.session is session else insp.session,
                # For objects without identity see test_A10_modified_flag_of_new_objects.
                "modified": insp.modified if insp.has_identity else "n/a",
                "expired": insp.expired,
                "expired_attributes": sorted(insp.expired_attributes),
                "unloaded": sorted(insp.unloaded),
                "history": (list(hist.added), list(hist.unchanged), list(hist.deleted)),
                "has_changes": hist.has_changes(),
            }
            obs.append((label, facts))

        u = User(name="a")
        snap("transient", u)
        session.add(u)
        snap("pending", u)
        session.flush()
        snap("persistent", u)
        u.name = "b"
        snap("modified", u)
        session.flush()
        snap("flushed change", u)
        session.commit()
        snap("expired", u)
        _ = u.name
        snap("reloaded", u)
        session.delete(u)
        snap("marked for delete", u)
        session.flush()
        snap("deleted", u)
        session.commit()
        snap("detached (deleted)", u)
        v = User(name="v")
        session.add(v)
        session.commit()
        _ = v.name
        session.close()
        snap("detached", v)

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    snaps = {label: o[1] for label, o in facts.items()}
    for label, snap in snaps.items():
        flags = dict(zip(STATES, snap["flags"], strict=True))
        assert [n for n, v in flags.items() if v] == [snap["state"]], label
    expected_states = {
        "transient": "transient",
        "pending": "pending",
        "persistent": "persistent",
        "modified": "persistent",
        "flushed change": "persistent",
        "expired": "persistent",
        "reloaded": "persistent",
        "marked for delete": "persistent",
        "deleted": "deleted",
        "detached (deleted)": "detached",
        "detached": "detached",
    }
    assert {label: snap["state"] for label, snap in snaps.items()} == expected_states
    transient = snaps["transient"]
    assert transient["has_identity"] is False
    assert transient["identity_key"] is None and transient["identity"] is None
    assert transient["session"] is None
    assert transient["unloaded"] == ["fullname", "id"]
    assert transient["history"] == (["a"], [], [])
    assert snaps["pending"]["session"] == "this"
    persistent = snaps["persistent"]
    assert persistent["identity_key"] == ("User", (1,), None)
    assert persistent["key is identity_key"] is True
    assert persistent["identity"] == (1,)
    assert persistent["history"] == ([], ["a"], [])
    assert persistent["modified"] is False
    assert snaps["modified"]["modified"] is True
    assert snaps["modified"]["history"] == (["b"], [], ["a"])
    assert snaps["modified"]["has_changes"] is True
    assert snaps["flushed change"]["modified"] is False
    assert snaps["expired"]["expired"] is True
    assert snaps["expired"]["expired_attributes"] == ["fullname", "id", "name"]
    assert snaps["expired"]["history"] == ([], [], [])
    assert snaps["reloaded"]["expired"] is False
    assert snaps["reloaded"]["expired_attributes"] == []
    assert snaps["deleted"]["was_deleted"] is True
    assert snaps["deleted"]["session"] == "this"
    assert snaps["detached (deleted)"]["was_deleted"] is True
    assert snaps["detached (deleted)"]["session"] is None
    assert snaps["detached"]["was_deleted"] is False
    # SQLite reuses the deleted rowid, PostgreSQL's sequence does not.
    assert snaps["detached"]["identity_key"][0] == "User"
    assert snaps["detached"]["has_identity"] is True


def test_A10_modified_flag_of_new_objects(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        untouched = User()
        obs.append(("nothing set", api.inspect(untouched).modified))
        u = User(name="a")
        obs.append(("transient", api.inspect(u).modified))
        session.add(u)
        obs.append(("pending", api.inspect(u).modified, session.is_modified(u)))
        session.flush()
        obs.append(("flushed", api.inspect(u).modified))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["nothing set"][1] is False
    assert facts["transient"][1] is True
    assert facts["pending"][1:] == (True, True)
    assert facts["flushed"][1] is False


def test_A11_unmapped_objects_are_rejected(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        err = obs.error("add(object())", lambda: session.add(object()))
        _message(obs, "object message", err, "Class 'builtins.object' is not mapped")
        err = obs.error('"x" in session', lambda: "x" in session)
        _message(obs, "str message", err, "Class 'builtins.str' is not mapped")
        obs.error("delete(object())", lambda: session.delete(object()))
        obs.error("expunge(object())", lambda: session.expunge(object()))
        obs.append(("no transaction begun", session.in_transaction()))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    for label in ("add(object())", '"x" in session', "delete(object())", "expunge(object())"):
        assert facts[label][1:] == ("raises", "UnmappedInstanceError")
    assert facts["object message"][1:] == (True, "Class 'builtins.object' is not mapped")
    assert facts["str message"][1:] == (True, "Class 'builtins.str' is not mapped")
    assert facts["no SQL"][1] == []


def test_A11_unmapped_error_class_hierarchy() -> None:
    assert issubclass(SK.UnmappedInstanceError, InvalidRequestError)
    assert SK.UnmappedInstanceError.__mro__[1].__name__ == "UnmappedError"


def test_A12_unassigned_column_is_inserted_as_null_but_not_loaded(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        session.add(u)
        session.flush()
        obs.sql("flush")
        insp = api.inspect(u)
        obs.append(("after flush", api.loaded(u), sorted(insp.unloaded)))
        obs.append(("not expired", insp.expired, sorted(insp.expired_attributes)))
        obs.append(("read", u.fullname))
        obs.sql("reading it: no SQL")
        obs.append(("still not loaded", api.loaded(u)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    assert _kinds(flush) == ["BEGIN", "INSERT"]
    assert "fullname" in flush[1][1]
    assert flush[1][2] == ("sandy", None)
    assert facts["after flush"][1:] == (["id", "name"], ["fullname"])
    assert facts["not expired"][1:] == (False, [])
    assert facts["read"][1] is None
    assert facts["reading it: no SQL"][1] == []
    assert facts["still not loaded"][1] == ["id", "name"]


def test_A13_garbage_collected_session_detaches_its_objects(
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
        obs.append(("pending inserted", _key(api, pending)))
        other.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["before"][1:] == ("persistent", "pending")
    assert facts["session collected"][1] is True
    assert facts["after"][1:] == ("detached", "transient")
    assert facts["no session"][1:] == (None, None)
    assert facts["re-add: no SQL"][1] == []
    assert facts["re-added"][1:] == ("persistent", "pending", True)
    assert _kinds(facts["commit"][1]) == ["BEGIN", "INSERT", "COMMIT"]
    assert facts["pending inserted"][1] == ("User", (4,), None)


def test_A14_delete_detached_reattaches_then_rollback_restores(
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
    facts = _facts(obs)
    assert facts["delete(detached): no SQL"][1] == []
    assert facts["re-attached"][1:] == ("persistent", True, True)
    assert _kinds(facts["flush"][1]) == ["BEGIN", "DELETE"]
    assert facts["flushed"][1:] == ("deleted", False, True)
    assert _kinds(facts["rollback"][1]) == ["ROLLBACK"]
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
def test_A14_flushed_delete_is_detached_in_sessionkit(engine: Engine, how: str) -> None:
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
def test_A14_reference_quirk_leaves_flushed_delete_attached(ref_engine: Engine, how: str) -> None:
    """The reference side of the difference above, so a change in it is noticed."""
    session, u = _flushed_delete_then(ORM, ref_engine, how)
    insp = ORM.inspect(u)
    assert ORM.state(u) == "deleted"
    assert insp.was_deleted is True
    assert insp.session is session
    assert u not in session


# -- G. Re-adding objects (G5, merge(), is not covered here) -------------------------------


def test_G1_add_detached_reattaches_as_persistent(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        loaded = first.get(User, 1)
        expired = first.get(User, 2)
        first.expire(expired)
        first.close()
        obs.append(("detached", api.state(loaded), api.state(expired), api.loaded(expired)))
        session = api.Session(engine)
        obs.rec.clear()
        session.add(loaded)
        session.add(expired)
        obs.sql("add: no SQL", pool=True)
        for label, o in [("loaded", loaded), ("expired", expired)]:
            obs.append((label, api.state(o), o in session, o in session.new, o in session.dirty))
        obs.append(("loaded read", loaded.name, loaded.fullname))
        obs.sql("loaded attributes: no SQL")
        obs.append(("expired read", expired.name))
        obs.sql("expired attribute: BEGIN + full-row SELECT")
        obs.append(("expired now loaded", api.visible(expired)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["detached"][1:] == ("detached", "detached", [])
    assert facts["add: no SQL"][1] == []
    assert facts["loaded"][1:] == ("persistent", True, False, False)
    assert facts["expired"][1:] == ("persistent", True, False, False)
    assert facts["loaded read"][1:] == ("sandy", "Sandy")
    assert facts["loaded attributes: no SQL"][1] == []
    load = facts["expired attribute: BEGIN + full-row SELECT"][1]
    assert _kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert load[1][2] == (2,)
    assert facts["expired now loaded"][1] == {"id": 2, "name": "patrick", "fullname": "Patrick"}


def test_G2_changes_made_while_detached_are_flushed(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        sandy = first.get(User, 1)
        patrick = first.get(User, 2)
        patrick.fullname = "changed while attached"
        first.expunge(patrick)
        first.close()
        sandy.name = "changed while detached"
        obs.append(("detached and modified", api.state(sandy), api.inspect(sandy).modified))
        session = api.Session(engine)
        obs.rec.clear()
        session.add(sandy)
        session.add(patrick)
        obs.sql("add: no SQL")
        obs.append(("dirty", sandy in session.dirty, patrick in session.dirty))
        obs.append(("is_modified", session.is_modified(sandy), session.is_modified(patrick)))
        session.flush()
        obs.sql("flush: UPDATEs")
        session.commit()
        rows = session.execute(select(User.name, User.fullname).order_by(User.id)).all()
        obs.append(("rows", [tuple(r) for r in rows]))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["detached and modified"][1:] == ("detached", True)
    assert facts["add: no SQL"][1] == []
    assert facts["dirty"][1:] == (True, True)
    assert facts["is_modified"][1:] == (True, True)
    flush = facts["flush: UPDATEs"][1]
    assert _kinds(flush) == ["BEGIN", "UPDATE", "UPDATE"]
    assert facts["rows"][1][:2] == [
        ("changed while detached", "Sandy"),
        ("patrick", "changed while attached"),
    ]


def test_G3_add_object_of_another_live_session_is_an_error(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        second = api.Session(engine)
        persistent = first.get(User, 1)
        pending = User(name="pending")
        first.add(pending)
        obs.rec.clear()
        for label, o in [("persistent", persistent), ("pending", pending)]:
            err = obs.error(f"add {label}", lambda o=o: second.add(o))
            expected = (
                f"Object '<User at {hexid(o)}>' is already attached to session "
                f"'{first.hash_key}' (this is '{second.hash_key}')"
            )
            _message(obs, f"{label} message", err, expected)
            obs.append((f"{label} stays", api.state(o), o in first, o in second))
        err = obs.error("delete persistent", lambda: second.delete(persistent))
        obs.append(("numbers increase", second.hash_key > first.hash_key))
        obs.sql("no SQL")
        first.close()
        second.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    expected = "Object '<User at 0x...>' is already attached to session 'N' (this is 'M')"
    for label, state in [("persistent", "persistent"), ("pending", "pending")]:
        assert facts[f"add {label}"][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{label} message"][1:] == (True, expected)
        assert facts[f"{label} stays"][1:] == (state, True, False)
    assert facts["delete persistent"][1:] == ("raises", "InvalidRequestError")
    assert facts["numbers increase"][1] is True
    assert facts["no SQL"][1] == []


def test_G4_add_detached_with_key_already_present_is_an_error(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        old = first.get(User, 1)
        first.close()
        session = api.Session(engine)
        current = session.get(User, 1)
        obs.rec.clear()
        err = obs.error("add detached duplicate", lambda: session.add(old))
        key = (User, (1,), None)
        expected = (
            f"Can't attach instance <User at {hexid(old)}>; another instance with key "
            f"{key!r} is already present in this session."
        )
        _message(obs, "message", err, expected)
        obs.append(("key repr", _norm(repr(key))))
        obs.append(
            ("unchanged", api.state(old), old in session, session.identity_map[key] is current)
        )
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["add detached duplicate"][1:] == ("raises", "InvalidRequestError")
    assert facts["message"][1] is True
    assert facts["message"][2].startswith("Can't attach instance <User at 0x...>; another instance")
    assert facts["message"][2].endswith(", (1,), None) is already present in this session.")
    assert facts["key repr"][1].startswith("(<class '")
    assert facts["unchanged"][1:] == ("detached", False, True)
    assert facts["no SQL"][1] == []


def test_G6_make_transient_to_detached(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        u = User(id=1, name="trusted")
        api.make_transient_to_detached(u)
        insp = api.inspect(u)
        obs.append(("detached", api.state(u), _key(api, u), sorted(insp.expired_attributes)))
        obs.append(("__dict__", api.visible(u)))
        session = api.Session(engine)
        obs.rec.clear()
        session.add(u)
        obs.sql("add: no SQL")
        obs.append(("persistent", api.state(u), u in session.new, u in session.dirty))
        obs.append(("set value trusted", u.name))
        obs.sql("set value: no SQL")
        obs.append(("unset value loaded", u.fullname))
        obs.sql("unset value: SELECT of the expired column")
        obs.append(("after", api.visible(u)))
        loaded = session.get(User, 2)
        obs.error("on a persistent object", lambda: api.make_transient_to_detached(loaded))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["detached"][1:] == ("detached", ("User", (1,), None), ["fullname"])
    assert facts["__dict__"][1] == {"id": 1, "name": "trusted"}
    assert facts["add: no SQL"][1] == []
    assert facts["persistent"][1:] == ("persistent", False, False)
    assert facts["set value trusted"][1] == "trusted"
    assert facts["set value: no SQL"][1] == []
    assert facts["unset value loaded"][1] == "Sandy"
    load = facts["unset value: SELECT of the expired column"][1]
    assert _kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.fullname")
    assert facts["after"][1] == {"id": 1, "name": "trusted", "fullname": "Sandy"}
    assert facts["on a persistent object"][1:] == ("raises", "InvalidRequestError")


# -- H. Identity map -----------------------------------------------------------------------


def test_H1_one_object_per_identity(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        a = session.get(User, 1)
        obs.sql("first get: SELECT")
        b = session.get(User, 1)
        obs.sql("second get: no SQL")
        c = session.execute(select(User).where(User.name == "sandy")).scalar_one()
        obs.sql("query: SELECT")
        d = session.scalars(select(User).order_by(User.id)).all()
        e = session.query(User).filter(User.id == 1).one()
        obs.append(("identical", a is b, a is c, d[0] is a, e is a, len(d)))
        obs.append(("one map entry per row", len(session.identity_map)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert _kinds(facts["first get: SELECT"][1]) == ["BEGIN", "SELECT"]
    assert facts["second get: no SQL"][1] == []
    assert _kinds(facts["query: SELECT"][1]) == ["SELECT"]
    assert facts["identical"][1:] == (True, True, True, True, 3)
    assert facts["one map entry per row"][1] == 3


def test_H2_identity_keys(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        ItemBase, Item = item_model(api)
        ItemBase.metadata.create_all(engine)
        session = api.Session(engine)
        session.add(Item(id="1", name="one"))
        session.commit()
        u = session.get(User, 1)
        item = session.get(Item, "1")
        obs.append(("user key", _key(api, u), api.inspect(u).identity_key == (User, (1,), None)))
        obs.append(("item key", _key(api, item), api.inspect(item).key == (Item, ("1",), None)))
        imap = session.identity_map
        obs.append(("getitem", imap[(User, (1,), None)] is u, imap[(Item, ("1",), None)] is item))
        obs.append(("contains", (User, (1,), None) in imap, (User, (2,), None) in imap))
        keys = sorted((k[0].__name__, k[1], k[2]) for k in list(imap.keys()))
        obs.append(("keys", keys, len(imap)))
        obs.append(("iter", sorted((k[0].__name__, k[1]) for k in imap)))
        obs.append(("values", sorted(id(v) for v in imap.values()) == sorted([id(u), id(item)])))
        obs.error("missing key", lambda: imap[(User, (2,), None)])
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["user key"][1:] == (("User", (1,), None), True)
    assert facts["item key"][1:] == (("Item", ("1",), None), True)
    assert facts["getitem"][1:] == (True, True)
    assert facts["contains"][1:] == (True, False)
    assert facts["keys"][1:] == ([("Item", ("1",), None), ("User", (1,), None)], 2)
    assert facts["values"][1] is True
    assert facts["missing key"][1:] == ("raises", "KeyError")


def test_H2_identity_map_get_like_a_mapping(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        try:
            u = session.get(User, 1)
            imap = session.identity_map
            obs.append(("get hit", imap.get((User, (1,), None)) is u))
            obs.append(("get miss", imap.get((User, (2,), None))))
            obs.append(("get default", imap.get((User, (2,), None), "default")))
        finally:
            session.close()

    obs = compare(scen, engine, ref_engine)
    assert [o[1] for o in obs] == [True, None, "default"]


def test_H3_rows_do_not_overwrite_loaded_attributes(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 1)
        session.execute(text("UPDATE user_account SET name = 'db value' WHERE id = 1"))
        obs.rec.clear()
        again = session.execute(select(User).where(User.id == 1)).scalar_one()
        obs.sql("query: SELECT")
        obs.append(("stale", again is u, u.name))
        again = session.scalars(
            select(User).where(User.id == 1).execution_options(populate_existing=True)
        ).one()
        obs.append(("populate_existing statement option", again is u, u.name))
        session.execute(text("UPDATE user_account SET name = 'db value 2' WHERE id = 1"))
        again = session.execute(
            select(User).where(User.id == 1), execution_options={"populate_existing": True}
        ).scalar_one()
        obs.append(("populate_existing execution option", again is u, u.name))
        session.execute(text("UPDATE user_account SET name = 'db value 3' WHERE id = 1"))
        obs.rec.clear()
        obs.append(("get hit", session.get(User, 1).name))
        obs.sql("get hit: no SQL")
        obs.append(("get populate_existing", session.get(User, 1, populate_existing=True) is u))
        obs.sql("get populate_existing: SELECT")
        obs.append(("value", u.name, api.inspect(u).modified, u in session.dirty))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert _kinds(facts["query: SELECT"][1]) == ["SELECT"]
    assert facts["stale"][1:] == (True, "sandy")
    assert facts["populate_existing statement option"][1:] == (True, "db value")
    assert facts["populate_existing execution option"][1:] == (True, "db value 2")
    assert facts["get hit"][1] == "db value 2"
    assert facts["get hit: no SQL"][1] == []
    assert facts["get populate_existing"][1] is True
    assert _kinds(facts["get populate_existing: SELECT"][1]) == ["SELECT"]
    assert facts["value"][1:] == ("db value 3", False, False)


def test_H4_unflushed_changes_survive_requery(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 1)
        u.name = "unflushed"
        obs.rec.clear()
        with session.no_autoflush:
            again = session.scalars(select(User).where(User.id == 1)).one()
            obs.sql("no_autoflush query: SELECT only")
            obs.append(("kept", again is u, u.name, u in session.dirty))
            session.scalars(
                select(User).where(User.id == 1).execution_options(populate_existing=True)
            ).one()
            obs.append(("overwritten", u.name, u in session.dirty, session.is_modified(u)))
        obs.rec.clear()
        session.flush()
        obs.sql("nothing left to flush")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert _kinds(facts["no_autoflush query: SELECT only"][1]) == ["SELECT"]
    assert facts["kept"][1:] == (True, "unflushed", True)
    assert facts["overwritten"][1:] == ("sandy", False, False)
    assert facts["nothing left to flush"][1] == []


def test_H5_unmodified_objects_are_weakly_referenced(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        imap = session.identity_map
        u = session.get(User, 1)
        ref = weakref.ref(u)
        obs.append(("loaded", (User, (1,), None) in imap, len(imap)))
        del u
        gc.collect()
        obs.append(("dropped unmodified", ref() is None, (User, (1,), None) in imap, len(imap)))

        m = session.get(User, 2)
        m.name = "modified"
        ref = weakref.ref(m)
        del m
        gc.collect()
        obs.append(("dropped modified", ref() is not None, (User, (2,), None) in imap))
        obs.append(("still dirty", len(session.dirty)))
        obs.rec.clear()
        session.commit()
        obs.sql("commit: UPDATE")
        gc.collect()
        obs.append(("after commit", ref() is None, (User, (2,), None) in imap, len(imap)))

        p = User(name="pending")
        session.add(p)
        ref = weakref.ref(p)
        del p
        gc.collect()
        obs.append(("dropped pending", ref() is not None, len(session.new)))
        session.commit()
        gc.collect()
        obs.append(("inserted and committed", ref() is None, len(imap)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["loaded"][1:] == (True, 1)
    assert facts["dropped unmodified"][1:] == (True, False, 0)
    assert facts["dropped modified"][1:] == (True, True)
    assert facts["still dirty"][1] == 1
    assert _kinds(facts["commit: UPDATE"][1]) == ["UPDATE", "COMMIT"]
    assert facts["after commit"][1:] == (True, False, 0)
    assert facts["dropped pending"][1:] == (True, 1)
    assert facts["inserted and committed"][1:] == (True, 0)


def test_H5_updated_objects_are_weak_after_flush(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        m = session.get(User, 2)
        m.name = "modified"
        ref = weakref.ref(m)
        del m
        gc.collect()
        obs.append(("held while modified", ref() is not None))
        session.flush()
        gc.collect()
        obs.append(("dropped after flush", ref() is None, len(session.identity_map)))
        session.commit()
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert obs[-1] == ("dropped after flush", True, 0)


def test_H5_inserted_objects_are_weak_after_flush(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _empty_users(api, engine)
        session = api.Session(engine)
        p = User(name="inserted")
        session.add(p)
        session.flush()
        ref = weakref.ref(p)
        obs.append(("flushed", (User, (1,), None) in session.identity_map))
        del p
        gc.collect()
        obs.append(("dropped after flush", ref() is None, len(session.identity_map)))
        session.commit()
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert obs[-1] == ("dropped after flush", True, 0)


def test_H5_duplicate_key_warning_only_while_original_is_referenced(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, Item = item_model(api)
        Base.metadata.create_all(engine)
        with api.Session(engine) as s:
            s.add(Item(id="1", name="one"))
            s.commit()

        def flush_duplicate(label: str, keep: bool) -> None:
            session = api.Session(engine)
            original = session.get(Item, "1")
            if not keep:
                del original
                gc.collect()
            session.add(Item(id="1", name=f"dup {label}"))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                obs.error(f"{label}: flush", session.flush)
            obs.append((f"{label}: warnings", [type(w.message).__name__ for w in caught]))
            texts = [_norm(str(w.message)) for w in caught]
            obs.append(
                (f"{label}: warning text", [t.split(" with identity key")[0] for t in texts])
            )
            session.rollback()
            session.close()

        flush_duplicate("referenced", keep=True)
        flush_duplicate("dropped", keep=False)

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["referenced: flush"][1:] == ("raises", "IntegrityError")
    assert facts["referenced: warnings"][1] == ["SAWarning"]
    assert facts["referenced: warning text"][1] == ["New instance <Item at 0x...>"]
    assert facts["dropped: flush"][1:] == ("raises", "IntegrityError")
    assert facts["dropped: warnings"][1] == []


def test_H6_get_of_expired_object(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 1)
        gone = session.get(User, 2)
        session.commit()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM user_account WHERE id = 2"))
        obs.rec.clear()
        obs.append(("expired get", session.get(User, 1) is u))
        obs.sql("get of expired object: full-row SELECT")
        obs.append(("loaded", api.visible(u)))
        obs.append(("row gone", session.get(User, 2)))
        obs.sql("get of expired object whose row is gone: two SELECTs")
        obs.append(("stale object", api.state(gone), gone in session, api.loaded(gone)))
        obs.append(("map", (User, (2,), None) in session.identity_map))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    load = facts["get of expired object: full-row SELECT"][1]
    assert _kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert facts["loaded"][1] == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["row gone"][1] is None
    assert _kinds(facts["get of expired object whose row is gone: two SELECTs"][1]) == [
        "SELECT",
        "SELECT",
    ]
    assert facts["stale object"][1:] == ("deleted", False, [])
    assert facts["map"][1] is False


def test_H7_get_autoflushes_only_on_a_miss(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        u = session.get(User, 1)
        u.name = "changed"
        p = User(id=10, name="pending")
        session.add(p)
        obs.rec.clear()
        obs.append(("hit", session.get(User, 1) is u))
        obs.sql("hit: no SQL, no autoflush")
        obs.append(("still pending", api.state(p), u in session.dirty))
        with session.no_autoflush:
            obs.append(("pending not found", session.get(User, 10)))
            obs.sql("miss without autoflush: SELECT only")
        obs.append(("pending found after autoflush", session.get(User, 10) is p))
        obs.sql("miss: autoflush, then SELECT")
        obs.append(("flushed", api.state(p), u in session.dirty))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["hit"][1] is True
    assert facts["hit: no SQL, no autoflush"][1] == []
    assert facts["still pending"][1:] == ("pending", True)
    assert facts["pending not found"][1] is None
    assert _kinds(facts["miss without autoflush: SELECT only"][1]) == ["SELECT"]
    assert facts["pending found after autoflush"][1] is True
    kinds = _kinds(facts["miss: autoflush, then SELECT"][1])
    assert kinds[-1] == "SELECT" and "INSERT" in kinds and "UPDATE" in kinds
    assert facts["flushed"][1:] == ("persistent", False)


# -- K. Collections ------------------------------------------------------------------------


def test_K1_new_dirty_deleted_is_modified_and_iteration(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine, names=("a", "b", "c", "d"))
        session = api.Session(engine)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        labels = {id(a): "a", id(b): "b", id(c): "c", id(d): "d"}
        p = User(name="p")
        q = User(name="q")
        labels[id(p)] = "p"
        labels[id(q)] = "q"

        def names(objs: Any) -> list[str]:
            return sorted(labels[id(o)] for o in objs)

        obs.append(("fresh", names(session.new), names(session.dirty), names(session.deleted)))
        a.name = "a"  # the same value
        b.name = "b2"
        c.name = "c2"
        session.delete(c)
        session.delete(d)
        session.add(q)
        session.add(p)
        obs.append(("new", names(session.new)))
        obs.append(("dirty", names(session.dirty)))
        obs.append(("deleted", names(session.deleted)))
        obs.append(("is_modified", [session.is_modified(o) for o in (a, b, p)]))
        obs.append(("iteration", [labels[id(o)] for o in session]))
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", len(session.new), len(session.dirty), len(session.deleted)))
        obs.append(("is_modified after", [session.is_modified(o) for o in (a, b, p)]))
        # The order of the identity map itself is not specified.
        obs.append(("iteration after", sorted(labels[id(o)] for o in session)))
        obs.append(("insert order = add order", _key(api, q), _key(api, p)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["fresh"][1:] == ([], [], [])
    assert facts["new"][1] == ["p", "q"]
    assert facts["dirty"][1] == ["a", "b"]
    assert facts["deleted"][1] == ["c", "d"]
    assert facts["is_modified"][1] == [False, True, True]
    iteration = facts["iteration"][1]
    assert sorted(iteration[:2]) == ["p", "q"]
    assert sorted(iteration[2:]) == ["a", "b", "c", "d"]
    flush = _kinds(facts["flush"][1])
    assert flush.count("UPDATE") == 1 and flush.count("DELETE") == 1
    assert flush.count("INSERT") >= 1
    assert facts["after flush"][1:] == (0, 0, 0)
    assert facts["is_modified after"][1] == [False, False, False]
    assert facts["iteration after"][1] == ["a", "b", "p", "q"]
    assert facts["insert order = add order"][1:] == (("User", (5,), None), ("User", (6,), None))
