"""Transactions, commit, rollback, expiry and close (SPEC sections B, C, D, E, F).

Each scenario runs on sessionkit and on the SQLAlchemy ORM through ``compare()``; the
recorded SQL, transaction and pool events, states and error classes must be equal. After
each comparison a few spot checks pin the expected facts from the SPEC, so a behaviour
shared by both runs but contrary to the SPEC cannot hide.

Messages are checked by prefix inside the scenario (``str(err).startswith(<reference's
words>)``) so that the same check runs on both libraries; sessionkit may add guidance
after the reference's words.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from models import item_model, setup_users
from reference import ORM, SK, Api, Obs, compare, run
from sqlalchemy import Engine, func, select, text

from support import SQL, statement_kind

SELECT_ALL = (
    "SELECT user_account.id, user_account.name, user_account.fullname \n"
    "FROM user_account \nWHERE user_account.id = "
)
AUTOBEGIN_DISABLED = (
    "Autobegin is disabled on this Session; please call session.begin() to start a new transaction"
)
ALREADY_BEGUN = "A transaction is already begun on this Session."
PERMANENTLY_CLOSED = (
    "This Session has been permanently closed and is unable to handle any more transaction "
    "requests."
)
PENDING_ROLLBACK = (
    "This Session's transaction has been rolled back due to a previous exception during "
    "flush. To begin a new transaction with this Session, first issue Session.rollback(). "
    "Original exception was: "
)
BHK3_SUFFIX = "(Background on this error at: https://sqlalche.me/e/21/bhk3)"


# -- helpers --------------------------------------------------------------------------------


def facts_of(obs: list[Any]) -> dict[str, Any]:
    """Observations by label (labels are unique within a scenario)."""
    out: dict[str, Any] = {}
    for o in obs:
        assert o[0] not in out, f"duplicate label {o[0]!r}"
        out[o[0]] = o
    return out


def kinds(events: list[Any]) -> list[str]:
    """One word per recorded event: BEGIN, COMMIT, checkout, SELECT, INSERT..."""
    return [statement_kind(e[1]) if e[0] == SQL else e[0] for e in events]


def statements(events: list[Any]) -> list[tuple[str, Any]]:
    return [(e[1], e[2]) for e in events if e[0] == SQL]


def starts(err: BaseException | None, words: str) -> bool:
    return err is not None and str(err).startswith(words)


def not_persistent(obj: object) -> str:
    return f"Instance '<User at {hex(id(obj))}>' is not persistent within this Session"


def not_bound(obj: object) -> str:
    return (
        f"Instance <User at {hex(id(obj))}> is not bound to a Session; attribute refresh "
        "operation cannot proceed"
    )


def user_ids(api: Api, engine: Engine, User: Any) -> list[Any]:
    """The committed rows, read through a separate session (outside any recording)."""
    with api.Session(engine) as s:
        return list(s.execute(select(User.id, User.name).order_by(User.id)).all())


# -- B. Autobegin, lazy connection ----------------------------------------------------------


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


def test_B1_fresh_session_flush_commit_rollback_do_nothing(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(b1_fresh_session, engine, ref_engine))
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


def test_B2_connection_acquired_lazily_and_released_at_commit(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(b2_lazy_connection, engine, ref_engine))
    assert facts["before"][1:] == (False, 0)
    first = facts["first SQL"][1]
    assert kinds(first) == ["checkout", "BEGIN", "SELECT"]
    assert first[2][1].startswith(SELECT_ALL)
    assert facts["held"][1:] == (True, 1)
    assert kinds(facts["second SQL"][1]) == ["SELECT"]
    assert kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
    assert facts["after commit"][1:] == (False, 0)
    assert kinds(facts["next transaction"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert kinds(facts["second commit"][1]) == ["COMMIT", "checkin"]
    assert kinds(facts["third transaction"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]


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


def test_B3_entry_points_that_need_sql_autobegin_and_acquire(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(b3_entry_points, engine, ref_engine))
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
        assert kinds(facts[label][1]) == ["checkout", "BEGIN", *sql], label
        key = label + ": in transaction"
        assert facts[key][1] is True, label
    for label in list(expected)[:6]:
        assert kinds(facts[label + ": close"][1]) == ["ROLLBACK", "checkin"]
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


def test_B4_attaching_or_modifying_autobegins_without_a_connection(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(b4_autobegin_without_sql, engine, ref_engine))
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


def test_B4_merge_autobegins_without_a_connection(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(b4_merge, engine, ref_engine))
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


def test_B5_get_hit_begins_nothing(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(b5_get_hit, engine, ref_engine))
    assert facts["identical"][1] is True
    assert facts["get hit"][1] == []
    assert facts["after hit"][1] is False
    assert kinds(facts["get miss"][1]) == ["checkout", "BEGIN", "SELECT"]
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


def test_B6_commit_without_a_connection_emits_nothing(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(b6_commit_without_connection, engine, ref_engine))
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
        obs.append((f"{label}: message", starts(err, AUTOBEGIN_DISABLED)))
    obs.append(("no transaction", s.in_transaction(), len(s.new)))
    obs.sql("nothing ran", pool=True)

    s.begin()
    sandy = s.get(User, 1)
    s.commit()
    obs.sql("explicit begin works", pool=True)
    obs.append(("after commit", s.in_transaction(), api.loaded(sandy)))
    err = obs.error("expired read", lambda: sandy.name)
    obs.append(("expired read: message", starts(err, AUTOBEGIN_DISABLED)))
    obs.error("get miss again", lambda: s.get(User, 2))
    obs.sql("still nothing", pool=True)
    with s.begin():
        obs.append(("read inside begin", sandy.name))
    obs.sql("begin block", pool=True)
    s.close()


def test_B7_autobegin_disabled(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(b7_autobegin_disabled, engine, ref_engine))
    for label in ("execute", "scalars", "add", "get", "connection", "commit", "expired read"):
        assert facts[label][1:] == ("raises", "InvalidRequestError"), label
        assert facts[f"{label}: message"][1] is True, label
    assert facts["get miss again"][2] == "InvalidRequestError"
    assert facts["no transaction"][1:] == (False, 0)
    assert facts["nothing ran"][1] == []
    assert kinds(facts["explicit begin works"][1]) == [
        "checkout",
        "BEGIN",
        "SELECT",
        "COMMIT",
        "checkin",
    ]
    assert facts["still nothing"][1] == []
    assert facts["read inside begin"][1] == "sandy"
    assert kinds(facts["begin block"][1]) == ["checkout", "BEGIN", "SELECT", "COMMIT", "checkin"]


def b8_begin_twice(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    s.add(User(name="x"))
    err = obs.error("begin after add", s.begin)
    obs.append(("begin after add: message", starts(err, ALREADY_BEGUN)))
    obs.append(("pending kept", len(s.new)))
    s.rollback()

    s.begin()
    err = obs.error("begin after begin", s.begin)
    obs.append(("begin after begin: message", starts(err, ALREADY_BEGUN)))
    s.get(User, 1)
    err = obs.error("begin with a connection held", s.begin)
    obs.append(("begin with a connection held: message", starts(err, ALREADY_BEGUN)))
    s.commit()
    obs.error("begin after commit", s.begin)
    obs.append(("in transaction", s.in_transaction()))
    s.close()
    obs.sql("sql", pool=True)


def test_B8_begin_while_a_transaction_exists(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(b8_begin_twice, engine, ref_engine))
    for label in ("begin after add", "begin after begin", "begin with a connection held"):
        assert facts[label][1:] == ("raises", "InvalidRequestError")
        assert facts[f"{label}: message"][1] is True
    assert facts["pending kept"][1] == 1
    assert facts["begin after commit"][1] == "ok"
    assert facts["in transaction"][1] is True
    assert kinds(facts["sql"][1]) == ["checkout", "BEGIN", "SELECT", "COMMIT", "checkin"]


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


def test_B9_begin_block_commits_or_rolls_back_and_releases(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(b9_begin_block, engine, ref_engine))
    assert kinds(facts["success"][1]) == ["checkout", "BEGIN", "INSERT", "COMMIT", "checkin"]
    assert facts["after success"][1:] == (False, 0)
    assert facts["failure without a connection"][1:] == ("raises", "KeyError")
    assert facts["no ROLLBACK without a connection"][1] == []
    assert facts["pending"][1:] == ("transient", False)
    assert facts["failure with a connection"][1:] == ("raises", "ValueError")
    rolled = kinds(facts["ROLLBACK and checkin"][1])
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


def test_B10_echo_log_of_add_and_commit(engine: Engine, ref_engine: Engine, backend: Any) -> None:
    facts = facts_of(compare(b10_echo, engine, ref_engine))
    lines = facts["log"][1]
    assert lines[0] == "BEGIN (implicit)"
    assert lines[-1] == "COMMIT"
    assert len(lines) == 4
    if backend.is_sqlite:
        assert lines[1:3] == [
            "INSERT INTO user_account (name, fullname) VALUES (?, ?)",
            "[generated in ...s] ('x', None)",
        ]


# -- C. commit() ------------------------------------------------------------------------------


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

    # C2: the next access reloads all columns at once; later reads emit nothing.
    obs.append(("sandy fullname", sandy.fullname))
    obs.sql("first read", pool=True)
    obs.append(("sandy rest", sandy.id, sandy.name, api.visible(sandy)))
    obs.append(("sandy expired", api.inspect(sandy).expired))
    obs.sql("later reads", pool=True)
    obs.append(("newbie name", newbie.name, newbie.id))
    obs.sql("newbie read")
    s.close()


def test_C1_C2_commit_expires_every_object_and_reload_is_one_select(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(c1_c2_commit_expires_everything, engine, ref_engine))
    assert kinds(facts["commit"][1]) == ["UPDATE", "INSERT", "COMMIT", "checkin"]
    for label in ("sandy", "patrick", "squidward", "newbie"):
        assert facts[label][1:] == ([], "persistent", True, True), label
    assert facts["after commit"][1:] == (False, 0)
    first = facts["first read"][1]
    assert kinds(first) == ["checkout", "BEGIN", "SELECT"]
    assert statements(first) == [(statements(first)[0][0], (1,))]
    assert first[2][1].startswith(SELECT_ALL)
    assert facts["sandy fullname"][1] == "Sandy Cheeks"
    assert facts["sandy rest"][3] == {"id": 1, "name": "sandy", "fullname": "Sandy Cheeks"}
    assert facts["sandy expired"][1] is False
    assert facts["later reads"][1] == []
    assert facts["newbie name"][1:] == ("newbie", 4)
    assert kinds(facts["newbie read"][1]) == ["SELECT"]


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


def test_C3_expire_on_commit_false_keeps_values(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(c3_no_expire_on_commit, engine, ref_engine))
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


def test_C4_flushed_deletes_become_detached_at_commit(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(c4_deleted_detached_at_commit, engine, ref_engine))
    assert facts["flushed"][1] == "deleted"
    assert kinds(facts["commit"][1]) == ["DELETE", "COMMIT"]
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


def test_C5_expire_on_commit_false_deleted_object_shared_facts(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(c5_shared, engine, ref_engine))
    assert kinds(facts["commit"][1]) == ["BEGIN", "SELECT", "DELETE", "COMMIT"]
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


def test_C5_sessionkit_detaches_committed_deleted_object(
    engine: Engine, ref_engine: Engine
) -> None:
    """Deliberate difference: sessionkit detaches; the reference leaves it 'deleted'."""
    ours = facts_of(run(SK, engine, c5_states))
    assert ours["state"][1:] == ("detached", False)
    theirs = facts_of(run(ORM, ref_engine, c5_states))
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


def test_C6_commit_with_connection_but_nothing_to_flush(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(c6_commit_nothing_to_flush, engine, ref_engine))
    assert kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
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
    obs.append(("commit: message", starts(err, PENDING_ROLLBACK)))
    obs.append(("commit: code", str(err).endswith("https://sqlalche.me/e/21/7s2a)")))
    obs.sql("commit emitted nothing", pool=True)
    s.rollback()
    obs.sql("rollback", pool=True)
    obs.append(("after rollback", s.in_transaction(), s.is_active, engine.pool.checkedout()))
    s.add(Item(id="3", name="fine"))
    s.commit()
    obs.sql("usable again", pool=True)
    s.close()


def test_C7_commit_after_failed_flush_raises_pending_rollback(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(c7_commit_after_failed_flush, engine, ref_engine))
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert kinds(facts["failed flush"][1]) == ["checkout", "BEGIN", "INSERT", "ROLLBACK"]
    assert facts["clash"][1:] == ("transient", True, False)
    assert facts["commit"][1:] == ("raises", "PendingRollbackError")
    assert facts["commit: message"][1] is True
    assert facts["commit: code"][1] is True
    assert facts["commit emitted nothing"][1] == []
    assert kinds(facts["rollback"][1]) == ["checkin"]
    assert facts["after rollback"][1:] == (False, True, 0)
    assert kinds(facts["usable again"][1]) == ["checkout", "BEGIN", "INSERT", "COMMIT", "checkin"]


# -- D. rollback() ----------------------------------------------------------------------------


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


def test_D1_rollback_without_transaction_is_a_no_op(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(d1_rollback_without_transaction, engine, ref_engine))
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


def test_D2_rollback_without_connection_still_expires_everything(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(d2_rollback_without_connection, engine, ref_engine))
    assert facts["began"][1:] == (True, 0)
    assert facts["rollback"][1] == []
    users = [o for label, o in facts.items() if label.startswith("user ")]
    assert len(users) == 3
    for o in users:
        assert o[1:] == ([], "persistent", True)
    assert facts["pending"][1:] == ("transient", {"name": "pending"}, False)
    assert facts["collections"][1:] == (0, 0, 0)
    assert facts["reloaded value"][1] == "sandy"
    assert kinds(facts["reload"][1]) == ["checkout", "BEGIN", "SELECT"]


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


def test_D3_rollback_releases_connection_and_expires_earlier_commits(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(d3_rollback_releases_and_expires_earlier_commits, engine, ref_engine))
    assert kinds(facts["rollback"][1]) == ["ROLLBACK", "checkin"]
    assert facts["after"][1:] == (False, 0)
    assert facts["untouched loaded"][1] == ["fullname", "id", "name"]
    for label in ("early", "sandy", "untouched"):
        assert facts[label][1:] == ([], "persistent", True), label
    assert facts["values"][1:] == ("early", "sandy", "patrick")
    assert kinds(facts["reloads"][1]) == ["checkout", "BEGIN", "SELECT", "SELECT", "SELECT"]


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


def test_D4_rollback_forgets_unflushed_delete_marks(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(d4_unflushed_delete_forgotten, engine, ref_engine))
    assert facts["marked"][1:] == (True, "persistent")
    assert kinds(facts["rollback"][1]) == ["ROLLBACK"]
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


def test_D5_readding_a_rolled_back_insert_sends_the_stale_id(
    engine: Engine, ref_engine: Engine, backend: Any
) -> None:
    facts = facts_of(compare(d5_readd_rolled_back_insert, engine, ref_engine))
    assert facts["id"][1] == 4
    assert facts["after rollback"][1:] == ("transient", {"name": "n", "id": 4}, False)
    assert facts["re-added"][1:] == ("pending", True)
    commit = facts["commit"][1]
    assert kinds(commit) == ["BEGIN", "INSERT", "COMMIT"]
    ((insert, params),) = statements(commit)
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


def test_D6_rollback_undoes_a_flushed_primary_key_change(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(d6_pk_change_undone, engine, ref_engine))
    assert kinds(facts["flush"][1]) == ["UPDATE"]
    assert facts["flushed"][1:] == (("9",), [("9",)])
    assert facts["rolled back"][1:] == (("1",), [("1",)], [])
    assert facts["state"][1:] == ("persistent", True)
    assert facts["get old key"][1] is True
    assert kinds(facts["get of the expired object"][1]) == ["BEGIN", "SELECT"]
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


def test_D7_session_is_reusable_after_rollback(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(d7_reusable, engine, ref_engine))
    assert kinds(facts["next transaction"][1]) == [
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


# -- E. Expired attributes ------------------------------------------------------------------


def e1_expired_load(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick = s.get(User, 2)
    s.commit()
    obs.append(("expired", api.inspect(patrick).expired, api.loaded(patrick)))
    obs.rec.clear()
    obs.append(("fullname", patrick.fullname))
    obs.sql("load", pool=True)
    obs.append(("loaded", api.inspect(patrick).expired, api.visible(patrick)))

    # The row is found by the identity key, not by the (changed) value in __dict__.
    with s.no_autoflush:
        patrick.id = 99
        s.expire(patrick, ["name"])
        obs.rec.clear()
        obs.append(("name", patrick.name, patrick.id))
        obs.sql("load by identity key")
    s.rollback()
    s.close()


def test_E1_expired_read_loads_all_columns_by_identity_key(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e1_expired_load, engine, ref_engine))
    assert facts["expired"][1:] == (True, [])
    load = facts["load"][1]
    assert kinds(load) == ["checkout", "BEGIN", "SELECT"]
    assert load[2][1].startswith(SELECT_ALL)
    assert load[2][2] == (2,)
    assert facts["fullname"][1] == "Patrick"
    assert facts["loaded"][1:] == (False, {"id": 2, "name": "patrick", "fullname": "Patrick"})
    ((stmt, params),) = statements(facts["load by identity key"][1])
    assert stmt.startswith("SELECT user_account.name \nFROM user_account \nWHERE")
    assert params == (2,)
    assert facts["name"][1:] == ("patrick", 99)


def e2_partial_expire(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    obs.rec.clear()
    s.expire(sandy, ["name"])
    obs.sql("expire")
    insp = api.inspect(sandy)
    obs.append(("after expire", api.loaded(sandy), sorted(insp.expired_attributes), insp.expired))
    obs.append(("name", sandy.name))
    obs.sql("load name")
    s.expire(sandy, ["fullname", "name"])
    obs.append(("fullname", sandy.fullname))
    obs.sql("mapping order")
    s.expire(sandy, ["name", "fullname"])
    with s.no_autoflush:
        sandy.name = "Sandy2"
        obs.append(("modified then read", sandy.fullname, sandy.name))
        obs.sql("only unmodified expired columns")
    s.rollback()
    s.close()


def test_E2_partial_expire_loads_only_expired_unmodified_columns(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e2_partial_expire, engine, ref_engine))
    assert facts["expire"][1] == []
    assert facts["after expire"][1:] == (["fullname", "id"], ["name"], False)
    base = " \nFROM user_account \nWHERE user_account.id = "
    ((stmt, params),) = statements(facts["load name"][1])
    assert stmt.startswith("SELECT user_account.name" + base) and params == (1,)
    ((stmt, _),) = statements(facts["mapping order"][1])
    assert stmt.startswith("SELECT user_account.name, user_account.fullname" + base)
    ((stmt, _),) = statements(facts["only unmodified expired columns"][1])
    assert stmt.startswith("SELECT user_account.fullname" + base)
    assert facts["modified then read"][1:] == ("Sandy", "Sandy2")


def e3_row_gone(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick = s.get(User, 2)
    s.commit()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM user_account WHERE id = 2"))
    obs.rec.clear()
    err = obs.error("read", lambda: patrick.name)
    expected = (
        f"Instance '<User at {hex(id(patrick))}>' has been deleted, or its row is otherwise "
        "not present."
    )
    obs.append(("read: message", starts(err, expected)))
    obs.sql("sql")
    obs.append(("left", api.state(patrick), patrick in s, api.loaded(patrick)))
    s.close()


def test_E3_expired_load_of_a_vanished_row(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e3_row_gone, engine, ref_engine))
    assert facts["read"][1:] == ("raises", "ObjectDeletedError")
    assert facts["read: message"][1] is True
    assert kinds(facts["sql"][1]) == ["BEGIN", "SELECT"]
    assert facts["left"][1:] == ("persistent", True, [])


def e4_refresh(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy, patrick = s.get(User, 1), s.get(User, 2)
    sandy.name = "unsaved"
    patrick.name = "Patrick2"
    obs.rec.clear()
    s.refresh(sandy)
    obs.sql("refresh")
    obs.append(("sandy", api.visible(sandy), sandy in s.dirty, patrick in s.dirty))
    s.refresh(sandy)
    obs.sql("refresh again")
    s.execute(text("UPDATE user_account SET fullname = 'Changed' WHERE id = 1"))
    obs.rec.clear()
    s.refresh(sandy, ["name"])
    obs.sql("refresh name")
    obs.append(("stale fullname", sandy.fullname))
    s.refresh(sandy, ["fullname"])
    obs.sql("refresh fullname")
    obs.append(("new fullname", sandy.fullname))
    s.rollback()
    s.close()


def test_E4_refresh_drops_own_changes_autoflushes_and_always_selects(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e4_refresh, engine, ref_engine))
    refresh = facts["refresh"][1]
    assert kinds(refresh) == ["UPDATE", "SELECT"]
    assert statements(refresh)[0][1] == ("Patrick2", 2)
    assert refresh[1][1].startswith(SELECT_ALL)
    assert facts["sandy"][1:] == ({"id": 1, "name": "sandy", "fullname": "Sandy"}, False, False)
    assert kinds(facts["refresh again"][1]) == ["SELECT"]
    ((stmt, _),) = statements(facts["refresh name"][1])
    assert stmt.startswith("SELECT user_account.name \nFROM")
    assert facts["stale fullname"][1] == "Sandy"
    assert facts["new fullname"][1] == "Changed"


def e5_refresh_expire_errors(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    t = User(name="t")
    for label, fn in {"refresh": s.refresh, "expire": s.expire}.items():
        err = obs.error(f"{label} transient", lambda fn=fn: fn(t))
        obs.append((f"{label} transient: message", starts(err, not_persistent(t))))
    s.add(t)
    for label, fn in {"refresh": s.refresh, "expire": s.expire}.items():
        err = obs.error(f"{label} pending", lambda fn=fn: fn(t))
        obs.append((f"{label} pending: message", starts(err, not_persistent(t))))
    obs.append(("still pending", api.state(t)))
    s.rollback()
    obs.sql("nothing ran")

    s2 = api.Session(engine)
    patrick = s2.get(User, 2)
    s2.execute(text("DELETE FROM user_account WHERE id = 2"))
    obs.rec.clear()
    err = obs.error("refresh row gone", lambda: s2.refresh(patrick))
    gone = f"Could not refresh instance '<User at {hex(id(patrick))}>'"
    obs.append(("refresh row gone: message", starts(err, gone)))
    obs.sql("refresh row gone: sql")
    obs.append(("patrick", api.state(patrick), patrick in s2))
    s2.close()
    err = obs.error("refresh detached", lambda: s2.refresh(patrick))
    obs.append(("refresh detached: message", starts(err, not_persistent(patrick))))


def test_E5_refresh_and_expire_of_non_persistent_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e5_refresh_expire_errors, engine, ref_engine))
    for label in (
        "refresh transient",
        "expire transient",
        "refresh pending",
        "expire pending",
        "refresh row gone",
        "refresh detached",
    ):
        assert facts[label][1:] == ("raises", "InvalidRequestError"), label
        assert facts[f"{label}: message"][1] is True, label
    assert facts["still pending"][1] == "pending"
    assert facts["nothing ran"][1] == []
    assert kinds(facts["refresh row gone: sql"][1]) == ["SELECT"]
    assert facts["patrick"][1:] == ("persistent", True)


def e6_expire_all(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    users = s.scalars(select(User).order_by(User.id)).all()
    users[0].name = "discarded"
    obs.rec.clear()
    s.expire_all()
    obs.sql("expire_all")
    for u in users:
        insp = api.inspect(u)
        obs.append((f"user {insp.identity}", api.loaded(u), insp.expired, api.state(u)))
    obs.append(("dirty", len(s.dirty)))
    obs.append(("name", users[0].name))
    s.commit()
    obs.sql("reload and commit")
    s.close()


def test_E6_expire_all_expires_every_object_without_sql(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e6_expire_all, engine, ref_engine))
    assert facts["expire_all"][1] == []
    users = [o for label, o in facts.items() if label.startswith("user ")]
    assert len(users) == 3
    for o in users:
        assert o[1:] == ([], True, "persistent")
    assert facts["dirty"][1] == 0
    assert facts["name"][1] == "sandy"
    assert kinds(facts["reload and commit"][1]) == ["SELECT", "COMMIT"]


def e7_expire_discards_changes(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy, patrick = s.get(User, 1), s.get(User, 2)
    sandy.name = "discarded"
    obs.append(("dirty before", sandy in s.dirty))
    s.expire(sandy)
    obs.append(("after expire", sandy in s.dirty, s.is_modified(sandy), api.loaded(sandy)))
    patrick.name = "discarded too"
    patrick.fullname = "Patrick Star"
    s.expire(patrick, ["name"])
    obs.append(("partial", patrick in s.dirty, s.is_modified(patrick), api.loaded(patrick)))
    obs.rec.clear()
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_E7_expire_discards_pending_changes(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e7_expire_discards_changes, engine, ref_engine))
    assert facts["dirty before"][1] is True
    assert facts["after expire"][1:] == (False, False, [])
    assert facts["partial"][1:] == (True, True, ["fullname", "id"])
    commit = facts["commit"][1]
    assert kinds(commit) == ["UPDATE", "COMMIT"]
    assert statements(commit)[0][1] == ("Patrick Star", 2)
    assert [tuple(r) for r in facts["rows"][1]][:2] == [(1, "sandy"), (2, "patrick")]


def e7_partial_only_change(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    sandy.name = "discarded"
    s.expire(sandy, ["name"])
    insp = api.inspect(sandy)
    obs.append(("after", sandy in s.dirty, s.is_modified(sandy), insp.modified))
    obs.rec.clear()
    s.commit()
    obs.sql("commit")
    s.close()


def test_E7_partial_expire_of_the_only_changed_attribute(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e7_partial_only_change, engine, ref_engine))
    assert facts["after"][1:] == (True, False, True)
    assert kinds(facts["commit"][1]) == ["COMMIT"]


def e8_assign_to_expired(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    obs.rec.clear()
    sandy.name = "new"
    obs.sql("assign", pool=True)
    obs.append(("dict", api.visible(sandy), sandy in s.dirty))
    obs.append(("fullname", sandy.fullname))
    obs.sql("read other")
    obs.append(("after", api.visible(sandy), sandy in s.dirty))
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_E8_assign_to_expired_then_read_other(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e8_assign_to_expired, engine, ref_engine))
    assert facts["assign"][1] == []
    assert facts["dict"][1:] == ({"name": "new"}, True)
    read = facts["read other"][1]
    assert kinds(read) == ["BEGIN", "SELECT", "UPDATE", "SELECT"]
    (sel1, p1), (upd, p2), (sel2, p3) = statements(read)
    assert sel1.startswith("SELECT user_account.id, user_account.fullname \nFROM")
    assert sel2 == sel1 and p1 == p3 == (1,)
    assert upd.startswith("UPDATE user_account SET name=") and p2 == ("new", 1)
    assert facts["fullname"][1] == "Sandy"
    assert facts["after"][1:] == ({"id": 1, "name": "new", "fullname": "Sandy"}, False)
    assert kinds(facts["commit"][1]) == ["COMMIT"]
    assert tuple(facts["rows"][1][0]) == (1, "new")


def e9_load_autoflushes(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    newbie = User(name="newbie")
    s.add(newbie)
    obs.rec.clear()
    obs.append(("name", sandy.name))
    obs.sql("load")
    obs.append(("newbie", api.state(newbie), newbie.id))
    s.rollback()
    s.close()


def test_E9_expired_load_autoflushes_pending_objects(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e9_load_autoflushes, engine, ref_engine))
    assert kinds(facts["load"][1]) == ["BEGIN", "INSERT", "SELECT"]
    assert facts["newbie"][1:] == ("persistent", 4)


def e10_query_fills_expired(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    users = [s.get(User, i) for i in (1, 2, 3)]
    s.commit()
    obs.rec.clear()
    rows = s.scalars(select(User).order_by(User.id)).all()
    obs.sql("query")
    obs.append(("identical", all(a is b for a, b in zip(rows, users, strict=True))))
    obs.append(("filled", [api.visible(u) for u in users]))
    obs.append(("values", [u.fullname for u in users]))
    obs.sql("reads")
    s.expire(users[0], ["fullname"])
    s.execute(select(User).where(User.id == 1)).all()
    obs.sql("partial")
    obs.append(("partial filled", users[0].fullname))
    obs.sql("no extra SELECT")
    s.close()


def test_E10_query_rows_fill_expired_objects(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(e10_query_fills_expired, engine, ref_engine))
    assert kinds(facts["query"][1]) == ["BEGIN", "SELECT"]
    assert facts["identical"][1] is True
    assert facts["filled"][1][0] == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["values"][1] == ["Sandy", "Patrick", "Squidward"]
    assert facts["reads"][1] == []
    assert facts["no extra SELECT"][1] == []
    assert kinds(facts["partial"][1]) == ["SELECT"]
    assert facts["partial filled"][1] == "Sandy"


def e11_expired_detached(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)

    # commit, then expunge
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    s.expunge(sandy)
    # expire_all, then expunge_all
    patrick = s.get(User, 2)
    s.expire_all()
    s.expunge_all()
    # rollback, then close
    squidward = s.get(User, 3)
    s.rollback()
    s.close()
    # partial expire, then expunge: loaded attributes stay readable
    s2 = api.Session(engine)
    partial = s2.get(User, 1)
    s2.expire(partial, ["fullname"])
    s2.expunge(partial)
    obs.rec.clear()
    objs = {"sandy": sandy, "patrick": patrick, "squidward": squidward}
    for label, o in objs.items():
        obs.append((label, api.state(o), api.loaded(o)))
        err = obs.error(f"{label} read", lambda o=o: o.name)
        obs.append((f"{label} read: message", starts(err, not_bound(o))))
        obs.append((f"{label} read: code", str(err).endswith(BHK3_SUFFIX)))
    obs.append(("partial", api.state(partial), partial.id, partial.name))
    err = obs.error("partial read", lambda: partial.fullname)
    obs.append(("partial read: message", starts(err, not_bound(partial))))
    obs.sql("nothing ran", pool=True)
    s2.close()


def test_E11_expired_and_detached_raises_detached_instance_error(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(e11_expired_detached, engine, ref_engine))
    for label in ("sandy", "patrick", "squidward"):
        assert facts[label][1:] == ("detached", []), label
        assert facts[f"{label} read"][1:] == ("raises", "DetachedInstanceError")
        assert facts[f"{label} read: message"][1] is True
        assert facts[f"{label} read: code"][1] is True
    assert facts["partial"][1:] == ("detached", 1, "sandy")
    assert facts["partial read"][2] == "DetachedInstanceError"
    assert facts["partial read: message"][1] is True
    assert facts["nothing ran"][1] == []


def test_E11_sessionkit_detached_message_names_the_attribute_and_cause(engine: Engine) -> None:
    """Deliberate difference: the message continues after the reference's words."""
    User = setup_users(SK, engine)
    s = SK.Session(engine)
    sandy = s.get(User, 1)
    s.expire_all()
    s.expunge_all()
    with pytest.raises(SK.DetachedInstanceError) as info:
        _ = sandy.fullname
    message = str(info.value)
    assert message.startswith(not_bound(sandy))
    assert message != not_bound(sandy) + " " + BHK3_SUFFIX
    assert "'fullname'" in message
    assert "expire" in message
    assert message.endswith(BHK3_SUFFIX)


