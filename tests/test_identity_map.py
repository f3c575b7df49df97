"""The identity map (docs/behaviour.md, "The identity map") and the session's collections
(states-14): one object per row, identity keys, rows that do not overwrite loaded
attributes, weak references to unmodified objects, get() hits and misses; new, dirty,
deleted, is_modified() and iteration. Each scenario runs on sessionkit and on the
SQLAlchemy ORM.

Every scenario records what both libraries must agree on; the assertions after
``compare()`` check the expected facts from docs/behaviour.md so that a bug shared by both
runs cannot hide. Error messages are recorded with ``0x...`` addresses normalised;
sessionkit may add guidance after the reference's words, so only the start of a message is
compared.
"""

from __future__ import annotations

import gc
import warnings
import weakref
from typing import Any

from models import empty_users, item_model, setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, select, text

from support import by_label, event_kinds, named_key, norm_addresses_and_sessions

# -- H. Identity map -----------------------------------------------------------------------


def test_identity1_one_object_per_identity(engine: Engine, ref_engine: Engine) -> None:
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
    facts = by_label(obs)
    assert event_kinds(facts["first get: SELECT"][1]) == ["BEGIN", "SELECT"]
    assert facts["second get: no SQL"][1] == []
    assert event_kinds(facts["query: SELECT"][1]) == ["SELECT"]
    assert facts["identical"][1:] == (True, True, True, True, 3)
    assert facts["one map entry per row"][1] == 3


