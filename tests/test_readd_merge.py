"""Re-adding objects (docs/behaviour.md, "Adding, re-adding and merge"): add() of detached
objects, of objects another session holds and of objects whose key is already taken,
make_transient_to_detached(), and merge() (attach-5). Each scenario runs on sessionkit and
on the SQLAlchemy ORM.

Every scenario records what both libraries must agree on; the assertions after
``compare()`` check the expected facts from docs/behaviour.md so that a bug shared by both
runs cannot hide. Error messages are recorded with ``0x...`` addresses normalised;
sessionkit may add guidance after the reference's words, so only the start of a message is
compared.
"""

from __future__ import annotations

from typing import Any

import pytest
from models import setup_users, setup_users_table
from reference import Api, Obs, compare
from sqlalchemy import Engine, select

from support import (
    by_label,
    event_kinds,
    hexid,
    named_key,
    norm_addresses_and_sessions,
    record_message,
    sql_statements,
    unrecorded_rows,
)

# -- attach-1 … attach-4. add() of a detached object ---------------------------------------


def test_attach1_add_detached_reattaches_as_persistent(engine: Engine, ref_engine: Engine) -> None:
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
    facts = by_label(obs)
    assert facts["detached"][1:] == ("detached", "detached", [])
    assert facts["add: no SQL"][1] == []
    assert facts["loaded"][1:] == ("persistent", True, False, False)
    assert facts["expired"][1:] == ("persistent", True, False, False)
    assert facts["loaded read"][1:] == ("sandy", "Sandy")
    assert facts["loaded attributes: no SQL"][1] == []
    load = facts["expired attribute: BEGIN + full-row SELECT"][1]
    assert event_kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert load[1][2] == (2,)
    assert facts["expired now loaded"][1] == {"id": 2, "name": "patrick", "fullname": "Patrick"}


def test_attach2_changes_made_while_detached_are_flushed(
    engine: Engine, ref_engine: Engine
) -> None:
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
    facts = by_label(obs)
    assert facts["detached and modified"][1:] == ("detached", True)
    assert facts["add: no SQL"][1] == []
    assert facts["dirty"][1:] == (True, True)
    assert facts["is_modified"][1:] == (True, True)
    flush = facts["flush: UPDATEs"][1]
    assert event_kinds(flush) == ["BEGIN", "UPDATE", "UPDATE"]
    assert facts["rows"][1][:2] == [
        ("changed while detached", "Sandy"),
        ("patrick", "changed while attached"),
    ]


