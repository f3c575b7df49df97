"""commit() (docs/behaviour.md, "Commit") and rollback() (docs/behaviour.md, "Rollback"):
what each expires, detaches and releases, commit() after a failed flush, and what
rollback() undoes: unflushed delete marks, rolled-back INSERTs and primary-key changes
(rollback-7).

Each scenario runs on sessionkit and on the SQLAlchemy ORM through ``compare()``; the
recorded SQL, transaction and pool events, states and error classes must be equal. After
each comparison a few spot checks pin the expected facts from docs/behaviour.md, so a
behaviour shared by both runs but contrary to the documented behaviour cannot hide.

Messages are checked by prefix inside the scenario (``str(err).startswith(<reference's
words>)``) so that the same check runs on both libraries; sessionkit may add guidance
after the reference's words.
"""

from __future__ import annotations

from typing import Any

from models import item_model, setup_items, setup_users
from reference import ORM, SK, Api, Obs, compare, run
from sqlalchemy import Engine, select

from support import (
    SELECT_ALL,
    by_label,
    by_unique_label,
    event_kinds,
    message_starts,
    named_key,
    sql_statements,
    unrecorded_rows,
    user_ids,
)

PENDING_ROLLBACK = (
    "This Session's transaction has been rolled back due to a previous exception during "
    "flush. To begin a new transaction with this Session, first issue Session.rollback(). "
    "Original exception was: "
)


# -- C. commit() ---------------------------------------------------------------------------


