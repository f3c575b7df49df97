"""Object states (docs/behaviour.md: states-1 … states-6, states-10 … states-13): transient,
pending, persistent, deleted and detached; what add(), flush(), commit(), delete() and
make_transient() do to an object, what inspect() reports in each state, and how unmapped
objects are refused. Each scenario runs on sessionkit and on the SQLAlchemy ORM.

Every scenario records what both libraries must agree on; the assertions after
``compare()`` check the expected facts from docs/behaviour.md so that a bug shared by both
runs cannot hide. Error messages are recorded with ``0x...`` addresses normalised;
sessionkit may add guidance after the reference's words, so only the start of a message is
compared.
"""

from __future__ import annotations

from typing import Any

from models import empty_users, setup_users
from reference import SK, STATES, Api, Obs, compare
from sqlalchemy import Engine
from sqlalchemy.exc import InvalidRequestError

from support import by_label, event_kinds, hexid, named_key, record_message

# -- A. Object states ----------------------------------------------------------------------


def test_states2_new_object_is_transient(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
    facts = by_label(obs)
    assert facts["state"][1:] == ("transient", None, None, True)
    assert facts["in session"][1] is False
    assert facts["__dict__"][1] == {"name": "sandy"}
    assert facts["after assignment"][1:] == (
        {"name": "sandy", "fullname": "Sandy Cheeks"},
        "transient",
    )
    assert facts["never set reads None"][1:] == (None, {})
    assert facts["nothing"][1] == []


def test_states3_add_makes_pending_without_sql(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
    facts = by_label(obs)
    assert facts["in transaction before"][1] is False
    assert facts["add: no SQL, no checkout"][1] == []
    assert facts["pending"][1:] == ("pending", True, True)
    assert facts["in transaction after"][1] is True
    assert facts["adding again: nothing"][1] == []
    assert facts["still one pending"][1:] == (1, "pending")


def test_states4_flush_makes_persistent(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        u = User(name="sandy")
        session.add(u)
        session.flush()
        obs.sql("flush")
        key = api.inspect(u).identity_key
        obs.append(("persistent", api.state(u), named_key(api, u), key == (User, (1,), None)))
        obs.append(("in identity map", key in session.identity_map))
        obs.append(("map entry", session.identity_map[key] is u))
        obs.append(("left new", u in session.new, len(session.new), u in session))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert event_kinds(facts["flush"][1]) == ["BEGIN", "INSERT"]
    assert facts["persistent"][1:] == ("persistent", ("User", (1,), None), True)
    assert facts["in identity map"][1] is True
    assert facts["map entry"][1] is True
    assert facts["left new"][1:] == (False, 0, True)


def test_states5_commit_leaves_persistent_and_expired(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
    facts = by_label(obs)
    assert event_kinds(facts["commit"][1]) == ["BEGIN", "INSERT", "COMMIT"]
    assert facts["after commit"][1:] == ("persistent", True, True)
    assert facts["expired"][1:] == (True, [], ["fullname", "id", "name"])
    assert facts["reload"][1] == "sandy"
    assert event_kinds(facts["reload: BEGIN + SELECT"][1]) == ["BEGIN", "SELECT"]


def test_states6_delete_marks_then_flush_deletes_then_commit_detaches(
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
    facts = by_label(obs)
    assert facts["delete(): no SQL"][1] == []
    assert facts["marked"][1:] == ("persistent", True, True)
    assert event_kinds(facts["flush"][1]) == ["DELETE"]
    assert facts["flushed"][1:] == ("deleted", False, False)
    row = {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["flushed facts"][1:] == (True, row, False)
    assert event_kinds(facts["commit"][1]) == ["COMMIT"]
    assert facts["committed"][1:] == ("detached", True, True)
    assert facts["values kept"][1:] == (row, False)


def test_states6_delete_expired_object_loads_row_at_flush(
    engine: Engine, ref_engine: Engine
) -> None:
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
    facts = by_label(obs)
    assert facts["delete(): no SQL"][1] == []
    flush = facts["flush: SELECT full row, then DELETE"][1]
    assert event_kinds(flush) == ["BEGIN", "SELECT", "DELETE"]
    assert flush[1][1].startswith(
        "SELECT user_account.id, user_account.name, user_account.fullname"
    )
    assert flush[2][1].startswith("DELETE FROM user_account WHERE user_account.id = ")
    assert flush[2][2] == (2,)
    assert facts["after flush"][1:] == (
        "deleted",
        {"id": 2, "name": "patrick", "fullname": "Patrick"},
    )


def test_states10_delete_transient_is_an_error(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        transient = User(name="t")
        err = obs.error("delete transient", lambda: session.delete(transient))
        record_message(
            obs,
            "transient message",
            err,
            f"Instance '<User at {hexid(transient)}>' is not persisted",
        )
        obs.append(("transient after", api.state(transient)))
        pending = User(name="p")
        session.add(pending)
        err = obs.error("delete pending", lambda: session.delete(pending))
        record_message(
            obs, "pending message", err, f"Instance '<User at {hexid(pending)}>' is not persisted"
        )
        obs.append(("pending after", api.state(pending), pending in session.new))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["delete transient"][1:] == ("raises", "InvalidRequestError")
    assert facts["delete pending"][1:] == ("raises", "InvalidRequestError")
    expected = "Instance '<User at 0x...>' is not persisted"
    assert facts["transient message"][1:] == (True, expected)
    assert facts["pending message"][1:] == (True, expected)
    assert facts["transient after"][1] == "transient"
    assert facts["pending after"][1:] == ("pending", True)
    assert facts["no SQL"][1] == []


def test_states11_add_deleted_is_an_error_until_make_transient(
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
        record_message(obs, "flushed-deleted message", err, expected)
        obs.append(("still deleted", api.state(u)))
        session.commit()
        obs.append(("after commit", api.state(u)))
        err = obs.error("add committed-deleted, same session", lambda: session.add(u))
        record_message(obs, "same session message", err, expected)
        other = api.Session(engine)
        err = obs.error("add committed-deleted, other session", lambda: other.add(u))
        record_message(obs, "other session message", err, expected)
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
        obs.append(("persistent again", api.state(u), named_key(api, u)))
        other.close()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
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
    assert event_kinds(insert) == ["BEGIN", "INSERT", "COMMIT"]
    assert insert[1][1].startswith("INSERT INTO user_account (id, name, fullname)")
    assert insert[1][2] == (3, "squidward", "Squidward")
    assert facts["persistent again"][1:] == ("persistent", ("User", (3,), None))


def test_states1_inspection_through_every_state(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
                "identity_key": named_key(api, u),
                "key is identity_key": insp.key == insp.identity_key,
                "identity": insp.identity,
                "session": "this" if insp.session is session else insp.session,
                # For objects without identity see test_states1_modified_flag_of_new_objects.
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
    facts = by_label(obs)
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


def test_states1_modified_flag_of_new_objects(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
    facts = by_label(obs)
    assert facts["nothing set"][1] is False
    assert facts["transient"][1] is True
    assert facts["pending"][1:] == (True, True)
    assert facts["flushed"][1] is False


def test_states12_unmapped_objects_are_rejected(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        empty_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        err = obs.error("add(object())", lambda: session.add(object()))
        record_message(obs, "object message", err, "Class 'builtins.object' is not mapped")
        err = obs.error('"x" in session', lambda: "x" in session)
        record_message(obs, "str message", err, "Class 'builtins.str' is not mapped")
        obs.error("delete(object())", lambda: session.delete(object()))
        obs.error("expunge(object())", lambda: session.expunge(object()))
        obs.append(("no transaction begun", session.in_transaction()))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    for label in ("add(object())", '"x" in session', "delete(object())", "expunge(object())"):
        assert facts[label][1:] == ("raises", "UnmappedInstanceError")
    assert facts["object message"][1:] == (True, "Class 'builtins.object' is not mapped")
    assert facts["str message"][1:] == (True, "Class 'builtins.str' is not mapped")
    assert facts["no SQL"][1] == []


def test_states12_unmapped_error_class_hierarchy() -> None:
    assert issubclass(SK.UnmappedInstanceError, InvalidRequestError)
    assert SK.UnmappedInstanceError.__mro__[1].__name__ == "UnmappedError"


def test_states13_unassigned_column_is_inserted_as_null_but_not_loaded(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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
    facts = by_label(obs)
    flush = facts["flush"][1]
    assert event_kinds(flush) == ["BEGIN", "INSERT"]
    assert "fullname" in flush[1][1]
    assert flush[1][2] == ("sandy", None)
    assert facts["after flush"][1:] == (["id", "name"], ["fullname"])
    assert facts["not expired"][1:] == (False, [])
    assert facts["read"][1] is None
    assert facts["reading it: no SQL"][1] == []
    assert facts["still not loaded"][1] == ["id", "name"]
