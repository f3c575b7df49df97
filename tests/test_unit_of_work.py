"""The unit of work (SPEC I1-I13), primary-key changes (D6), composite primary keys and
``merge()`` (G5), each run on sessionkit and on the SQLAlchemy ORM.

Every scenario records the SQL and transaction events the engine sees, object states,
``__dict__`` contents, error class names and warning categories; the two libraries must
record the same thing. The assertions after ``compare()`` check the expected facts so that
a bug shared by both runs cannot hide. Foreign-key ordering between tables is a deliberate
sessionkit improvement over the reference (which orders tables only through
relationship()), so it is tested on sessionkit alone.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from models import item_model, parent_child_model, user_model
from models_uow import membership_model, note_model, revision_model, shop_model, tag_model
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import InvalidRequestError, PendingRollbackError

_ADDRESS = re.compile(r"0x[0-9a-f]+")

AUTOFLUSH_PREFIX = (
    "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush "
    "block if this flush is occurring prematurely)\n"
)
PENDING_ROLLBACK_PREFIX = (
    "This Session's transaction has been rolled back due to a previous exception during "
    "flush. To begin a new transaction with this Session, first issue Session.rollback(). "
    "Original exception was: "
)
PENDING_ROLLBACK_SUFFIX = "(Background on this error at: https://sqlalche.me/e/21/7s2a)"
STALE_UPDATE = "UPDATE statement on table 'users' expected to update 1 row(s); 0 were matched."
STALE_DELETE = "DELETE statement on table 'users' expected to delete 1 row(s); 0 were matched."


# -- shared scenario pieces ---------------------------------------------------------------


def _norm(message: str) -> str:
    return _ADDRESS.sub("0x...", message)


def _kinds(events: list[Any]) -> list[str]:
    """``["BEGIN", "SELECT", ...]`` for the events of one ``obs.sql()`` step."""
    return [e[1].split(None, 1)[0].upper() if e[0] == "SQL" else e[0] for e in events]


def _squash(kinds: list[str]) -> list[str]:
    """Consecutive repeats collapsed: per-row statements of one batch count once."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def _statements(events: list[Any], kind: str) -> list[tuple[str, Any]]:
    return [(e[1], e[2]) for e in events if e[0] == "SQL" and _kinds([e]) == [kind]]


def _facts(obs: Obs) -> dict[str, Any]:
    """Observations by label (the last one wins)."""
    return {o[0]: o for o in obs}


def _key(api: Api, obj: object) -> Any:
    """``inspect(obj).identity_key`` with the class replaced by its name."""
    key = api.inspect(obj).identity_key
    return None if key is None else (key[0].__name__, key[1], key[2])