def c1_c2_commit_expires_everything(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy, patrick, squidward = (s.get(User, i) for i in (1, 2, 3))
    sandy.fullname = "Sandy Cheeks"
    newbie = User(name="newbie")
    s.add(newbie)
    obs.rec.clear()
    s.commit()
    obs.sql("commit", pool=True)
    objs = {"sandy": sandy, "patrick": patrick, "squidward": squidward, "newbie": newbie}
    for label, o in objs.items():
        insp = api.inspect(o)
        obs.append((label, api.loaded(o), api.state(o), o in s, insp.expired))
    obs.append(("after commit", s.in_transaction(), engine.pool.checkedout()))

    # commit-2: the next access reloads all columns at once; later reads emit nothing.
    obs.append(("sandy fullname", sandy.fullname))
    obs.sql("first read", pool=True)
    obs.append(("sandy rest", sandy.id, sandy.name, api.visible(sandy)))
    obs.append(("sandy expired", api.inspect(sandy).expired))
    obs.sql("later reads", pool=True)
    obs.append(("newbie name", newbie.name, newbie.id))
    obs.sql("newbie read")
    s.close()


def test_commit1_commit2_commit_expires_every_object_and_reload_is_one_select(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(c1_c2_commit_expires_everything, engine, ref_engine))
    assert event_kinds(facts["commit"][1]) == ["UPDATE", "INSERT", "COMMIT", "checkin"]
    for label in ("sandy", "patrick", "squidward", "newbie"):
        assert facts[label][1:] == ([], "persistent", True, True), label
    assert facts["after commit"][1:] == (False, 0)
    first = facts["first read"][1]
    assert event_kinds(first) == ["checkout", "BEGIN", "SELECT"]
    assert sql_statements(first) == [(sql_statements(first)[0][0], (1,))]
    assert first[2][1].startswith(SELECT_ALL)
    assert facts["sandy fullname"][1] == "Sandy Cheeks"
    assert facts["sandy rest"][3] == {"id": 1, "name": "sandy", "fullname": "Sandy Cheeks"}
    assert facts["sandy expired"][1] is False
    assert facts["later reads"][1] == []
    assert facts["newbie name"][1:] == ("newbie", 4)
    assert event_kinds(facts["newbie read"][1]) == ["SELECT"]


def c3_no_expire_on_commit(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, expire_on_commit=False)
    sandy, patrick = s.get(User, 1), s.get(User, 2)
    sandy.name = "Sandy2"
    newbie = User(name="newbie")
    s.add(newbie)
    s.commit()
    obs.sql("commit")
    for label, o in {"sandy": sandy, "patrick": patrick, "newbie": newbie}.items():
        insp = api.inspect(o)
        obs.append((label, api.visible(o), insp.modified, insp.expired, api.state(o)))
    obs.append(("dirty", len(s.dirty), s.is_modified(sandy), s.in_transaction()))
    obs.append(("values", sandy.name, sandy.fullname, patrick.name, newbie.id, newbie.name))
    obs.sql("reads", pool=True)
    s.flush()
    s.commit()
    obs.sql("nothing left to write", pool=True)
    s.close()


def test_commit3_expire_on_commit_false_keeps_values(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(c3_no_expire_on_commit, engine, ref_engine))
    assert facts["sandy"][1:] == (
        {"id": 1, "name": "Sandy2", "fullname": "Sandy"},
        False,
        False,
        "persistent",
    )
    assert facts["patrick"][2:] == (False, False, "persistent")
    assert facts["newbie"][1]["name"] == "newbie"
    assert facts["dirty"][1:] == (0, False, False)
    assert facts["values"][1:] == ("Sandy2", "Sandy", "patrick", 4, "newbie")
    assert facts["reads"][1] == []
    assert facts["nothing left to write"][1] == []


def c4_deleted_detached_at_commit(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick, squidward = s.get(User, 2), s.get(User, 3)
    s.delete(patrick)
    s.flush()
    obs.append(("flushed", api.state(patrick)))
    s.delete(squidward)
    obs.rec.clear()
    s.commit()
    obs.sql("commit")
    for label, o in {"patrick": patrick, "squidward": squidward}.items():
        insp = api.inspect(o)
        obs.append(
            (label, api.state(o), o in s, insp.session is None, insp.was_deleted, api.visible(o))
        )
    obs.append(("identity map", len(list(s.identity_map.keys()))))
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_commit4_flushed_deletes_become_detached_at_commit(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(c4_deleted_detached_at_commit, engine, ref_engine))
    assert facts["flushed"][1] == "deleted"
    assert event_kinds(facts["commit"][1]) == ["DELETE", "COMMIT"]
    assert facts["patrick"][1:] == (
        "detached",
        False,
        True,
        True,
        {"id": 2, "name": "patrick", "fullname": "Patrick"},
    )
    assert facts["squidward"][1:5] == ("detached", False, True, True)
    assert facts["squidward"][5]["name"] == "squidward"
    assert facts["identity map"][1] == 0
    assert [tuple(r) for r in facts["rows"][1]] == [(1, "sandy")]


def c5_shared(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine, expire_on_commit=False)
    patrick = s.get(User, 2)
    s.delete(patrick)
    s.commit()
    obs.sql("commit")
    insp = api.inspect(patrick)
    obs.append(("patrick", patrick in s, insp.was_deleted, api.visible(patrick)))
    s.close()


def test_commit4_expire_on_commit_false_deleted_object_shared_facts(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(c5_shared, engine, ref_engine))
    assert event_kinds(facts["commit"][1]) == ["BEGIN", "SELECT", "DELETE", "COMMIT"]
    assert facts["patrick"][1:] == (
        False,
        True,
        {"id": 2, "name": "patrick", "fullname": "Patrick"},
    )


def c5_states(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, expire_on_commit=False)
    patrick = s.get(User, 2)
    s.delete(patrick)
    s.commit()
    obs.append(("state", api.state(patrick), api.inspect(patrick).session is s))
    s.close()


def test_commit4_sessionkit_detaches_committed_deleted_object(
    engine: Engine, ref_engine: Engine
) -> None:
    """Deliberate difference: sessionkit detaches; the reference leaves it 'deleted'."""
    ours = by_unique_label(run(SK, engine, c5_states))
    assert ours["state"][1:] == ("detached", False)
    theirs = by_unique_label(run(ORM, ref_engine, c5_states))
    assert theirs["state"][1:] == ("deleted", True)


def c6_commit_nothing_to_flush(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    obs.rec.clear()
    s.commit()
    obs.sql("commit", pool=True)
    obs.append(("sandy", api.loaded(sandy)))
    s.close()


def test_commit5_commit_with_connection_but_nothing_to_flush(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(c6_commit_nothing_to_flush, engine, ref_engine))
    assert event_kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
    assert facts["sandy"][1] == []


def c7_commit_after_failed_flush(api: Api, engine: Engine, obs: Obs) -> None:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as setup:
        setup.add(Item(id="1", name="dup"))
        setup.commit()
    obs.rec.clear()
    s = api.Session(engine)
    clash = Item(id="2", name="dup")
    s.add(clash)
    obs.error("flush", s.flush)
    obs.sql("failed flush", pool=True)
    obs.append(("clash", api.state(clash), s.in_transaction(), s.is_active))
    err = obs.error("commit", s.commit)
    obs.append(("commit: message", message_starts(err, PENDING_ROLLBACK)))
    obs.append(("commit: code", str(err).endswith("https://sqlalche.me/e/21/7s2a)")))
    obs.sql("commit emitted nothing", pool=True)
    s.rollback()
    obs.sql("rollback", pool=True)
    obs.append(("after rollback", s.in_transaction(), s.is_active, engine.pool.checkedout()))
    s.add(Item(id="3", name="fine"))
    s.commit()
    obs.sql("usable again", pool=True)
    s.close()


def test_commit6_commit_after_failed_flush_raises_pending_rollback(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(c7_commit_after_failed_flush, engine, ref_engine))
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert event_kinds(facts["failed flush"][1]) == ["checkout", "BEGIN", "INSERT", "ROLLBACK"]
    assert facts["clash"][1:] == ("transient", True, False)
    assert facts["commit"][1:] == ("raises", "PendingRollbackError")
    assert facts["commit: message"][1] is True
    assert facts["commit: code"][1] is True
    assert facts["commit emitted nothing"][1] == []
    assert event_kinds(facts["rollback"][1]) == ["checkin"]
    assert facts["after rollback"][1:] == (False, True, 0)
    assert event_kinds(facts["usable again"][1]) == [
        "checkout",
        "BEGIN",
        "INSERT",
        "COMMIT",
        "checkin",
    ]


# -- D. rollback() -------------------------------------------------------------------------


def d1_rollback_without_transaction(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, expire_on_commit=False)
    sandy = s.get(User, 1)
    sandy.name = "changed"
    s.commit()
    obs.rec.clear()
    obs.append(("before", s.in_transaction()))
    s.rollback()
    obs.sql("rollback", pool=True)
    obs.append(("sandy", api.visible(sandy), api.state(sandy), s.in_transaction()))
    obs.append(("value", sandy.name))
    obs.sql("read", pool=True)
    s.close()


def test_rollback1_rollback_without_transaction_is_a_no_op(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(d1_rollback_without_transaction, engine, ref_engine))
    assert facts["before"][1] is False
    assert facts["rollback"][1] == []
    assert facts["sandy"][1:] == (
        {"id": 1, "name": "changed", "fullname": "Sandy"},
        "persistent",
        False,
    )
    assert facts["value"][1] == "changed"
    assert facts["read"][1] == []


def d2_rollback_without_connection(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, expire_on_commit=False)
    users = s.scalars(select(User).order_by(User.id)).all()
    s.commit()
    obs.rec.clear()
    users[0].name = "only in memory"
    pending = User(name="pending")
    s.add(pending)
    obs.append(("began", s.in_transaction(), engine.pool.checkedout()))
    s.rollback()
    obs.sql("rollback", pool=True)
    for i, u in enumerate(users, 1):
        obs.append((f"user {i}", api.loaded(u), api.state(u), u in s))
    obs.append(("pending", api.state(pending), api.visible(pending), pending in s))
    obs.append(("collections", len(s.new), len(s.dirty), len(s.deleted)))
    obs.append(("reloaded value", users[0].name))
    obs.sql("reload", pool=True)
    s.close()


def test_rollback2_rollback_without_connection_still_expires_everything(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(d2_rollback_without_connection, engine, ref_engine))
    assert facts["began"][1:] == (True, 0)
    assert facts["rollback"][1] == []
    users = [o for label, o in facts.items() if label.startswith("user ")]
    assert len(users) == 3
    for o in users:
        assert o[1:] == ([], "persistent", True)
    assert facts["pending"][1:] == ("transient", {"name": "pending"}, False)
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["reloaded value"][1] == "sandy"
    assert event_kinds(facts["reload"][1]) == ["checkout", "BEGIN", "SELECT"]


def d3_rollback_releases_and_expires_earlier_commits(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    early = User(name="early")
    s.add(early)
    s.commit()
    obs.append(("early reloaded", early.name))
    sandy = s.get(User, 1)
    untouched = s.get(User, 2)
    obs.append(("untouched loaded", api.loaded(untouched)))
    sandy.name = "flushed change"
    s.flush()
    obs.rec.clear()
    s.rollback()
    obs.sql("rollback", pool=True)
    obs.append(("after", s.in_transaction(), engine.pool.checkedout()))
    for label, o in {"early": early, "sandy": sandy, "untouched": untouched}.items():
        obs.append((label, api.loaded(o), api.state(o), o in s))
    obs.append(("values", early.name, sandy.name, untouched.name))
    obs.sql("reloads", pool=True)
    s.close()


def test_rollback3_rollback_releases_connection_and_expires_earlier_commits(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(
        compare(d3_rollback_releases_and_expires_earlier_commits, engine, ref_engine)
    )
    assert event_kinds(facts["rollback"][1]) == ["ROLLBACK", "checkin"]
    assert facts["after"][1:] == (False, 0)
    assert facts["untouched loaded"][1] == ["fullname", "id", "name"]
    for label in ("early", "sandy", "untouched"):
        assert facts[label][1:] == ([], "persistent", True), label
    assert facts["values"][1:] == ("early", "sandy", "patrick")
    assert event_kinds(facts["reloads"][1]) == ["checkout", "BEGIN", "SELECT", "SELECT", "SELECT"]


def d4_unflushed_delete_forgotten(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick = s.get(User, 2)
    s.delete(patrick)
    obs.append(("marked", patrick in s.deleted, api.state(patrick)))
    obs.rec.clear()
    s.rollback()
    obs.sql("rollback")
    obs.append(("after", patrick in s, patrick in s.deleted, len(s.deleted), api.state(patrick)))
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_rollback4_rollback_forgets_unflushed_delete_marks(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(d4_unflushed_delete_forgotten, engine, ref_engine))
    assert facts["marked"][1:] == (True, "persistent")
    assert event_kinds(facts["rollback"][1]) == ["ROLLBACK"]
    assert facts["after"][1:] == (True, False, 0, "persistent")
    assert facts["commit"][1] == []
    assert [tuple(r) for r in facts["rows"][1]] == [(1, "sandy"), (2, "patrick"), (3, "squidward")]


def d5_readd_rolled_back_insert(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    n = User(name="n")
    s.add(n)
    s.flush()
    obs.append(("id", n.id))
    s.rollback()
    obs.append(("after rollback", api.state(n), api.visible(n), n in s))
    obs.rec.clear()
    s.add(n)
    obs.append(("re-added", api.state(n), n in s.new))
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_rollback6_readding_a_rolled_back_insert_sends_the_stale_id(
    engine: Engine, ref_engine: Engine, backend: Any
) -> None:
    facts = by_unique_label(compare(d5_readd_rolled_back_insert, engine, ref_engine))
    assert facts["id"][1] == 4
    assert facts["after rollback"][1:] == ("transient", {"name": "n", "id": 4}, False)
    assert facts["re-added"][1:] == ("pending", True)
    commit = facts["commit"][1]
    assert event_kinds(commit) == ["BEGIN", "INSERT", "COMMIT"]
    ((insert, params),) = sql_statements(commit)
    assert insert.startswith("INSERT INTO user_account (id, name, fullname) VALUES")
    assert params == (4, "n", None)
    assert [tuple(r) for r in facts["rows"][1]][-1] == (4, "n")


def d6_pk_change_undone(api: Api, engine: Engine, obs: Obs) -> None:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as setup:
        setup.add_all([Item(id="1", name="one"), Item(id="2", name="two")])
        setup.commit()
    s = api.Session(engine)
    item = s.get(Item, "1")
    item.id = "9"
    obs.rec.clear()
    s.flush()
    obs.sql("flush")

    def keys() -> list[Any]:
        return sorted(key[1] for key in list(s.identity_map.keys()))

    obs.append(("flushed", api.inspect(item).identity, keys()))
    s.rollback()
    obs.append(("rolled back", api.inspect(item).identity, keys(), api.loaded(item)))
    obs.append(("state", api.state(item), item in s))
    obs.rec.clear()
    obs.append(("get old key", s.get(Item, "1") is item))
    obs.sql("get of the expired object")
    obs.append(("values", item.id, item.name))
    s.close()


def test_rollback7_rollback_undoes_a_flushed_primary_key_change(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(d6_pk_change_undone, engine, ref_engine))
    assert event_kinds(facts["flush"][1]) == ["UPDATE"]
    assert facts["flushed"][1:] == (("9",), [("9",)])
    assert facts["rolled back"][1:] == (("1",), [("1",)], [])
    assert facts["state"][1:] == ("persistent", True)
    assert facts["get old key"][1] is True
    assert event_kinds(facts["get of the expired object"][1]) == ["BEGIN", "SELECT"]
    assert facts["values"][1:] == ("1", "one")


def d7_reusable(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    sandy.name = "lost"
    s.add(User(name="lost too"))
    s.flush()
    s.rollback()
    obs.rec.clear()
    again = s.get(User, 1)
    again.fullname = "Sandy Cheeks"
    s.add(User(name="kept"))
    s.commit()
    obs.sql("next transaction", pool=True)
    obs.append(("same object", again is sandy))
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_rollback8_session_is_reusable_after_rollback(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(d7_reusable, engine, ref_engine))
    assert event_kinds(facts["next transaction"][1]) == [
        "checkout",
        "BEGIN",
        "SELECT",
        "UPDATE",
        "INSERT",
        "COMMIT",
        "checkin",
    ]
    assert facts["same object"][1] is True
    rows = [tuple(r) for r in facts["rows"][1]]
    assert rows[0] == (1, "sandy") and rows[-1][1] == "kept" and len(rows) == 4


# -- rollback-7. Primary-key changes and the identity map ----------------------------------


def test_rollback7_primary_key_change_moves_the_identity_map_entry(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine, (("1", "one"), ("2", "two")))
        session = api.Session(engine)
        one = session.get(Item, "1")
        obs.rec.clear()
        one.id = "9"
        obs.append(("before flush", named_key(api, one)))
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", named_key(api, one), api.state(one)))
        obs.append(("map", sorted(k[1] for k in session.identity_map)))
        obs.append(("new key hit", session.get(Item, "9") is one))
        obs.sql("hit: no SQL")
        obs.append(("old key", session.get(Item, "1")))
        obs.sql("old key: a SELECT that finds nothing")
        session.rollback()
        obs.sql("rollback")
        obs.append(("after rollback", named_key(api, one), api.state(one), api.loaded(one)))
        obs.append(("map after rollback", sorted(k[1] for k in session.identity_map)))
        obs.append(("old key again", session.get(Item, "1") is one, one.id))
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["before flush"][1] == ("Item", ("1",), None)
    flush = facts["flush"][1]
    assert event_kinds(flush) == ["UPDATE"]
    assert flush[0][1].startswith("UPDATE items SET id=")
    assert flush[0][2] == ("9", "1")
    assert facts["after flush"][1:] == (("Item", ("9",), None), "persistent")
    assert facts["map"][1] == [("9",)]
    assert facts["new key hit"][1] is True
    assert facts["hit: no SQL"][1] == []
    assert facts["old key"][1] is None
    assert event_kinds(facts["old key: a SELECT that finds nothing"][1]) == ["SELECT"]
    assert facts["after rollback"][1:] == (("Item", ("1",), None), "persistent", [])
    assert facts["map after rollback"][1] == [("1",)]
    assert facts["old key again"][1:] == (True, "1")
    assert facts["rows"][1] == [("1", "one"), ("2", "two")]