def test_identity2_identity_keys(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        ItemBase, Item = item_model(api)
        ItemBase.metadata.create_all(engine)
        session = api.Session(engine)
        session.add(Item(id="1", name="one"))
        session.commit()
        u = session.get(User, 1)
        item = session.get(Item, "1")
        obs.append(
            ("user key", named_key(api, u), api.inspect(u).identity_key == (User, (1,), None))
        )
        obs.append(
            ("item key", named_key(api, item), api.inspect(item).key == (Item, ("1",), None))
        )
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
    facts = by_label(obs)
    assert facts["user key"][1:] == (("User", (1,), None), True)
    assert facts["item key"][1:] == (("Item", ("1",), None), True)
    assert facts["getitem"][1:] == (True, True)
    assert facts["contains"][1:] == (True, False)
    assert facts["keys"][1:] == ([("Item", ("1",), None), ("User", (1,), None)], 2)
    assert facts["values"][1] is True
    assert facts["missing key"][1:] == ("raises", "KeyError")


def test_identity2_identity_map_get_like_a_mapping(engine: Engine, ref_engine: Engine) -> None:
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


def test_identity3_rows_do_not_overwrite_loaded_attributes(
    engine: Engine, ref_engine: Engine
) -> None:
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
    facts = by_label(obs)
    assert event_kinds(facts["query: SELECT"][1]) == ["SELECT"]
    assert facts["stale"][1:] == (True, "sandy")
    assert facts["populate_existing statement option"][1:] == (True, "db value")
    assert facts["populate_existing execution option"][1:] == (True, "db value 2")
    assert facts["get hit"][1] == "db value 2"
    assert facts["get hit: no SQL"][1] == []
    assert facts["get populate_existing"][1] is True
    assert event_kinds(facts["get populate_existing: SELECT"][1]) == ["SELECT"]
    assert facts["value"][1:] == ("db value 3", False, False)


def test_identity4_unflushed_changes_survive_requery(engine: Engine, ref_engine: Engine) -> None:
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
    facts = by_label(obs)
    assert event_kinds(facts["no_autoflush query: SELECT only"][1]) == ["SELECT"]
    assert facts["kept"][1:] == (True, "unflushed", True)
    assert facts["overwritten"][1:] == ("sandy", False, False)
    assert facts["nothing left to flush"][1] == []


def test_identity5_unmodified_objects_are_weakly_referenced(
    engine: Engine, ref_engine: Engine
) -> None:
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
    facts = by_label(obs)
    assert facts["loaded"][1:] == (True, 1)
    assert facts["dropped unmodified"][1:] == (True, False, 0)
    assert facts["dropped modified"][1:] == (True, True)
    assert facts["still dirty"][1] == 1
    assert event_kinds(facts["commit: UPDATE"][1]) == ["UPDATE", "COMMIT"]
    assert facts["after commit"][1:] == (True, False, 0)
    assert facts["dropped pending"][1:] == (True, 1)
    assert facts["inserted and committed"][1:] == (True, 0)


def test_identity5_updated_objects_are_weak_after_flush(engine: Engine, ref_engine: Engine) -> None:
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


def test_identity5_inserted_objects_are_weak_after_flush(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = empty_users(api, engine)
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


def test_identity5_duplicate_key_warning_only_while_original_is_referenced(
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
            texts = [norm_addresses_and_sessions(str(w.message)) for w in caught]
            obs.append(
                (f"{label}: warning text", [t.split(" with identity key")[0] for t in texts])
            )
            session.rollback()
            session.close()

        flush_duplicate("referenced", keep=True)
        flush_duplicate("dropped", keep=False)

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["referenced: flush"][1:] == ("raises", "IntegrityError")
    assert facts["referenced: warnings"][1] == ["SAWarning"]
    assert facts["referenced: warning text"][1] == ["New instance <Item at 0x...>"]
    assert facts["dropped: flush"][1:] == ("raises", "IntegrityError")
    assert facts["dropped: warnings"][1] == []


def test_identity6_get_of_expired_object(engine: Engine, ref_engine: Engine) -> None:
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
    facts = by_label(obs)
    load = facts["get of expired object: full-row SELECT"][1]
    assert event_kinds(load) == ["BEGIN", "SELECT"]
    assert load[1][1].startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert facts["loaded"][1] == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["row gone"][1] is None
    assert event_kinds(facts["get of expired object whose row is gone: two SELECTs"][1]) == [
        "SELECT",
        "SELECT",
    ]
    assert facts["stale object"][1:] == ("deleted", False, [])
    assert facts["map"][1] is False


def test_identity7_get_autoflushes_only_on_a_miss(engine: Engine, ref_engine: Engine) -> None:
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
    facts = by_label(obs)
    assert facts["hit"][1] is True
    assert facts["hit: no SQL, no autoflush"][1] == []
    assert facts["still pending"][1:] == ("pending", True)
    assert facts["pending not found"][1] is None
    assert event_kinds(facts["miss without autoflush: SELECT only"][1]) == ["SELECT"]
    assert facts["pending found after autoflush"][1] is True
    kinds = event_kinds(facts["miss: autoflush, then SELECT"][1])
    assert kinds[-1] == "SELECT" and "INSERT" in kinds and "UPDATE" in kinds
    assert facts["flushed"][1:] == ("persistent", False)


# -- K. Collections ------------------------------------------------------------------------


def test_states14_new_dirty_deleted_is_modified_and_iteration(
    engine: Engine, ref_engine: Engine
) -> None:
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
        obs.append(("insert order = add order", named_key(api, q), named_key(api, p)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["fresh"][1:] == ([], [], [])
    assert facts["new"][1] == ["p", "q"]
    assert facts["dirty"][1] == ["a", "b"]
    assert facts["deleted"][1] == ["c", "d"]
    assert facts["is_modified"][1] == [False, True, True]
    iteration = facts["iteration"][1]
    assert sorted(iteration[:2]) == ["p", "q"]
    assert sorted(iteration[2:]) == ["a", "b", "c", "d"]
    flush = event_kinds(facts["flush"][1])
    assert flush.count("UPDATE") == 1 and flush.count("DELETE") == 1
    assert flush.count("INSERT") >= 1
    assert facts["after flush"][1:] == (0, 0, 0)
    assert facts["is_modified after"][1] == [False, False, False]
    assert facts["iteration after"][1] == ["a", "b", "p", "q"]
    assert facts["insert order = add order"][1:] == (("User", (5,), None), ("User", (6,), None))
