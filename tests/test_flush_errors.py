"""Failed flushes (docs/behaviour.md: flush-13 … flush-16): a failed flush rolls back at
once and leaves the session inactive until rollback(); duplicate keys; UPDATEs and DELETEs
that match no row (stale data). Each scenario runs on sessionkit and on the SQLAlchemy ORM.

Every scenario records the SQL and transaction events the engine sees, object states,
``__dict__`` contents, error class names and warning categories; the two libraries must
record the same thing. The assertions after ``compare()`` check the expected facts so that
a bug shared by both runs cannot hide.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from models import parent_child_model, setup_items, setup_users_table
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import PendingRollbackError

from support import behind_the_back, by_label, event_kinds, norm_addresses, unrecorded_rows

PENDING_ROLLBACK_PREFIX = (
    "This Session's transaction has been rolled back due to a previous exception during "
    "flush. To begin a new transaction with this Session, first issue Session.rollback(). "
    "Original exception was: "
)


PENDING_ROLLBACK_SUFFIX = "(Background on this error at: https://sqlalche.me/e/21/7s2a)"


STALE_UPDATE = "UPDATE statement on table 'users' expected to update 1 row(s); 0 were matched."


STALE_DELETE = "DELETE statement on table 'users' expected to delete 1 row(s); 0 were matched."


def _caught(obs: Obs, label: str, caught: list[warnings.WarningMessage], upto: str) -> None:
    """Record warning categories and each message's normalised text up to ``upto``."""
    obs.append((f"{label}: warnings", [w.category.__name__ for w in caught]))
    texts = [norm_addresses(str(w.message)) for w in caught]
    obs.append((f"{label}: warning text", [t[: t.find(upto) + len(upto)] for t in texts]))


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


# -- flush-13. Failed flush ----------------------------------------------------------------


VIOLATIONS = {"foreign_key": 999, "not_null": None}


@pytest.mark.parametrize("violation", list(VIOLATIONS))
def test_flush13_failed_flush(fk_engine: Engine, fk_ref_engine: Engine, violation: str) -> None:
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
        obs.append(
            ("parents", unrecorded_rows(obs, engine, "SELECT id, name FROM parents ORDER BY id"))
        )
        obs.append(
            (
                "children",
                unrecorded_rows(
                    obs, engine, "SELECT id, parent_id, name FROM children ORDER BY id"
                ),
            )
        )
        session.close()

    obs = compare(scen, fk_engine, fk_ref_engine)
    facts = by_label(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert "Violation" in facts["original error"][1] or facts["original error"][1] == (
        "IntegrityError"
    )
    failing = event_kinds(facts["the failing statement, then ROLLBACK at once; no checkin"][1])
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


def test_flush13_failed_update_loses_the_changes(engine: Engine, ref_engine: Engine) -> None:
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
        obs.append(
            ("rows", unrecorded_rows(obs, engine, "SELECT id, parent_id, name FROM children"))
        )
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert event_kinds(facts["UPDATE, then ROLLBACK"][1]) == ["UPDATE", "ROLLBACK"]
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
def test_flush13_every_operation_raises_pending_rollback_error(
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
    facts = by_label(obs)
    assert facts[label][1:] == ("raises", "PendingRollbackError")
    assert facts["no SQL"][1] == []
    assert facts["starts with the reference's words"][1] is True
    assert facts["quotes the original error"][1] is True
    assert facts["ends with the error link"][1] is True
    assert facts["usable after rollback"][1] == "p1"


def test_flush13_pending_rollback_message_names_the_way_out(engine: Engine) -> None:
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
def test_flush13_changes_made_while_inactive_are_discarded_with_a_warning(
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
    facts = by_label(obs)
    assert facts[label][1:] == ("ok",)
    assert facts["rollback: warnings"][1] == ["SAWarning"]
    assert facts["rollback: warning text"][1] == [
        "Session's state has been changed on a non-active transaction - this state will be "
        "discarded."
    ]
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["p1"][1:] == ("persistent", "p1")


# -- flush-14, flush-15. Duplicate keys ----------------------------------------------------


def test_flush14_duplicate_pending_keys_fail_in_the_database(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine)
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
    facts = by_label(obs)
    assert facts["same object twice"][1] == 1
    assert facts["both pending"][1:] == ("pending", "pending", 2)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert event_kinds(facts["one INSERT for both, then ROLLBACK"][1]) == [
        "BEGIN",
        "INSERT",
        "ROLLBACK",
    ]
    assert facts["both transient"][1:] == ("transient", "transient")


def test_flush15_new_object_with_key_of_persistent_object_warns(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine, (("1", "one"),))
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
    facts = by_label(obs)
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert facts["flush: warnings"][1] == ["SAWarning"]
    (warning,) = facts["flush: warning text"][1]
    assert re.fullmatch(
        r"New instance <Item at 0x\.\.\.> with identity key \(<class '[\w.<>]+\.Item'>, "
        r"\('1',\), None\) conflicts with persistent instance <Item at 0x\.\.\.>",
        warning,
    ), warning
    assert facts["original"][1:] == ("persistent", "transient")


# -- flush-16. Stale rows ------------------------------------------------------------------


def test_flush16_update_matching_no_row_raises_stale_data_error(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        b = session.get(User, 2)
        session.commit()
        behind_the_back(obs, engine, "DELETE FROM users WHERE id = 2")
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
    facts = by_label(obs)
    assert facts["flush"][1:] == ("raises", "StaleDataError")
    assert facts["message"][1:] == (True, STALE_UPDATE)
    assert event_kinds(facts["UPDATE, then ROLLBACK"][1]) == ["BEGIN", "UPDATE", "ROLLBACK"]
    assert facts["session"][1:] == (True, False)
    assert facts["commit"][1:] == ("raises", "PendingRollbackError")


def test_flush16_stale_data_error_is_the_orm_class() -> None:
    assert SK.StaleDataError.__name__ == "StaleDataError"
    assert SK.StaleDataError.__mro__[1].__name__ == "SQLAlchemyError"


def test_flush16_delete_matching_no_row_only_warns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        b = session.get(User, 2)
        session.commit()
        behind_the_back(obs, engine, "DELETE FROM users WHERE id = 2")
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
        obs.append(("rows", unrecorded_rows(obs, engine, "SELECT id FROM users ORDER BY id")))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["flush"][1:] == ("ok",)
    assert facts["flush: warnings"][1] == ["SAWarning"]
    assert facts["flush: warning text"][1] == [STALE_DELETE]
    assert event_kinds(facts["DELETE"][1]) == ["BEGIN", "DELETE"]
    assert facts["b"][1:] == ("deleted", True)
    assert facts["rows"][1] == [(1,), (3,), (4,)]


def test_flush16_stale_rows_in_a_batch(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
        session = api.Session(engine, expire_on_commit=False)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        session.commit()
        behind_the_back(obs, engine, "DELETE FROM users WHERE id IN (2, 4)")
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
        obs.append(("message", norm_addresses(str(err)).split(" were matched.")[0]))
        obs.sql("statements")
        session.rollback()
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
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
    assert event_kinds(statements) == ["BEGIN", "DELETE", "UPDATE", "ROLLBACK"]
    assert statements[1][2] == [(3,), (4,)]
    assert statements[2][2] == [("a2", 1), ("b2", 2)]