# -- F. close(), context managers, reset(), expunge_all() ------------------------------------


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


def test_F1_close_detaches_objects_inserted_in_the_rolled_back_transaction(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(f1_close_after_flushed_insert, engine, ref_engine))
    assert kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
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
    obs.append(("message", starts(err, not_bound(users[1]))))


def test_F2_detached_objects_keep_loaded_values(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(f2_detached_keeps_values, engine, ref_engine))
    assert facts["values"][1] == [
        (1, "sandy", "Sandy"),
        (2, "unflushed", "Patrick"),
        (3, "squidward", "Squidward"),
    ]
    assert facts["states"][1] == ["detached"] * 3
    assert facts["reads"][1] == []
    assert facts["re-added dirty"][1] is True
    assert kinds(facts["the detached change is flushed"][1]) == ["BEGIN", "UPDATE", "COMMIT"]
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


def test_F3_session_reusable_after_close_with_fresh_identity_map(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(f3_reusable_after_close, engine, ref_engine))
    assert facts["identity map"][1:] == (0, False)
    assert kinds(facts["new autobegin"][1]) == ["checkout", "BEGIN", "SELECT"]
    assert facts["fresh object"][1:] == (False, "persistent", "detached")
    assert kinds(facts["close"][1]) == ["ROLLBACK", "checkin"]
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


