"""What a flush writes (docs/behaviour.md: flush-1, flush-3 … flush-8): UPDATEs, then
INSERTs, then DELETEs (across tables parents first, children deleted first), batched INSERTs
with client-assigned and generated keys, server defaults, UPDATEs grouped by changed
columns, batched DELETEs, and the row switch. Each scenario runs on sessionkit and on the
SQLAlchemy ORM.

Every scenario records the SQL and transaction events the engine sees, object states,
``__dict__`` contents, error class names and warning categories; the two libraries must
record the same thing. The assertions after ``compare()`` check the expected facts so that
a bug shared by both runs cannot hide. Foreign-key ordering between tables is a deliberate
sessionkit improvement over the reference (which orders tables only through
relationship()), so it is tested on sessionkit alone.
"""

from __future__ import annotations

from typing import Any

from models import setup_items, setup_users_table, user_model
from models_uow import note_model, revision_model, shop_model, tag_model
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine, select

from support import (
    behind_the_back,
    by_label,
    event_kinds,
    named_key,
    sql_statements,
    unrecorded_rows,
)


def _squash(kinds: list[str]) -> list[str]:
    """Consecutive repeats collapsed: per-row statements of one batch count once."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


# -- flush-1. Order ------------------------------------------------------------------------


def test_flush1_single_table_updates_then_inserts_then_deletes(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        zed, amy = User(name="zed"), User(name="amy")
        session.delete(b)
        session.add(zed)
        d.name = "d2"
        session.add(amy)
        a.name = "a2"
        session.delete(c)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("ids in add order", zed.id, amy.id))
        obs.append(("states", [api.state(o) for o in (a, b, c, d, zed, amy)]))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id, name FROM users ORDER BY id")))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    flush = facts["flush"][1]
    assert _squash(event_kinds(flush)) == ["UPDATE", "INSERT", "DELETE"]
    (update,) = sql_statements(flush, "UPDATE")
    assert update[1] == [("a2", 1), ("d2", 4)]
    (delete,) = sql_statements(flush, "DELETE")
    assert delete[1] == [(2,), (3,)]
    assert facts["ids in add order"][1:] == (5, 6)
    states = ["persistent", "deleted", "deleted", "persistent", "persistent", "persistent"]
    assert facts["states"][1] == states
    assert facts["rows"][1] == [(1, "a2"), (4, "d2"), (5, "zed"), (6, "amy")]


def _shop(api: Api, engine: Engine) -> tuple[Any, Any, Any]:
    Base, Customer, Order, LineItem = shop_model(api)
    Base.metadata.create_all(engine)
    return Customer, Order, LineItem


def test_flush1_foreign_key_order_parents_first_children_deleted_first(fk_engine: Engine) -> None:
    """sessionkit only: the reference orders tables only through relationship().

    Tables are declared children first and objects are added children first; the foreign
    keys are enforced on both backends, so a wrong order fails in the database.
    """
    Customer, Order, LineItem = _shop(SK, fk_engine)
    obs = Obs(SK, fk_engine)
    try:
        session = SK.Session(fk_engine)
        session.add(LineItem(id=1, order_id=1, product="pen"))
        session.add(Order(id=1, customer_id=1, note="first"))
        session.add(Customer(id=1, name="sandy"))
        session.flush()
        obs.sql("insert: parents first")
        session.commit()

        # One flush with work on every table: for each table parents first, its UPDATEs
        # then its INSERTs; then the DELETEs, children first.
        customer = session.get(Customer, 1)
        order = session.get(Order, 1)
        line = session.get(LineItem, 1)
        session.delete(order)
        session.delete(line)
        session.add(LineItem(id=2, order_id=2, product="ink"))
        session.add(Order(id=2, customer_id=1, note="second"))
        customer.name = "sandy cheeks"
        obs.rec.clear()
        session.flush()
        obs.sql("mixed flush")
        session.commit()
        rows = unrecorded_rows(
            obs,
            fk_engine,
            "SELECT li.id, o.id, c.name FROM line_items li "
            "JOIN orders o ON o.id = li.order_id JOIN customers c ON c.id = o.customer_id",
        )
        obs.append(("rows", rows))

        # Deleting everything: children first.
        everything = [
            o for cls in (Customer, Order, LineItem) for o in session.scalars(select(cls))
        ]
        for obj in everything:
            session.delete(obj)
        obs.rec.clear()
        session.commit()
        obs.sql("delete: children first")
    finally:
        obs.rec.detach()

    facts = by_label(obs)
    insert = facts["insert: parents first"][1]
    assert [s[0].split("(")[0].strip() for s in sql_statements(insert, "INSERT")] == [
        "INSERT INTO customers",
        "INSERT INTO orders",
        "INSERT INTO line_items",
    ]
    mixed = [
        e[1].split(" SET")[0].split(" (")[0].split(" WHERE")[0] for e in facts["mixed flush"][1]
    ]
    assert mixed == [
        "UPDATE customers",
        "INSERT INTO orders",
        "INSERT INTO line_items",
        "DELETE FROM line_items",
        "DELETE FROM orders",
    ]
    assert facts["rows"][1] == [(2, 2, "sandy cheeks")]
    deletes = [
        s[0].split(" WHERE")[0]
        for s in sql_statements(facts["delete: children first"][1], "DELETE")
    ]
    assert deletes == ["DELETE FROM line_items", "DELETE FROM orders", "DELETE FROM customers"]


# -- flush-3, flush-4. INSERT batching -----------------------------------------------------


def test_flush3_client_assigned_keys_one_executemany(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine)
        session = api.Session(engine)
        items = [Item(id=str(i), name=f"n{i}") for i in range(4)]
        session.add_all(items)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("keys", [named_key(api, o) for o in items]))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    flush = facts["flush"][1]
    assert event_kinds(flush) == ["BEGIN", "INSERT"]
    statement, params = sql_statements(flush, "INSERT")[0]
    assert statement.startswith("INSERT INTO items (id, name) VALUES")
    if isinstance(params, list):  # a DB-API executemany
        assert params == [("0", "n0"), ("1", "n1"), ("2", "n2"), ("3", "n3")]
    else:  # a driver with "insertmanyvalues": one multi-row VALUES statement
        assert params == ("0", "n0", "1", "n1", "2", "n2", "3", "n3")
    assert facts["keys"][1] == [("Item", (str(i),), None) for i in range(4)]
    assert facts["rows"][1] == [(str(i), f"n{i}") for i in range(4)]


def test_flush4_generated_keys_land_on_the_right_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        names = ["echo", "alpha", "delta", "bravo", "charlie"]
        users = [User(name=n) for n in names]
        session.add_all(users)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("ids", [(u.name, u.id) for u in users]))
        obs.append(("dicts", [api.visible(u) for u in users]))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT name, id FROM users")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    flush = facts["flush"][1]
    inserts = sql_statements(flush, "INSERT")
    assert all(" RETURNING " in s for s, _ in inserts)
    if engine.dialect.name == "sqlite":
        assert len(inserts) == 5  # "(insertmanyvalues) ... batch not supported"
    else:
        assert len(inserts) == 1
    ids = dict(facts["ids"][1])
    assert ids == dict(facts["rows"][1])
    assert sorted(ids.values()) == [1, 2, 3, 4, 5]
    assert [i for _, i in facts["ids"][1]] == [1, 2, 3, 4, 5]


def test_flush4_generated_keys_across_several_batches(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        # Names in an order unrelated to the ids; more rows than one insertmanyvalues page.
        users = [User(name=f"u{(i * 7919) % 2500:04d}") for i in range(2500)]
        session.add_all(users)
        obs.rec.clear()
        session.flush()
        obs.append(("statements", len(sql_statements(obs.rec.without_pool(), "INSERT"))))
        obs.rec.clear()
        obs.append(("ids", [(u.name, u.id) for u in users]))
        session.commit()
        obs.append(("rows", sorted(unrecorded_rows(obs, engine, "SELECT name, id FROM users"))))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    ids = facts["ids"][1]
    assert sorted(ids) == facts["rows"][1]
    assert [i for _, i in ids] == list(range(1, 2501))
    if engine.dialect.name != "sqlite":
        # PostgreSQL and MariaDB batch (insertmanyvalues ... RETURNING, rows sorted by
        # the autoincrement key); SQLAlchemy trusts no SQLite key order and goes row by row.
        assert 1 < facts["statements"][1] < 2500


def test_flush4_one_generated_key_row(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        u = User(name="solo")
        session.add(u)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("after", api.visible(u), named_key(api, u)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    (insert,) = sql_statements(facts["flush"][1], "INSERT")
    if engine.dialect.name == "sqlite":  # the id comes from cursor.lastrowid
        assert insert == ("INSERT INTO users (name, fullname) VALUES (?, ?)", ("solo", None))
    assert facts["after"][1:] == ({"name": "solo", "id": 1}, ("User", (1,), None))


def test_flush4_explicit_and_generated_keys_in_one_flush(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        users = [
            User(name="gen1"),
            User(id=100, name="explicit1"),
            User(name="gen2"),
            User(id=200, name="explicit2"),
            User(name="gen3"),
        ]
        session.add_all(users)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("ids", [(u.name, u.id) for u in users]))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT name, id FROM users")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert dict(facts["ids"][1]) == dict(facts["rows"][1])
    assert dict(facts["ids"][1])["explicit1"] == 100
    assert len({i for _, i in facts["ids"][1]}) == 5


def test_flush4_server_default_is_available_after_flush(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, Note = note_model(api)
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        notes = [Note(title="t1"), Note(title="t2", status="done"), Note(title="t3")]
        session.add_all(notes)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", [api.visible(n) for n in notes]))
        obs.append(("expired", [sorted(api.inspect(n).expired_attributes) for n in notes]))
        obs.append(("values", [(n.id, n.title, n.status) for n in notes]))
        obs.sql("reading the values")
        session.commit()
        obs.append(
            (
                "rows",
                unrecorded_rows(obs, engine, "SELECT id, title, status FROM notes ORDER BY id"),
            )
        )

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    expected = [(1, "t1", "new"), (2, "t2", "done"), (3, "t3", "new")]
    assert facts["values"][1] == expected
    assert facts["rows"][1] == expected


def test_flush4_server_default_with_client_assigned_key(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, Tag = tag_model(api)
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        tags = [Tag(code="a", label="A"), Tag(code="b", label="B"), Tag(code="c", color="red")]
        session.add_all(tags)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", [api.visible(t) for t in tags]))
        obs.append(("values", [(t.code, t.label, t.color) for t in tags]))
        obs.sql("reading the values")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["values"][1] == [("a", "A", "grey"), ("b", "B", "grey"), ("c", None, "red")]


# -- flush-5, flush-6, flush-7. UPDATE and DELETE batching ---------------------------------


def test_flush5_updates_grouped_by_changed_columns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine, ("a", "b", "c", "d", "e"))
        session = api.Session(engine)
        a, b, c, d, e = (session.get(User, i) for i in (1, 2, 3, 4, 5))
        b.name = "b2"  # changed in reverse key order: the flush sorts by primary key
        a.name = "a2"
        c.fullname = "C2"
        e.fullname = "E2"  # the same columns as d, assigned in the other order
        e.name = "e2"
        d.name = "d2"
        d.fullname = "D2"
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("dirty after", len(session.dirty)))
        session.commit()
        obs.append(
            (
                "rows",
                unrecorded_rows(obs, engine, "SELECT id, name, fullname FROM users ORDER BY id"),
            )
        )

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    updates = sql_statements(facts["flush"][1], "UPDATE")
    assert [u[1] for u in updates] == [
        [("a2", 1), ("b2", 2)],
        ("C2", 3),
        [("d2", "D2", 4), ("e2", "E2", 5)],
    ]
    assert "SET name=" in updates[0][0] and "fullname" not in updates[0][0]
    assert facts["dirty after"][1] == 0
    assert facts["rows"][1] == [
        (1, "a2", "A"),
        (2, "b2", "B"),
        (3, "c", "C2"),
        (4, "d2", "D2"),
        (5, "e2", "E2"),
    ]


def test_flush5_values_set_by_the_update_itself_are_available_after_flush(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, Doc = revision_model(api)
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        docs = [Doc(title="t1"), Doc(title="t2")]
        session.add_all(docs)
        session.flush()
        obs.rec.clear()
        for doc in docs:
            doc.title += " edited"
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", [api.visible(d) for d in docs]))
        obs.append(("expired", [sorted(api.inspect(d).expired_attributes) for d in docs]))
        obs.append(("values", [(d.title, d.edited, d.stamp, d.rev) for d in docs]))
        obs.sql("reading the values")
        session.commit()
        rows = unrecorded_rows(
            obs, engine, "SELECT title, edited, stamp, rev FROM docs ORDER BY id"
        )
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    expected = [("t1 edited", "edited", "stamped", 1), ("t2 edited", "edited", "stamped", 1)]
    assert facts["values"][1] == expected
    assert facts["rows"][1] == expected


def test_flush6_equal_value_is_dirty_but_not_modified_and_emits_no_update(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        new = User(name="new")
        session.add(new)
        obs.rec.clear()
        a.name = "a"
        b.fullname = "B"
        obs.append(("dirty", a in session.dirty, b in session.dirty))
        obs.append(("is_modified", session.is_modified(a), session.is_modified(b)))
        obs.append(("inspect modified", api.inspect(a).modified))
        obs.append(("pending is_modified", session.is_modified(new)))
        session.expunge(new)
        session.flush()
        obs.sql("flush: nothing to write")
        obs.append(("dirty after", len(session.dirty)))
        a.name = "a"
        b.name = "b2"
        obs.append(("mixed", session.is_modified(a), session.is_modified(b)))
        session.flush()
        obs.sql("flush: only the real change")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["dirty"][1:] == (True, True)
    assert facts["is_modified"][1:] == (False, False)
    assert facts["pending is_modified"][1] is True
    assert facts["flush: nothing to write"][1] == []
    assert facts["dirty after"][1] == 0
    assert facts["mixed"][1:] == (False, True)
    assert [s[1] for s in sql_statements(facts["flush: only the real change"][1], "UPDATE")] == [
        ("b2", 2)
    ]


def test_flush7_deletes_are_batched(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        session.delete(d)
        session.delete(a)
        session.delete(c)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("states", [api.state(o) for o in (a, b, c, d)]))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id FROM users ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    flush = facts["flush"][1]
    assert event_kinds(flush) == ["DELETE"]
    assert flush[0][1].startswith("DELETE FROM users WHERE users.id = ")
    assert flush[0][2] == [(1,), (3,), (4,)]
    assert facts["states"][1] == ["deleted", "persistent", "deleted", "deleted"]
    assert facts["rows"][1] == [(2,)]


# -- flush-8. Row switch -------------------------------------------------------------------


def test_flush8_row_switch_delete_and_add_same_key_is_one_update(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine, (("1", "one"), ("2", "two")))
        session = api.Session(engine)
        old = session.get(Item, "1")
        key = api.inspect(old).identity_key
        session.delete(old)
        new = Item(id="1", name="one again")
        session.add(new)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("old", api.state(old), old in session, api.inspect(old).was_deleted))
        obs.append(("new", api.state(new), new in session, named_key(api, new)))
        obs.append(("map owns new", session.identity_map[key] is new))
        obs.append(("get", session.get(Item, "1") is new))
        session.commit()
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    flush = facts["flush"][1]
    assert event_kinds(flush) == ["UPDATE"]
    assert flush[0][1].startswith("UPDATE items SET name=")
    assert flush[0][2] == ("one again", "1")
    assert facts["old"][1:] == ("deleted", False, True)
    assert facts["new"][1:] == ("persistent", True, ("Item", ("1",), None))
    assert facts["map owns new"][1] is True
    assert facts["get"][1] is True
    assert facts["rows"][1] == [("1", "one again"), ("2", "two")]


def test_flush8_row_switch_writes_every_attribute_set_on_the_new_object(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        session.delete(a)
        session.delete(b)
        new_a = User(id=1, name="a2")  # fullname never set
        new_b = User(id=2, name="b", fullname="B")  # the same values as the loaded row
        session.add_all([new_a, new_b])
        # The row changes behind the session's back: writing only "real" changes, judged
        # against the deleted object's stale values, would lose the new object's name.
        behind_the_back(obs, engine, "UPDATE users SET name = 'elsewhere' WHERE id = 2")
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("states", [api.state(o) for o in (a, b, new_a, new_b)]))
        obs.append(("dicts", api.visible(new_a), api.visible(new_b)))
        session.commit()
        rows = unrecorded_rows(obs, engine, "SELECT id, name, fullname FROM users ORDER BY id")
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    updates = sql_statements(facts["flush"][1], "UPDATE")
    assert event_kinds(facts["flush"][1]) == ["UPDATE", "UPDATE"]
    assert [u[1] for u in updates] == [("a2", 1), ("b", "B", 2)]
    assert facts["states"][1] == ["deleted", "deleted", "persistent", "persistent"]
    assert facts["rows"][1][1:] == [(2, "b", "B"), (3, "c", "C"), (4, "d", "D")]
    assert facts["rows"][1][0][:2] == (1, "a2")
