"""Autobegin and the lazy connection (docs/behaviour.md, "Beginning a transaction"): which
calls begin a transaction, when a connection is checked out and released, begin() and its
context manager, autobegin=False, and the echo log.

Each scenario runs on sessionkit and on the SQLAlchemy ORM through ``compare()``; the
recorded SQL, transaction and pool events, states and error classes must be equal. After
each comparison a few spot checks pin the expected facts from docs/behaviour.md, so a
behaviour shared by both runs but contrary to the documented behaviour cannot hide.

Messages are checked by prefix inside the scenario (``str(err).startswith(<reference's
words>)``) so that the same check runs on both libraries; sessionkit may add guidance
after the reference's words.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from models import setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, func, select, text

from support import SELECT_ALL, by_unique_label, event_kinds, message_starts

AUTOBEGIN_DISABLED = (
    "Autobegin is disabled on this Session; please call session.begin() to start a new transaction"
)


ALREADY_BEGUN = "A transaction is already begun on this Session."


# -- B. Autobegin, lazy connection ---------------------------------------------------------


def b1_fresh_session(api: Api, engine: Engine, obs: Obs) -> None:
    setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    obs.append(("fresh", s.in_transaction()))
    s.flush()
    obs.sql("flush", pool=True)
    obs.append(("after flush", s.in_transaction()))
    s.commit()
    obs.sql("commit", pool=True)
    obs.append(("after commit", s.in_transaction()))
    s.rollback()
    obs.sql("rollback", pool=True)
    obs.append(("after rollback", s.in_transaction(), engine.pool.checkedout()))


def test_begin1_fresh_session_flush_commit_rollback_do_nothing(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b1_fresh_session, engine, ref_engine))
    for label in ("flush", "commit", "rollback"):
        assert facts[label][1] == []
    assert facts["fresh"][1] is False
    assert facts["after commit"][1] is False
    assert facts["after rollback"][1:] == (False, 0)


def b2_lazy_connection(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    obs.append(("before", s.in_transaction(), engine.pool.checkedout()))
    sandy = s.get(User, 1)
    obs.sql("first SQL", pool=True)
    obs.append(("held", s.in_transaction(), engine.pool.checkedout()))
    patrick = s.get(User, 2)
    obs.sql("second SQL", pool=True)
    s.commit()
    obs.sql("commit", pool=True)
    obs.append(("after commit", s.in_transaction(), engine.pool.checkedout()))
    obs.append(("read", sandy.name))
    obs.sql("next transaction", pool=True)
    s.commit()
    obs.sql("second commit", pool=True)
    obs.append(("patrick", patrick.name))
    obs.sql("third transaction", pool=True)
    s.close()
    obs.sql("close", pool=True)


def test_begin2_connection_acquired_lazily_and_released_at_commit(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b2_lazy_connection, engine, ref_engine))
    assert facts["before"][1:] == (False, 0)
    first = facts["first SQL"][1]
    assert event_kinds(first) == ["checkout", "BEGIN", "SELECT"]
    assert first[2][1].startswith(SELECT_ALL)
    assert facts["held"][1:] == (True, 1)
    assert event_kinds(facts["second SQL"][1]) == ["SELECT"]
    assert event_kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
    assert facts["after commit"][1:] == (False, 0)
    assert event_kinds(facts["next transaction"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert event_kinds(facts["second commit"][1]) == ["COMMIT", "checkin"]
    assert event_kinds(facts["third transaction"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert event_kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]


def b3_entry_points(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)

    def flush_with_work(s: Any) -> None:
        s.add(User(name="new"))
        s.flush()

    entries = {
        "execute ORM select": lambda s: s.execute(select(User).order_by(User.id)).all(),
        "execute text": lambda s: s.execute(text("SELECT 1")).all(),
        "scalars": lambda s: s.scalars(select(User.name).order_by(User.id)).all(),
        "get miss": lambda s: s.get(User, 1),
        "connection": lambda s: s.connection(),
        "flush with work": flush_with_work,
    }
    for label, action in entries.items():
        s = api.Session(engine)
        obs.rec.clear()
        action(s)
        obs.sql(label, pool=True)
        obs.append((f"{label}: in transaction", s.in_transaction()))
        s.close()
        obs.sql(f"{label}: close", pool=True)

    s = api.Session(engine, expire_on_commit=False)
    sandy = s.get(User, 1)
    s.commit()
    obs.rec.clear()
    s.refresh(sandy)
    obs.sql("refresh", pool=True)
    obs.append(("refresh: in transaction", s.in_transaction()))
    s.close()

    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    obs.rec.clear()
    obs.append(("expired read", sandy.name))
    obs.sql("expired attribute load", pool=True)
    obs.append(("expired attribute load: in transaction", s.in_transaction()))
    s.close()


def test_begin3_entry_points_that_need_sql_autobegin_and_acquire(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b3_entry_points, engine, ref_engine))
    expected = {
        "execute ORM select": ["SELECT"],
        "execute text": ["SELECT"],
        "scalars": ["SELECT"],
        "get miss": ["SELECT"],
        "connection": [],
        "flush with work": ["INSERT"],
        "refresh": ["SELECT"],
        "expired attribute load": ["SELECT"],
    }
    for label, sql in expected.items():
        assert event_kinds(facts[label][1]) == ["checkout", "BEGIN", *sql], label
        key = label + ": in transaction"
        assert facts[key][1] is True, label
    for label in list(expected)[:6]:
        assert event_kinds(facts[label + ": close"][1]) == ["ROLLBACK", "checkin"]
    assert facts["refresh"][1][2][1].startswith(SELECT_ALL)
    assert facts["expired attribute load"][1][2][1].startswith(SELECT_ALL)


def b4_autobegin_without_sql(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    other = api.Session(engine)
    detached = other.get(User, 3)
    other.close()

    def attach(s: Any, users: list[Any]) -> None:
        s.add(detached)

    ops = {
        "add": lambda s, users: s.add(User(name="new")),
        "add_all": lambda s, users: s.add_all([User(name="a"), User(name="b")]),
        "delete": lambda s, users: s.delete(users[0]),
        "add detached": attach,
        "modify attribute": lambda s, users: setattr(users[1], "fullname", "Patrick Star"),
    }
    for label, op in ops.items():
        s = api.Session(engine, expire_on_commit=False)
        users = s.scalars(select(User).where(User.id <= 2).order_by(User.id)).all()
        s.commit()
        obs.append((f"{label}: before", s.in_transaction()))
        obs.rec.clear()
        op(s, users)
        obs.sql(label, pool=True)
        obs.append((f"{label}: after", s.in_transaction(), engine.pool.checkedout()))
        s.rollback()
        obs.sql(f"{label}: rollback", pool=True)
        obs.append((f"{label}: after rollback", s.in_transaction()))
        s.close()


def test_begin4_attaching_or_modifying_autobegins_without_a_connection(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b4_autobegin_without_sql, engine, ref_engine))
    for label in ("add", "add_all", "delete", "add detached", "modify attribute"):
        assert facts[f"{label}: before"][1] is False
        assert facts[label][1] == []
        assert facts[f"{label}: after"][1:] == (True, 0)
        assert facts[f"{label}: rollback"][1] == []
        assert facts[f"{label}: after rollback"][1] is False


def b4_merge(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    merged = s.merge(User(name="merged"))
    obs.sql("merge of a transient object", pool=True)
    obs.append(("merged", api.state(merged), s.in_transaction()))
    s.close()


def test_begin4_merge_autobegins_without_a_connection(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(b4_merge, engine, ref_engine))
    assert facts["merge of a transient object"][1] == []
    assert facts["merged"][1:] == ("pending", True)


def b5_get_hit(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine, expire_on_commit=False)
    sandy = s.get(User, 1)
    s.commit()
    obs.rec.clear()
    obs.append(("identical", s.get(User, 1) is sandy))
    obs.sql("get hit", pool=True)
    obs.append(("after hit", s.in_transaction()))
    s.get(User, 2)
    obs.sql("get miss", pool=True)
    obs.append(("after miss", s.in_transaction()))
    s.close()


def test_begin5_get_hit_begins_nothing(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(b5_get_hit, engine, ref_engine))
    assert facts["identical"][1] is True
    assert facts["get hit"][1] == []
    assert facts["after hit"][1] is False
    assert event_kinds(facts["get miss"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert facts["after miss"][1] is True


def b6_commit_without_connection(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    other = api.Session(engine)
    sandy = other.get(User, 1)
    other.close()
    obs.rec.clear()

    s = api.Session(engine)
    s.add(sandy)
    obs.append(("attached", s.in_transaction(), api.state(sandy)))
    s.commit()
    obs.sql("commit of add(detached)", pool=True)
    obs.append(("after commit", s.in_transaction(), api.state(sandy), api.loaded(sandy)))

    newbie = User(name="newbie")
    s.add(newbie)
    s.expunge(newbie)
    obs.append(("add + expunge", s.in_transaction()))
    s.commit()
    obs.sql("commit after add + expunge", pool=True)
    obs.append(("newbie", api.state(newbie), s.in_transaction()))
    s.close()


def test_commit5_commit_without_a_connection_emits_nothing(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b6_commit_without_connection, engine, ref_engine))
    assert facts["attached"][1:] == (True, "persistent")
    assert facts["commit of add(detached)"][1] == []
    assert facts["after commit"][1:] == (False, "persistent", [])
    assert facts["add + expunge"][1] is True
    assert facts["commit after add + expunge"][1] == []
    assert facts["newbie"][1:] == ("transient", False)


def b7_autobegin_disabled(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine, autobegin=False)
    ops = {
        "execute": lambda: s.execute(select(User)),
        "scalars": lambda: s.scalars(select(User.name)),
        "add": lambda: s.add(User(name="x")),
        "get": lambda: s.get(User, 1),
        "connection": lambda: s.connection(),
        "commit": lambda: s.commit(),
    }
    for label, op in ops.items():
        err = obs.error(label, op)
        obs.append((f"{label}: message", message_starts(err, AUTOBEGIN_DISABLED)))
    obs.append(("no transaction", s.in_transaction(), len(s.new)))
    obs.sql("nothing ran", pool=True)

    s.begin()
    sandy = s.get(User, 1)
    s.commit()
    obs.sql("explicit begin works", pool=True)
    obs.append(("after commit", s.in_transaction(), api.loaded(sandy)))
    err = obs.error("expired read", lambda: sandy.name)
    obs.append(("expired read: message", message_starts(err, AUTOBEGIN_DISABLED)))
    obs.error("get miss again", lambda: s.get(User, 2))
    obs.sql("still nothing", pool=True)
    with s.begin():
        obs.append(("read inside begin", sandy.name))
    obs.sql("begin block", pool=True)
    s.close()


def test_begin6_autobegin_disabled(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(b7_autobegin_disabled, engine, ref_engine))
    for label in ("execute", "scalars", "add", "get", "connection", "commit", "expired read"):
        assert facts[label][1:] == ("raises", "InvalidRequestError"), label
        assert facts[f"{label}: message"][1] is True, label
    assert facts["get miss again"][2] == "InvalidRequestError"
    assert facts["no transaction"][1:] == (False, 0)
    assert facts["nothing ran"][1] == []
    assert event_kinds(facts["explicit begin works"][1]) == [
        "checkout",
        "BEGIN",
        "SELECT",
        "COMMIT",
        "checkin",
    ]
    assert facts["still nothing"][1] == []
    assert facts["read inside begin"][1] == "sandy"
    assert event_kinds(facts["begin block"][1]) == [
        "checkout",
        "BEGIN",
        "SELECT",
        "COMMIT",
        "checkin",
    ]


def b8_begin_twice(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    s.add(User(name="x"))
    err = obs.error("begin after add", s.begin)
    obs.append(("begin after add: message", message_starts(err, ALREADY_BEGUN)))
    obs.append(("pending kept", len(s.new)))
    s.rollback()

    s.begin()
    err = obs.error("begin after begin", s.begin)
    obs.append(("begin after begin: message", message_starts(err, ALREADY_BEGUN)))
    s.get(User, 1)
    err = obs.error("begin with a connection held", s.begin)
    obs.append(("begin with a connection held: message", message_starts(err, ALREADY_BEGUN)))
    s.commit()
    obs.error("begin after commit", s.begin)
    obs.append(("in transaction", s.in_transaction()))
    s.close()
    obs.sql("sql", pool=True)


def test_begin7_begin_while_a_transaction_exists(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(b8_begin_twice, engine, ref_engine))
    for label in ("begin after add", "begin after begin", "begin with a connection held"):
        assert facts[label][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{label}: message"][1] is True
    assert facts["pending kept"][1] == 1
    assert facts["begin after commit"][1] == "ok"
    assert facts["in transaction"][1] is True
    assert event_kinds(facts["sql"][1]) == ["checkout", "BEGIN", "SELECT", "COMMIT", "checkin"]


def b9_begin_block(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    with s.begin():
        s.add(User(name="committed"))
    obs.sql("success", pool=True)
    obs.append(("after success", s.in_transaction(), engine.pool.checkedout()))

    pending = User(name="never flushed")

    def fail_without_connection() -> None:
        with s.begin():
            s.add(pending)
            raise KeyError("boom")

    obs.error("failure without a connection", fail_without_connection)
    obs.sql("no ROLLBACK without a connection", pool=True)
    obs.append(("pending", api.state(pending), s.in_transaction()))

    flushed = User(name="flushed")

    def fail_with_connection() -> None:
        with s.begin():
            s.add(flushed)
            s.flush()
            raise ValueError("boom")

    obs.error("failure with a connection", fail_with_connection)
    obs.sql("ROLLBACK and checkin", pool=True)
    obs.append(("flushed", api.state(flushed), s.in_transaction(), engine.pool.checkedout()))
    obs.append(("session still usable", s.scalar(select(func.count()).select_from(User))))
    s.close()


def test_begin8_begin_block_commits_or_rolls_back_and_releases(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(b9_begin_block, engine, ref_engine))
    assert event_kinds(facts["success"][1]) == ["checkout", "BEGIN", "INSERT", "COMMIT", "checkin"]
    assert facts["after success"][1:] == (False, 0)
    assert facts["failure without a connection"][1:] == ("raises", "KeyError")
    assert facts["no ROLLBACK without a connection"][1] == []
    assert facts["pending"][1:] == ("transient", False)
    assert facts["failure with a connection"][1:] == ("raises", "ValueError")
    rolled = event_kinds(facts["ROLLBACK and checkin"][1])
    assert rolled == ["checkout", "BEGIN", "INSERT", "ROLLBACK", "checkin"]
    assert facts["flushed"][1:] == ("transient", False, 0)
    assert facts["session still usable"][1] == 4


_TIMING = re.compile(r"\d+\.\d+s")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_TIMING.sub("...s", record.getMessage()))


def b10_echo(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    handler = _Lines()
    engine.echo = True
    logger.addHandler(handler)
    try:
        s = api.Session(engine)
        s.add(User(name="x"))
        s.commit()
        s.close()
    finally:
        logger.removeHandler(handler)
        engine.echo = False
    obs.append(("log", handler.lines))


def test_begin9_echo_log_of_add_and_commit(
    engine: Engine, ref_engine: Engine, backend: Any
) -> None:
    facts = by_unique_label(compare(b10_echo, engine, ref_engine))
    lines = facts["log"][1]
    assert lines[0] == "BEGIN (implicit)"
    assert lines[-1] == "COMMIT"
    assert len(lines) == 4
    if backend.is_sqlite:
        assert lines[1:3] == [
            "INSERT INTO user_account (name, fullname) VALUES (?, ?)",
            "[generated in ...s] ('x', None)",
        ]