def test_F4_context_managers_close_and_detach(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(f4_context_managers, engine, ref_engine))
    assert kinds(facts["with Session() as s, s.begin()"][1]) == [
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
    assert kinds(facts["commit inside with Session()"][1]) == [
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
        obs.append((f"{label}: message", None if err is None else starts(err, PERMANENTLY_CLOSED)))
    s.reset()
    err = obs.error("get after reset", lambda: s.get(User, 1))
    obs.append(("get after reset: message", starts(err, PERMANENTLY_CLOSED)))
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


def test_F5_close_resets_only_false_closes_for_good(engine: Engine, ref_engine: Engine) -> None:
    facts = facts_of(compare(f5_close_resets_only_false, engine, ref_engine))
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
    assert kinds(facts["reset"][1]) == ["checkout", "BEGIN", "SELECT", "ROLLBACK", "checkin"]
    assert facts["reset detaches"][1] == "detached"
    assert facts["get after reset instead of close"][1] == "ok"
    assert kinds(facts["still usable"][1]) == ["checkout", "BEGIN", "SELECT"]
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


def test_F6_expunge_all_keeps_transaction_and_connection(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = facts_of(compare(f6_expunge_all, engine, ref_engine))
    assert facts["expunge_all"][1] == []
    assert facts["sandy"][1:] == (
        "detached",
        {"id": 1, "name": "unflushed", "fullname": "Sandy"},
        False,
    )
    assert facts["n"][1:] == ("transient", False)
    assert facts["kept"][1:] == (True, 1, 0)
    assert facts["collections"][1:] == (0, 0, 0)
    assert kinds(facts["commit"][1]) == ["COMMIT", "checkin"]
    assert facts["sandy after commit"][1]["name"] == "unflushed"
    assert [tuple(r) for r in facts["rows"][1]] == [(1, "sandy"), (2, "patrick"), (3, "squidward")]