def test_attach3_add_object_of_another_live_session_is_an_error(
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
            record_message(obs, f"{label} message", err, expected)
            obs.append((f"{label} stays", api.state(o), o in first, o in second))
        err = obs.error("delete persistent", lambda: second.delete(persistent))
        obs.append(("numbers increase", second.hash_key > first.hash_key))
        obs.sql("no SQL")
        first.close()
        second.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    expected = "Object '<User at 0x...>' is already attached to session 'N' (this is 'M')"
    for label, state in [("persistent", "persistent"), ("pending", "pending")]:
        assert facts[f"add {label}"][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{label} message"][1:] == (True, expected)
        assert facts[f"{label} stays"][1:] == (state, True, False)
    assert facts["delete persistent"][1:] == ("raises", "InvalidRequestError")
    assert facts["numbers increase"][1] is True
    assert facts["no SQL"][1] == []


def test_attach4_add_detached_with_key_already_present_is_an_error(
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
        record_message(obs, "message", err, expected)
        obs.append(("key repr", norm_addresses_and_sessions(repr(key))))
        obs.append(
            ("unchanged", api.state(old), old in session, session.identity_map[key] is current)
        )
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["add detached duplicate"][1:] == ("raises", "InvalidRequestError")
    assert facts["message"][1] is True
    assert facts["message"][2].startswith("Can't attach instance <User at 0x...>; another instance")
    assert facts["message"][2].endswith(", (1,), None) is already present in this session.")
    assert facts["key repr"][1].startswith("(<class '")
    assert facts["unchanged"][1:] == ("detached", False, True)
    assert facts["no SQL"][1] == []


# -- attach-5. merge() ---------------------------------------------------------------------


def _detached_copy(api: Api, engine: Engine, User: Any, ident: int) -> Any:
    with api.Session(engine, expire_on_commit=False) as other:
        obj = other.get(User, ident)
    return obj


def test_attach5_merge_returns_the_existing_instance(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        copy = _detached_copy(api, engine, User, 1)
        copy.name = "from the copy"
        session = api.Session(engine)
        own = session.get(User, 1)
        obs.rec.clear()
        merged = session.merge(copy)
        obs.sql("merge: no SQL")
        obs.append(("merged is the session's own", merged is own, merged is copy))
        obs.append(("own", api.visible(own), own in session.dirty, session.is_modified(own)))
        obs.append(("copy", api.state(copy), copy in session))
        session.flush()
        obs.sql("flush")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["merge: no SQL"][1] == []
    assert facts["merged is the session's own"][1:] == (True, False)
    assert facts["own"][1:] == ({"id": 1, "name": "from the copy", "fullname": "A"}, True, True)
    assert facts["copy"][1:] == ("detached", False)
    assert [s[1] for s in sql_statements(facts["flush"][1], "UPDATE")] == [("from the copy", 1)]


def test_attach5_merge_loads_the_row_with_a_select(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        copy = _detached_copy(api, engine, User, 2)
        copy.fullname = "changed while detached"
        session = api.Session(engine)
        obs.rec.clear()
        merged = session.merge(copy)
        obs.sql("merge: SELECT")
        obs.append(("merged", merged is copy, api.state(merged), merged in session.dirty))
        obs.append(("values", api.visible(merged)))
        obs.append(("copy", api.state(copy), copy in session, api.visible(copy)))
        obs.append(("get", session.get(User, 2) is merged))
        session.commit()
        obs.append(
            ("rows", unrecorded_rows(obs, engine, "SELECT id, fullname FROM users WHERE id = 2"))
        )

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    load = facts["merge: SELECT"][1]
    assert event_kinds(load) == ["BEGIN", "SELECT"]
    assert facts["merged"][1:] == (False, "persistent", True)
    assert facts["values"][1] == {"id": 2, "name": "b", "fullname": "changed while detached"}
    assert facts["copy"][1:3] == ("detached", False)
    assert facts["get"][1] is True
    assert facts["rows"][1] == [(2, "changed while detached")]


def test_attach5_merge_without_a_row_makes_a_pending_copy(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        ghost = User(id=99, name="ghost")
        obs.rec.clear()
        merged = session.merge(ghost)
        obs.sql("merge: SELECT finds nothing")
        obs.append(("merged", merged is ghost, api.state(merged), merged in session.new))
        obs.append(("values", api.visible(merged)))
        obs.append(("ghost", api.state(ghost), ghost in session))
        session.flush()
        obs.sql("flush")
        obs.append(("ids", merged.id, ghost.id, api.state(merged), api.state(ghost)))
        no_key = User(name="keyless")
        merged2 = session.merge(no_key)
        obs.sql("merge of an object without a key: no SQL")
        obs.append(("keyless", merged2 is no_key, api.state(merged2), api.state(no_key)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert event_kinds(facts["merge: SELECT finds nothing"][1]) == ["BEGIN", "SELECT"]
    assert facts["merged"][1:] == (False, "pending", True)
    assert facts["values"][1] == {"id": 99, "name": "ghost"}
    assert facts["ghost"][1:] == ("transient", False)
    assert event_kinds(facts["flush"][1]) == ["INSERT"]
    assert facts["ids"][1:] == (99, 99, "persistent", "transient")
    assert facts["merge of an object without a key: no SQL"][1] == []
    assert facts["keyless"][1:] == (False, "pending", "transient")


MERGE_CASES = [
    pytest.param("key not loaded", id="key not loaded"),
    pytest.param("key in the identity map", id="key in the identity map"),
    pytest.param("no key", id="no key"),
]


@pytest.mark.parametrize("case", MERGE_CASES)
def test_attach5_merge_autoflushes_first(engine: Engine, ref_engine: Engine, case: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        own = session.get(User, 1)
        if case == "no key":
            obj = User(name="keyless")
        else:
            obj = _detached_copy(api, engine, User, 1 if case == "key in the identity map" else 2)
        pending = User(name="pending")
        session.add(pending)
        obs.rec.clear()
        merged = session.merge(obj)
        obs.sql("merge")
        obs.append(("pending", api.state(pending), merged is own))
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert event_kinds(obs[0][1])[:1] == ["INSERT"]
    assert obs[1] == ("pending", "persistent", case == "key in the identity map")


def test_attach5_merge_load_false_emits_no_sql(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        copy = _detached_copy(api, engine, User, 3)
        session = api.Session(engine)
        obs.rec.clear()
        merged = session.merge(copy, load=False)
        obs.sql("merge(load=False): no SQL")
        obs.append(("merged", merged is copy, api.state(merged), api.visible(merged)))
        obs.append(("clean", merged in session.dirty, session.is_modified(merged)))
        obs.append(("copy", api.state(copy), copy in session))
        obs.append(("get hit", session.get(User, 3) is merged))
        session.flush()
        obs.sql("flush: nothing")
        dirty = _detached_copy(api, engine, User, 4)
        dirty.name = "dirty"
        obs.error("dirty object", lambda: session.merge(dirty, load=False))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["merge(load=False): no SQL"][1] == []
    assert facts["merged"][1:] == (
        False,
        "persistent",
        {"id": 3, "name": "c", "fullname": "C"},
    )
    assert facts["clean"][1:] == (False, False)
    assert facts["copy"][1:] == ("detached", False)
    assert facts["get hit"][1] is True
    assert facts["flush: nothing"][1] == []
    assert facts["dirty object"][1:] == ("raises", "InvalidRequestError")


def test_attach5_merge_load_false_rejects_transient_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        ghost = User(id=50, name="no such row")
        obs.rec.clear()
        err = obs.error("merge", lambda: session.merge(ghost, load=False))
        obs.append(("message start", str(err)[:50]))
        obs.append(("ghost", api.state(ghost), len(session.identity_map)))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["merge"][1:] == ("raises", "InvalidRequestError")
    assert facts["ghost"][1:] == ("transient", 0)
    assert facts["no SQL"][1] == []


def test_attach5_merge_load_false_onto_a_loaded_instance(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        own = session.get(User, 1)
        with api.Session(engine, expire_on_commit=False) as other:
            newer = other.get(User, 1)
            newer.name = "newer"
            other.commit()
        obs.rec.clear()
        merged = session.merge(newer, load=False)
        obs.sql("merge(load=False): no SQL")
        obs.append(("merged", merged is own, api.visible(own)))
        obs.append(("clean", own in session.dirty, session.is_modified(own)))
        session.flush()
        obs.sql("flush: nothing")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["merge(load=False): no SQL"][1] == []
    assert facts["merged"][1:] == (True, {"id": 1, "name": "newer", "fullname": "A"})
    assert facts["clean"][1:] == (False, False)
    assert facts["flush: nothing"][1] == []


# -- attach-6. make_transient_to_detached() ------------------------------------------------


def test_attach6_make_transient_to_detached(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        u = User(id=1, name="trusted")
        api.make_transient_to_detached(u)
        insp = api.inspect(u)
        obs.append(("detached", api.state(u), named_key(api, u), sorted(insp.expired_attributes)))
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
    facts = by_label(obs)
    assert facts["detached"][1:] == ("detached", ("User", (1,), None), ["fullname"])
    assert facts["__dict__"][1] == {"id": 1, "name": "trusted"}
    assert facts["add: no SQL"][1] == []
    assert facts["persistent"][1:] == ("persistent", False, False)
    assert facts["set value trusted"][1] == "trusted"
    assert facts["set value: no SQL"][1] == []
    assert facts["unset value loaded"][1] == "Sandy"
    load = facts["unset value: SELECT of the expired column"][1]
    assert event_kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.fullname")
    assert facts["after"][1] == {"id": 1, "name": "trusted", "fullname": "Sandy"}
    assert facts["on a persistent object"][1:] == ("raises", "InvalidRequestError")