def _rows(obs: Obs, engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows read through a separate Core connection; its events are not recorded."""
    mark = len(obs.rec.events)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    del obs.rec.events[mark:]
    return rows


def _behind_the_back(obs: Obs, engine: Engine, sql: str) -> None:
    """Run and commit ``sql`` on a separate Core connection, unrecorded."""
    mark = len(obs.rec.events)
    with engine.begin() as conn:
        conn.execute(text(sql))
    del obs.rec.events[mark:]


def _caught(obs: Obs, label: str, caught: list[warnings.WarningMessage], upto: str) -> None:
    """Record warning categories and each message's normalised text up to ``upto``."""
    obs.append((f"{label}: warnings", [w.category.__name__ for w in caught]))
    texts = [_norm(str(w.message)) for w in caught]
    obs.append((f"{label}: warning text", [t[: t.find(upto) + len(upto)] for t in texts]))


def enforce_foreign_keys(engine: Engine) -> Engine:
    """SQLite enforces foreign keys only when asked; PostgreSQL and MariaDB (InnoDB)
    always do."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


@pytest.fixture
def fk_engine(engine: Engine) -> Engine:
    return enforce_foreign_keys(engine)


@pytest.fixture
def fk_ref_engine(ref_engine: Engine) -> Engine:
    return enforce_foreign_keys(ref_engine)


def _users(api: Api, engine: Engine, names: tuple[str, ...] = ("a", "b", "c", "d")) -> Any:
    """A ``users`` table (the SPEC's name) with one committed row per name, ids 1..n."""
    Base, User = user_model(api, "users")
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([User(name=n, fullname=n.upper()) for n in names])
        s.commit()
    return User


def _items(api: Api, engine: Engine, rows: tuple[tuple[str, str], ...] = ()) -> Any:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    if rows:
        with api.Session(engine) as s:
            s.add_all([Item(id=i, name=n) for i, n in rows])
            s.commit()
    return Item


def _parents_and_children(api: Api, engine: Engine) -> tuple[Any, Any]:
    """Parents 1 and 2, child 1 of parent 1, committed one table at a time."""
    Base, Parent, Child = parent_child_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([Parent(id=1, name="p1"), Parent(id=2, name="p2")])
        s.commit()
        s.add(Child(id=1, parent_id=1, name="c1"))
        s.commit()
    return Parent, Child


# -- I1. Order ------------------------------------------------------------------------------


def test_I1_single_table_updates_then_inserts_then_deletes(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
        obs.append(("rows", _rows(obs, engine, "SELECT id, name FROM users ORDER BY id")))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    assert _squash(_kinds(flush)) == ["UPDATE", "INSERT", "DELETE"]
    (update,) = _statements(flush, "UPDATE")
    assert update[1] == [("a2", 1), ("d2", 4)]
    (delete,) = _statements(flush, "DELETE")
    assert delete[1] == [(2,), (3,)]
    assert facts["ids in add order"][1:] == (5, 6)
    states = ["persistent", "deleted", "deleted", "persistent", "persistent", "persistent"]
    assert facts["states"][1] == states
    assert facts["rows"][1] == [(1, "a2"), (4, "d2"), (5, "zed"), (6, "amy")]


def _shop(api: Api, engine: Engine) -> tuple[Any, Any, Any]:
    Base, Customer, Order, LineItem = shop_model(api)
    Base.metadata.create_all(engine)
    return Customer, Order, LineItem


def test_I1_foreign_key_order_parents_first_children_deleted_first(fk_engine: Engine) -> None:
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
        rows = _rows(
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

    facts = _facts(obs)
    insert = facts["insert: parents first"][1]
    assert [s[0].split("(")[0].strip() for s in _statements(insert, "INSERT")] == [
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
        s[0].split(" WHERE")[0] for s in _statements(facts["delete: children first"][1], "DELETE")
    ]
    assert deletes == ["DELETE FROM line_items", "DELETE FROM orders", "DELETE FROM customers"]


# -- I2, I3. INSERT batching ----------------------------------------------------------------


def test_I2_client_assigned_keys_one_executemany(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine)
        session = api.Session(engine)
        items = [Item(id=str(i), name=f"n{i}") for i in range(4)]
        session.add_all(items)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("keys", [_key(api, o) for o in items]))
        session.commit()
        obs.append(("rows", _rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    assert _kinds(flush) == ["BEGIN", "INSERT"]
    statement, params = _statements(flush, "INSERT")[0]
    assert statement.startswith("INSERT INTO items (id, name) VALUES")
    if isinstance(params, list):  # a DB-API executemany
        assert params == [("0", "n0"), ("1", "n1"), ("2", "n2"), ("3", "n3")]
    else:  # a driver with "insertmanyvalues": one multi-row VALUES statement
        assert params == ("0", "n0", "1", "n1", "2", "n2", "3", "n3")
    assert facts["keys"][1] == [("Item", (str(i),), None) for i in range(4)]
    assert facts["rows"][1] == [(str(i), f"n{i}") for i in range(4)]


def test_I3_generated_keys_land_on_the_right_objects(engine: Engine, ref_engine: Engine) -> None:
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
        obs.append(("rows", _rows(obs, engine, "SELECT name, id FROM users")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    inserts = _statements(flush, "INSERT")
    assert all(" RETURNING " in s for s, _ in inserts)
    if engine.dialect.name == "sqlite":
        assert len(inserts) == 5  # "(insertmanyvalues) ... batch not supported"
    else:
        assert len(inserts) == 1
    ids = dict(facts["ids"][1])
    assert ids == dict(facts["rows"][1])
    assert sorted(ids.values()) == [1, 2, 3, 4, 5]
    assert [i for _, i in facts["ids"][1]] == [1, 2, 3, 4, 5]


def test_I3_generated_keys_across_several_batches(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        # Names in an order unrelated to the ids; more rows than one insertmanyvalues page.
        users = [User(name=f"u{(i * 7919) % 2500:04d}") for i in range(2500)]
        session.add_all(users)
        obs.rec.clear()
        session.flush()
        obs.append(("statements", len(_statements(obs.rec.without_pool(), "INSERT"))))
        obs.rec.clear()
        obs.append(("ids", [(u.name, u.id) for u in users]))
        session.commit()
        obs.append(("rows", sorted(_rows(obs, engine, "SELECT name, id FROM users"))))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    ids = facts["ids"][1]
    assert sorted(ids) == facts["rows"][1]
    assert [i for _, i in ids] == list(range(1, 2501))
    if engine.dialect.name != "sqlite":
        # PostgreSQL and MariaDB batch (insertmanyvalues ... RETURNING, rows sorted by
        # the autoincrement key); SQLAlchemy trusts no SQLite key order and goes row by row.
        assert 1 < facts["statements"][1] < 2500


def test_I3_one_generated_key_row(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base, User = user_model(api, "users")
        Base.metadata.create_all(engine)
        session = api.Session(engine)
        u = User(name="solo")
        session.add(u)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("after", api.visible(u), _key(api, u)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    (insert,) = _statements(facts["flush"][1], "INSERT")
    if engine.dialect.name == "sqlite":  # the id comes from cursor.lastrowid
        assert insert == ("INSERT INTO users (name, fullname) VALUES (?, ?)", ("solo", None))
    assert facts["after"][1:] == ({"name": "solo", "id": 1}, ("User", (1,), None))


def test_I3_explicit_and_generated_keys_in_one_flush(engine: Engine, ref_engine: Engine) -> None:
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
        obs.append(("rows", _rows(obs, engine, "SELECT name, id FROM users")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert dict(facts["ids"][1]) == dict(facts["rows"][1])
    assert dict(facts["ids"][1])["explicit1"] == 100
    assert len({i for _, i in facts["ids"][1]}) == 5


def test_I3_server_default_is_available_after_flush(engine: Engine, ref_engine: Engine) -> None:
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
        obs.append(("rows", _rows(obs, engine, "SELECT id, title, status FROM notes ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    expected = [(1, "t1", "new"), (2, "t2", "done"), (3, "t3", "new")]
    assert facts["values"][1] == expected
    assert facts["rows"][1] == expected


def test_I3_server_default_with_client_assigned_key(engine: Engine, ref_engine: Engine) -> None:
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
    facts = _facts(obs)
    assert facts["values"][1] == [("a", "A", "grey"), ("b", "B", "grey"), ("c", None, "red")]


# -- I4, I5, I6. UPDATE and DELETE batching -------------------------------------------------


def test_I4_updates_grouped_by_changed_columns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine, ("a", "b", "c", "d", "e"))
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
        obs.append(("rows", _rows(obs, engine, "SELECT id, name, fullname FROM users ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    updates = _statements(facts["flush"][1], "UPDATE")
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


def test_I4_values_set_by_the_update_itself_are_available_after_flush(
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
        rows = _rows(obs, engine, "SELECT title, edited, stamp, rev FROM docs ORDER BY id")
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    expected = [("t1 edited", "edited", "stamped", 1), ("t2 edited", "edited", "stamped", 1)]
    assert facts["values"][1] == expected
    assert facts["rows"][1] == expected


def test_I5_equal_value_is_dirty_but_not_modified_and_emits_no_update(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    facts = _facts(obs)
    assert facts["dirty"][1:] == (True, True)
    assert facts["is_modified"][1:] == (False, False)
    assert facts["pending is_modified"][1] is True
    assert facts["flush: nothing to write"][1] == []
    assert facts["dirty after"][1] == 0
    assert facts["mixed"][1:] == (False, True)
    assert [s[1] for s in _statements(facts["flush: only the real change"][1], "UPDATE")] == [
        ("b2", 2)
    ]


def test_I6_deletes_are_batched(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
        obs.append(("rows", _rows(obs, engine, "SELECT id FROM users ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    assert _kinds(flush) == ["DELETE"]
    assert flush[0][1].startswith("DELETE FROM users WHERE users.id = ")
    assert flush[0][2] == [(1,), (3,), (4,)]
    assert facts["states"][1] == ["deleted", "persistent", "deleted", "deleted"]
    assert facts["rows"][1] == [(2,)]


# -- I7. Row switch -------------------------------------------------------------------------


def test_I7_row_switch_delete_and_add_same_key_is_one_update(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, (("1", "one"), ("2", "two")))
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
        obs.append(("new", api.state(new), new in session, _key(api, new)))
        obs.append(("map owns new", session.identity_map[key] is new))
        obs.append(("get", session.get(Item, "1") is new))
        session.commit()
        obs.append(("rows", _rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    flush = facts["flush"][1]
    assert _kinds(flush) == ["UPDATE"]
    assert flush[0][1].startswith("UPDATE items SET name=")
    assert flush[0][2] == ("one again", "1")
    assert facts["old"][1:] == ("deleted", False, True)
    assert facts["new"][1:] == ("persistent", True, ("Item", ("1",), None))
    assert facts["map owns new"][1] is True
    assert facts["get"][1] is True
    assert facts["rows"][1] == [("1", "one again"), ("2", "two")]


def test_I7_row_switch_writes_every_attribute_set_on_the_new_object(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        session.delete(a)
        session.delete(b)
        new_a = User(id=1, name="a2")  # fullname never set
        new_b = User(id=2, name="b", fullname="B")  # the same values as the loaded row
        session.add_all([new_a, new_b])
        # The row changes behind the session's back: writing only "real" changes, judged
        # against the deleted object's stale values, would lose the new object's name.
        _behind_the_back(obs, engine, "UPDATE users SET name = 'elsewhere' WHERE id = 2")
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("states", [api.state(o) for o in (a, b, new_a, new_b)]))
        obs.append(("dicts", api.visible(new_a), api.visible(new_b)))
        session.commit()
        rows = _rows(obs, engine, "SELECT id, name, fullname FROM users ORDER BY id")
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    updates = _statements(facts["flush"][1], "UPDATE")
    assert _kinds(facts["flush"][1]) == ["UPDATE", "UPDATE"]
    assert [u[1] for u in updates] == [("a2", 1), ("b", "B", 2)]
    assert facts["states"][1] == ["deleted", "deleted", "persistent", "persistent"]
    assert facts["rows"][1][1:] == [(2, "b", "B"), (3, "c", "C"), (4, "d", "D")]
    assert facts["rows"][1][0][:2] == (1, "a2")


# -- I8. Autoflush points --------------------------------------------------------------------


@dataclass
class _Ctx:
    session: Any
    User: Any
    sandy: Any  # loaded
    patrick: Any  # expired


def _nested(c: _Ctx) -> None:
    c.session.begin_nested()


def _with_no_autoflush(c: _Ctx) -> None:
    with c.session.no_autoflush:
        c.session.execute(select(c.User).where(c.User.id == 3)).all()


# (label, Session keyword arguments, operation, whether the pending object gets flushed)
AUTOFLUSH_POINTS: list[tuple[str, dict[str, Any], Callable[[_Ctx], Any], bool]] = [
    (
        "execute select",
        {},
        lambda c: c.session.execute(select(c.User).where(c.User.id == 3)).all(),
        True,
    ),
    ("execute column select", {}, lambda c: c.session.execute(select(c.User.name)).all(), True),
    ("execute text", {}, lambda c: c.session.execute(text("SELECT 1")).all(), True),
    (
        "execute text update",
        {},
        lambda c: c.session.execute(text("UPDATE users SET fullname = 'x' WHERE id = 3")),
        True,
    ),
    (
        "execute Core table update",
        {},
        lambda c: c.session.execute(
            c.User.__table__.update().where(c.User.__table__.c.id == 3).values(fullname="y")
        ),
        True,
    ),
    ("scalars", {}, lambda c: c.session.scalars(select(c.User.name)).all(), True),
    ("query", {}, lambda c: c.session.query(c.User).filter(c.User.id == 3).all(), True),
    ("get miss", {}, lambda c: c.session.get(c.User, 3), True),
    ("refresh", {}, lambda c: c.session.refresh(c.sandy), True),
    ("expired attribute load", {}, lambda c: c.patrick.name, True),
    ("get hit", {}, lambda c: c.session.get(c.User, 1), False),
    # An expired hit must load, and the load autoflushes like any other.
    ("get of an expired object", {}, lambda c: c.session.get(c.User, 2), True),
    ("autoflush=False refresh", {"autoflush": False}, lambda c: c.session.refresh(c.sandy), False),
    ("autoflush=False expired load", {"autoflush": False}, lambda c: c.patrick.name, False),
    ("connection", {}, lambda c: c.session.connection(), False),
    ("no_autoflush block", {}, _with_no_autoflush, False),
    (
        "autoflush=False execute",
        {"autoflush": False},
        lambda c: c.session.execute(select(c.User)).all(),
        False,
    ),
    ("autoflush=False get miss", {"autoflush": False}, lambda c: c.session.get(c.User, 3), False),
    ("autoflush=False commit", {"autoflush": False}, lambda c: c.session.commit(), True),
    ("autoflush=False begin_nested", {"autoflush": False}, _nested, True),
]


@pytest.mark.parametrize(
    ("label", "kw", "op", "flushes"), AUTOFLUSH_POINTS, ids=[p[0] for p in AUTOFLUSH_POINTS]
)
def test_I8_autoflush_points(
    engine: Engine,
    ref_engine: Engine,
    label: str,
    kw: dict[str, Any],
    op: Callable[[_Ctx], Any],
    flushes: bool,
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine, **kw)
        sandy = session.get(User, 1)
        patrick = session.get(User, 2)
        session.expire(patrick)
        new = User(name="new")
        session.add(new)
        obs.rec.clear()
        op(_Ctx(session, User, sandy, patrick))
        obs.sql(label)
        obs.append(("new", api.state(new)))
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    kinds = _kinds(facts[label][1])
    assert ("INSERT" in kinds) is flushes
    assert facts["new"][1] == ("persistent" if flushes else "pending")
    if flushes and "SELECT" in kinds:
        assert kinds.index("INSERT") < kinds.index("SELECT")


# -- I9. Autoflush errors -------------------------------------------------------------------


AUTOFLUSH_TRIGGERS: list[tuple[str, Callable[[Any, Any, Any], Any], bool]] = [
    ("execute select", lambda s, Item, two: s.execute(select(Item)).all(), True),
    ("execute text", lambda s, Item, two: s.execute(text("SELECT 1")).all(), True),
    ("scalars", lambda s, Item, two: s.scalars(select(Item.name)).all(), True),
    ("get miss", lambda s, Item, two: s.get(Item, "9"), True),
    ("refresh", lambda s, Item, two: s.refresh(two), True),
    ("expired attribute load", lambda s, Item, two: two.name, True),
    ("explicit flush", lambda s, Item, two: s.flush(), False),
    ("commit", lambda s, Item, two: s.commit(), False),
]


@pytest.mark.parametrize(
    ("label", "trigger", "prefixed"), AUTOFLUSH_TRIGGERS, ids=[t[0] for t in AUTOFLUSH_TRIGGERS]
)
def test_I9_autoflush_error_is_reraised_with_prefix(
    engine: Engine,
    ref_engine: Engine,
    label: str,
    trigger: Callable[[Any, Any, Any], Any],
    prefixed: bool,
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, (("1", "a"), ("2", "b")))
        session = api.Session(engine)
        session.get(Item, "1")
        two = session.get(Item, "2")
        session.expire(two)
        session.add(Item(id="3", name="a"))  # violates the UNIQUE name
        err = obs.error(label, lambda: trigger(session, Item, two))
        message = str(err)
        obs.append(("prefixed", message.startswith(AUTOFLUSH_PREFIX)))
        body = message[len(AUTOFLUSH_PREFIX) :] if message.startswith(AUTOFLUSH_PREFIX) else message
        obs.append(("original first line", body.splitlines()[0]))
        obs.append(("state", session.in_transaction(), session.is_active))
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts[label][1:] == ("raises", "IntegrityError")
    assert facts["prefixed"][1] is prefixed
    assert facts["original first line"][1].startswith("(")  # "(sqlite3.IntegrityError) ..."
    assert facts["state"][1:] == (True, False)


# -- I10. Failed flush ----------------------------------------------------------------------


VIOLATIONS = {"foreign_key": 999, "not_null": None}


@pytest.mark.parametrize("violation", list(VIOLATIONS))
def test_I10_failed_flush(fk_engine: Engine, fk_ref_engine: Engine, violation: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Parent, Child = _parents_and_children(api, engine)
        obs.rec.clear()
        session = api.Session(engine)
        p1, p2, c1 = session.get(Parent, 1), session.get(Parent, 2), session.get(Child, 1)
        p1.name = "p1 flushed"
        session.delete(p2)
        session.flush()
        early = Child(id=2, parent_id=1, name="early")
        session.add(early)
        session.flush()
        c1.name = "c1 unflushed"
        late = Child(id=3, parent_id=1, name="late")
        bad = Child(id=4, parent_id=VIOLATIONS[violation], name="bad")
        session.add_all([late, bad])
        obs.sql("loads and two successful flushes", pool=True)

        err = obs.error("flush", session.flush)
        obs.append(("original error", type(getattr(err, "orig", None)).__name__))
        obs.append(("message", str(err).splitlines()[0]))
        obs.sql("the failing statement, then ROLLBACK at once; no checkin", pool=True)
        obs.append(("session", session.in_transaction(), session.is_active))
        for name, o in [("early", early), ("late", late), ("bad", bad)]:
            obs.append((name, api.state(o), o in session, api.visible(o)))
        for name, o in [("p1", p1), ("p2", p2), ("c1", c1)]:
            obs.append((name, api.state(o), o in session, api.loaded(o)))
        obs.append(("collections", len(session.new), len(session.dirty), len(session.deleted)))
        obs.sql("inspecting: no SQL", pool=True)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session.rollback()
        obs.append(("rollback warnings", [w.category.__name__ for w in caught]))
        obs.sql("rollback: no SQL, the connection is checked in", pool=True)
        obs.append(("after rollback", session.in_transaction(), session.is_active))
        obs.append(("committed values", p1.name, c1.name))
        session.add(late)
        session.add(Parent(id=3, name="p3"))
        session.commit()
        obs.append(("late re-added", api.state(late), late.id))
        obs.append(("parents", _rows(obs, engine, "SELECT id, name FROM parents ORDER BY id")))
        obs.append(
            ("children", _rows(obs, engine, "SELECT id, parent_id, name FROM children ORDER BY id"))
        )
        session.close()

    obs = compare(scen, fk_engine, fk_ref_engine)
    facts = _facts(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert "Violation" in facts["original error"][1] or facts["original error"][1] == (
        "IntegrityError"
    )
    failing = _kinds(facts["the failing statement, then ROLLBACK at once; no checkin"][1])
    assert failing == ["UPDATE", "INSERT", "ROLLBACK"]  # no checkin: the connection is kept
    assert not facts["message"][1].startswith("(raised as a result of")
    assert facts["session"][1:] == (True, False)
    assert facts["early"][1:] == (
        "transient",
        False,
        {"id": 2, "parent_id": 1, "name": "early"},
    )
    assert facts["late"][1:3] == ("transient", False)
    assert facts["bad"][1:] == (
        "transient",
        False,
        {"id": 4, "parent_id": VIOLATIONS[violation], "name": "bad"},
    )
    for name in ("p1", "p2", "c1"):  # p2's flushed DELETE is undone too
        assert facts[name][1:] == ("persistent", True, [])
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["inspecting: no SQL"][1] == []
    assert facts["rollback: no SQL, the connection is checked in"][1] == [("checkin",)]
    assert facts["after rollback"][1:] == (False, True)
    assert facts["committed values"][1:] == ("p1", "c1")
    assert facts["late re-added"][1:] == ("persistent", 3)
    assert facts["parents"][1] == [(1, "p1"), (2, "p2"), (3, "p3")]
    assert facts["children"][1] == [(1, 1, "c1"), (3, 1, "late")]


def test_I10_failed_update_loses_the_changes(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        _, Child = _parents_and_children(api, engine)
        session = api.Session(engine)
        c1 = session.get(Child, 1)
        obs.rec.clear()
        c1.name = "renamed"
        c1.parent_id = None  # NOT NULL
        err = obs.error("flush", session.flush)
        obs.append(("original error", type(getattr(err, "orig", None)).__name__))
        obs.sql("UPDATE, then ROLLBACK")
        obs.append(("c1", api.state(c1), api.loaded(c1), c1 in session.dirty))
        obs.error("reading c1", lambda: c1.name)
        session.rollback()
        obs.append(("after rollback", c1.name, c1.parent_id))
        obs.append(("rows", _rows(obs, engine, "SELECT id, parent_id, name FROM children")))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert _kinds(facts["UPDATE, then ROLLBACK"][1]) == ["UPDATE", "ROLLBACK"]
    assert facts["c1"][1:] == ("persistent", [], False)
    assert facts["reading c1"][1:] == ("raises", "PendingRollbackError")
    assert facts["after rollback"][1:] == ("c1", 1)
    assert facts["rows"][1] == [(1, 1, "c1")]


def _fail_a_flush(api: Api, engine: Engine) -> tuple[Any, Any, Any, BaseException]:
    """A session whose flush failed on a NOT NULL violation; p1 loaded then expired."""
    Parent, Child = _parents_and_children(api, engine)
    session = api.Session(engine)
    p1 = session.get(Parent, 1)
    session.add(Child(id=5, parent_id=None, name="bad"))
    try:
        session.flush()
    except Exception as err:
        return session, Parent, p1, err
    raise AssertionError("the flush should have failed")


INACTIVE_OPERATIONS: list[tuple[str, Callable[[Any, Any, Any], Any]]] = [
    ("get miss", lambda s, Parent, p1: s.get(Parent, 2)),
    ("get of an expired object", lambda s, Parent, p1: s.get(Parent, 1)),
    ("commit", lambda s, Parent, p1: s.commit()),
    ("execute select", lambda s, Parent, p1: s.execute(select(Parent))),
    ("execute text", lambda s, Parent, p1: s.execute(text("SELECT 1"))),
    ("scalars", lambda s, Parent, p1: s.scalars(select(Parent.name))),
    ("query", lambda s, Parent, p1: s.query(Parent).all()),
    ("expired attribute load", lambda s, Parent, p1: p1.name),
    ("refresh", lambda s, Parent, p1: s.refresh(p1)),
    ("flush with work", lambda s, Parent, p1: (s.add(Parent(id=7)), s.flush())),
    ("begin_nested", lambda s, Parent, p1: s.begin_nested()),
    ("connection", lambda s, Parent, p1: s.connection()),
]


@pytest.mark.parametrize(
    ("label", "op"), INACTIVE_OPERATIONS, ids=[o[0] for o in INACTIVE_OPERATIONS]
)
def test_I10_every_operation_raises_pending_rollback_error(
    engine: Engine, ref_engine: Engine, label: str, op: Callable[[Any, Any, Any], Any]
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        session, Parent, p1, first = _fail_a_flush(api, engine)
        obs.rec.clear()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            err = obs.error(label, lambda: op(session, Parent, p1))
            obs.sql("no SQL")
            message = str(err)
            obs.append(
                ("starts with the reference's words", message.startswith(PENDING_ROLLBACK_PREFIX))
            )
            obs.append(("quotes the original error", str(first) in message))
            obs.append(("ends with the error link", message.endswith(PENDING_ROLLBACK_SUFFIX)))
            session.rollback()
        obs.append(("usable after rollback", p1.name))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts[label][1:] == ("raises", "PendingRollbackError")
    assert facts["no SQL"][1] == []
    assert facts["starts with the reference's words"][1] is True
    assert facts["quotes the original error"][1] is True
    assert facts["ends with the error link"][1] is True
    assert facts["usable after rollback"][1] == "p1"


def test_I10_pending_rollback_message_names_the_way_out(engine: Engine) -> None:
    session, _Parent, _p1, first = _fail_a_flush(SK, engine)
    with pytest.raises(PendingRollbackError) as info:
        session.commit()
    message = str(info.value)
    assert "rolled back due to a previous exception during flush" in message
    assert str(first) in message
    assert "Session.rollback()" in message
    session.rollback()
    session.close()


CHANGES_WHILE_INACTIVE = [
    pytest.param("add", lambda s, Parent, p1: s.add(Parent(id=8, name="p8")), id="add"),
    pytest.param(
        "modify",
        lambda s, Parent, p1: setattr(p1, "name", "while inactive"),
        id="modify",
    ),
    pytest.param("delete", lambda s, Parent, p1: s.delete(p1), id="delete"),
]


@pytest.mark.parametrize(("label", "change"), CHANGES_WHILE_INACTIVE)
def test_I10_changes_made_while_inactive_are_discarded_with_a_warning(
    engine: Engine, ref_engine: Engine, label: str, change: Callable[[Any, Any, Any], Any]
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        session, Parent, p1, _first = _fail_a_flush(api, engine)
        obs.rec.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.error(label, lambda: change(session, Parent, p1))
            session.rollback()
        _caught(obs, "rollback", caught, "discarded.")
        obs.sql("rollback")
        obs.append(("collections", len(session.new), len(session.dirty), len(session.deleted)))
        obs.append(("p1", api.state(p1), p1.name))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts[label][1:] == ("ok",)
    assert facts["rollback: warnings"][1] == ["SAWarning"]
    assert facts["rollback: warning text"][1] == [
        "Session's state has been changed on a non-active transaction - this state will be "
        "discarded."
    ]
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["p1"][1:] == ("persistent", "p1")


# -- I11, I12. Duplicate keys ---------------------------------------------------------------


def test_I11_duplicate_pending_keys_fail_in_the_database(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine)
        session = api.Session(engine)
        first, second = Item(id="5", name="lilei"), Item(id="5", name="lucy")
        session.add(first)
        session.add(first)
        obs.append(("same object twice", len(session.new)))
        session.add(second)
        obs.append(("both pending", api.state(first), api.state(second), len(session.new)))
        obs.rec.clear()
        obs.error("flush", session.flush)
        obs.sql("one INSERT for both, then ROLLBACK")
        obs.append(("both transient", api.state(first), api.state(second)))
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["same object twice"][1] == 1
    assert facts["both pending"][1:] == ("pending", "pending", 2)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert _kinds(facts["one INSERT for both, then ROLLBACK"][1]) == ["BEGIN", "INSERT", "ROLLBACK"]
    assert facts["both transient"][1:] == ("transient", "transient")


def test_I12_new_object_with_key_of_persistent_object_warns(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, (("1", "one"),))
        session = api.Session(engine)
        original = session.get(Item, "1")
        clash = Item(id="1", name="clash")
        session.add(clash)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.error("flush", session.flush)
        _caught(obs, "flush", caught, "conflicts with persistent instance <Item at 0x...>")
        obs.append(("original", api.state(original), api.state(clash)))
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert facts["flush: warnings"][1] == ["SAWarning"]
    (warning,) = facts["flush: warning text"][1]
    assert re.fullmatch(
        r"New instance <Item at 0x\.\.\.> with identity key \(<class '[\w.<>]+\.Item'>, "
        r"\('1',\), None\) conflicts with persistent instance <Item at 0x\.\.\.>",
        warning,
    ), warning
    assert facts["original"][1:] == ("persistent", "transient")


# -- I13. Stale rows ------------------------------------------------------------------------


def test_I13_update_matching_no_row_raises_stale_data_error(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        b = session.get(User, 2)
        session.commit()
        _behind_the_back(obs, engine, "DELETE FROM users WHERE id = 2")
        obs.rec.clear()
        b.name = "b2"
        err = obs.error("flush", session.flush)
        obs.append(("message", str(err).startswith(STALE_UPDATE), str(err)[: len(STALE_UPDATE)]))
        obs.sql("UPDATE, then ROLLBACK")
        obs.append(("session", session.in_transaction(), session.is_active))
        obs.error("flush again", session.flush)
        obs.error("commit", session.commit)
        session.rollback()
        obs.append(("after rollback", session.is_active, api.state(b)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["flush"][1:] == ("raises", "StaleDataError")
    assert facts["message"][1:] == (True, STALE_UPDATE)
    assert _kinds(facts["UPDATE, then ROLLBACK"][1]) == ["BEGIN", "UPDATE", "ROLLBACK"]
    assert facts["session"][1:] == (True, False)
    assert facts["commit"][1:] == ("raises", "PendingRollbackError")


def test_I13_stale_data_error_is_the_orm_class() -> None:
    assert SK.StaleDataError.__name__ == "StaleDataError"
    assert SK.StaleDataError.__mro__[1].__name__ == "SQLAlchemyError"


def test_I13_delete_matching_no_row_only_warns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        b = session.get(User, 2)
        session.commit()
        _behind_the_back(obs, engine, "DELETE FROM users WHERE id = 2")
        obs.rec.clear()
        session.delete(b)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.error("flush", session.flush)
        _caught(obs, "flush", caught, "were matched.")
        obs.sql("DELETE")
        obs.append(("b", api.state(b), session.is_active))
        session.commit()
        obs.sql("commit")
        obs.append(("rows", _rows(obs, engine, "SELECT id FROM users ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["flush"][1:] == ("ok",)
    assert facts["flush: warnings"][1] == ["SAWarning"]
    assert facts["flush: warning text"][1] == [STALE_DELETE]
    assert _kinds(facts["DELETE"][1]) == ["BEGIN", "DELETE"]
    assert facts["b"][1:] == ("deleted", True)
    assert facts["rows"][1] == [(1,), (3,), (4,)]


def test_I13_stale_rows_in_a_batch(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        session.commit()
        _behind_the_back(obs, engine, "DELETE FROM users WHERE id IN (2, 4)")
        obs.rec.clear()
        session.delete(c)
        session.delete(d)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.error("batched delete", session.flush)
        _caught(obs, "batched delete", caught, "were matched.")
        a.name = "a2"
        b.name = "b2"
        err = obs.error("batched update", session.flush)
        obs.append(("message", _norm(str(err)).split(" were matched.")[0]))
        obs.sql("statements")
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["batched delete"][1:] == ("ok",)
    assert facts["batched delete: warnings"][1] == ["SAWarning"]
    assert facts["batched delete: warning text"][1] == [
        "DELETE statement on table 'users' expected to delete 2 row(s); 1 were matched."
    ]
    assert facts["batched update"][1:] == ("raises", "StaleDataError")
    assert facts["message"][1] == (
        "UPDATE statement on table 'users' expected to update 2 row(s); 1"
    )
    statements = facts["statements"][1]
    assert _kinds(statements) == ["BEGIN", "DELETE", "UPDATE", "ROLLBACK"]
    assert statements[1][2] == [(3,), (4,)]
    assert statements[2][2] == [("a2", 1), ("b2", 2)]


# -- D6. Primary-key changes ----------------------------------------------------------------


def test_D6_primary_key_change_moves_the_identity_map_entry(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, (("1", "one"), ("2", "two")))
        session = api.Session(engine)
        one = session.get(Item, "1")
        obs.rec.clear()
        one.id = "9"
        obs.append(("before flush", _key(api, one)))
        session.flush()
        obs.sql("flush")
        obs.append(("after flush", _key(api, one), api.state(one)))
        obs.append(("map", sorted(k[1] for k in session.identity_map)))
        obs.append(("new key hit", session.get(Item, "9") is one))
        obs.sql("hit: no SQL")
        obs.append(("old key", session.get(Item, "1")))
        obs.sql("old key: a SELECT that finds nothing")
        session.rollback()
        obs.sql("rollback")
        obs.append(("after rollback", _key(api, one), api.state(one), api.loaded(one)))
        obs.append(("map after rollback", sorted(k[1] for k in session.identity_map)))
        obs.append(("old key again", session.get(Item, "1") is one, one.id))
        obs.append(("rows", _rows(obs, engine, "SELECT id, name FROM items ORDER BY id")))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["before flush"][1] == ("Item", ("1",), None)
    flush = facts["flush"][1]
    assert _kinds(flush) == ["UPDATE"]
    assert flush[0][1].startswith("UPDATE items SET id=")
    assert flush[0][2] == ("9", "1")
    assert facts["after flush"][1:] == (("Item", ("9",), None), "persistent")
    assert facts["map"][1] == [("9",)]
    assert facts["new key hit"][1] is True
    assert facts["hit: no SQL"][1] == []
    assert facts["old key"][1] is None
    assert _kinds(facts["old key: a SELECT that finds nothing"][1]) == ["SELECT"]
    assert facts["after rollback"][1:] == (("Item", ("1",), None), "persistent", [])
    assert facts["map after rollback"][1] == [("1",)]
    assert facts["old key again"][1:] == (True, "1")
    assert facts["rows"][1] == [("1", "one"), ("2", "two")]


# -- Composite primary keys -----------------------------------------------------------------


def _memberships(api: Api, engine: Engine) -> Any:
    Base, Membership = membership_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all(
            [
                Membership(group_id=1, member="a", role="owner"),
                Membership(group_id=1, member="b", role="member"),
                Membership(group_id=2, member="a", role="member"),
            ]
        )
        s.commit()
    return Membership


def test_composite_pk_get_and_identity(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        m = session.get(Membership, (1, "a"))
        obs.sql("get miss: SELECT by both columns")
        insp = api.inspect(m)
        obs.append(("identity", _key(api, m), insp.identity))
        obs.append(("hit", session.get(Membership, (1, "a")) is m))
        obs.append(("dict form", session.get(Membership, {"group_id": 1, "member": "a"}) is m))
        obs.sql("hits: no SQL")
        obs.append(("in map", (Membership, (1, "a"), None) in session.identity_map))
        other = session.get(Membership, (2, "a"))
        obs.append(("other", other is m, other.role))
        obs.append(("missing", session.get(Membership, (2, "b"))))
        everything = session.scalars(select(Membership)).all()
        obs.append(("query", everything == [m, session.get(Membership, (1, "b")), other]))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    load = facts["get miss: SELECT by both columns"][1]
    assert _kinds(load) == ["BEGIN", "SELECT"]
    assert "memberships.group_id = " in load[1][1] and "memberships.member = " in load[1][1]
    assert load[1][2] == (1, "a")
    assert facts["identity"][1:] == (("Membership", (1, "a"), None), (1, "a"))
    assert facts["hit"][1] is True and facts["dict form"][1] is True
    assert facts["hits: no SQL"][1] == []
    assert facts["in map"][1] is True
    assert facts["other"][1:] == (False, "member")
    assert facts["missing"][1] is None
    assert facts["query"][1] is True


def test_composite_pk_get_with_wrong_number_of_values(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        err = obs.error("one value", lambda: session.get(Membership, 1))
        obs.append(("is InvalidRequestError", isinstance(err, InvalidRequestError)))
        err = obs.error("three values", lambda: session.get(Membership, (1, "a", 2)))
        obs.append(("is InvalidRequestError", isinstance(err, InvalidRequestError)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert obs[0] == ("one value", "raises", "InvalidRequestError")


def test_composite_pk_update_and_key_change(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        a1 = session.get(Membership, (1, "a"))
        b1 = session.get(Membership, (1, "b"))
        a2 = session.get(Membership, (2, "a"))
        obs.rec.clear()
        a1.role = "admin"
        b1.role = "admin"
        session.flush()
        obs.sql("updates: one executemany keyed by both columns")
        a2.member = "z"
        session.flush()
        obs.sql("key change")
        obs.append(("moved", _key(api, a2), session.get(Membership, (2, "z")) is a2))
        obs.sql("hit on the new key")
        obs.append(("old key", session.get(Membership, (2, "a"))))
        session.rollback()
        obs.append(("rolled back", _key(api, a2), a2.member, a1.role))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    (update,) = _statements(facts["updates: one executemany keyed by both columns"][1], "UPDATE")
    assert update[0].startswith("UPDATE memberships SET role=")
    assert "memberships.group_id = " in update[0] and "memberships.member = " in update[0]
    assert update[1] == [("admin", 1, "a"), ("admin", 1, "b")]
    (change,) = _statements(facts["key change"][1], "UPDATE")
    assert change[1] == ("z", 2, "a")
    assert facts["moved"][1:] == (("Membership", (2, "z"), None), True)
    assert facts["hit on the new key"][1] == []
    assert facts["old key"][1] is None
    assert facts["rolled back"][1:] == (("Membership", (2, "a"), None), "a", "owner")


def test_composite_pk_delete(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        a1 = session.get(Membership, (1, "a"))
        a2 = session.get(Membership, (2, "a"))
        session.delete(a2)
        session.delete(a1)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("states", api.state(a1), api.state(a2)))
        obs.append(("map", sorted(k[1] for k in session.identity_map)))
        session.commit()
        rows = _rows(obs, engine, "SELECT group_id, member FROM memberships ORDER BY 1, 2")
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    (delete,) = _statements(facts["flush"][1], "DELETE")
    assert delete[0].startswith("DELETE FROM memberships WHERE memberships.group_id = ")
    assert delete[1] == [(1, "a"), (2, "a")]
    assert facts["states"][1:] == ("deleted", "deleted")
    assert facts["map"][1] == []
    assert facts["rows"][1] == [(1, "b")]


# -- G5. merge() ----------------------------------------------------------------------------


def _detached_copy(api: Api, engine: Engine, User: Any, ident: int) -> Any:
    with api.Session(engine, expire_on_commit=False) as other:
        obj = other.get(User, ident)
    return obj


def test_G5_merge_returns_the_existing_instance(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    facts = _facts(obs)
    assert facts["merge: no SQL"][1] == []
    assert facts["merged is the session's own"][1:] == (True, False)
    assert facts["own"][1:] == ({"id": 1, "name": "from the copy", "fullname": "A"}, True, True)
    assert facts["copy"][1:] == ("detached", False)
    assert [s[1] for s in _statements(facts["flush"][1], "UPDATE")] == [("from the copy", 1)]


def test_G5_merge_loads_the_row_with_a_select(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
        obs.append(("rows", _rows(obs, engine, "SELECT id, fullname FROM users WHERE id = 2")))

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    load = facts["merge: SELECT"][1]
    assert _kinds(load) == ["BEGIN", "SELECT"]
    assert facts["merged"][1:] == (False, "persistent", True)
    assert facts["values"][1] == {"id": 2, "name": "b", "fullname": "changed while detached"}
    assert facts["copy"][1:3] == ("detached", False)
    assert facts["get"][1] is True
    assert facts["rows"][1] == [(2, "changed while detached")]


def test_G5_merge_without_a_row_makes_a_pending_copy(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    facts = _facts(obs)
    assert _kinds(facts["merge: SELECT finds nothing"][1]) == ["BEGIN", "SELECT"]
    assert facts["merged"][1:] == (False, "pending", True)
    assert facts["values"][1] == {"id": 99, "name": "ghost"}
    assert facts["ghost"][1:] == ("transient", False)
    assert _kinds(facts["flush"][1]) == ["INSERT"]
    assert facts["ids"][1:] == (99, 99, "persistent", "transient")
    assert facts["merge of an object without a key: no SQL"][1] == []
    assert facts["keyless"][1:] == (False, "pending", "transient")


MERGE_CASES = [
    pytest.param("key not loaded", id="key not loaded"),
    pytest.param("key in the identity map", id="key in the identity map"),
    pytest.param("no key", id="no key"),
]


@pytest.mark.parametrize("case", MERGE_CASES)
def test_G5_merge_autoflushes_first(engine: Engine, ref_engine: Engine, case: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    assert _kinds(obs[0][1])[:1] == ["INSERT"]
    assert obs[1] == ("pending", "persistent", case == "key in the identity map")


def test_G5_merge_load_false_emits_no_sql(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    facts = _facts(obs)
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


def test_G5_merge_load_false_rejects_transient_objects(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
        session = api.Session(engine)
        ghost = User(id=50, name="no such row")
        obs.rec.clear()
        err = obs.error("merge", lambda: session.merge(ghost, load=False))
        obs.append(("message start", str(err)[:50]))
        obs.append(("ghost", api.state(ghost), len(session.identity_map)))
        obs.sql("no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = _facts(obs)
    assert facts["merge"][1:] == ("raises", "InvalidRequestError")
    assert facts["ghost"][1:] == ("transient", 0)
    assert facts["no SQL"][1] == []


def test_G5_merge_load_false_onto_a_loaded_instance(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine)
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
    facts = _facts(obs)
    assert facts["merge(load=False): no SQL"][1] == []
    assert facts["merged"][1:] == (True, {"id": 1, "name": "newer", "fullname": "A"})
    assert facts["clean"][1:] == (False, False)
    assert facts["flush: nothing"][1] == []
