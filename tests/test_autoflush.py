"""Autoflush (docs/behaviour.md: flush-11, flush-12): which operations flush pending changes
first and which do not, and how an error raised by an autoflush is reported. Each scenario
runs on sessionkit and on the SQLAlchemy ORM.

Every scenario records the SQL and transaction events the engine sees, object states,
``__dict__`` contents, error class names and warning categories; the two libraries must
record the same thing. The assertions after ``compare()`` check the expected facts so that
a bug shared by both runs cannot hide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from models import setup_items, setup_users_table
from reference import Api, Obs, compare
from sqlalchemy import Engine, select, text

from support import by_label, event_kinds

AUTOFLUSH_PREFIX = (
    "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush "
    "block if this flush is occurring prematurely)\n"
)


# -- flush-11. Autoflush points ------------------------------------------------------------


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
def test_flush11_autoflush_points(
    engine: Engine,
    ref_engine: Engine,
    label: str,
    kw: dict[str, Any],
    op: Callable[[_Ctx], Any],
    flushes: bool,
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users_table(api, engine)
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
    facts = by_label(obs)
    kinds = event_kinds(facts[label][1])
    assert ("INSERT" in kinds) is flushes
    assert facts["new"][1] == ("persistent" if flushes else "pending")
    if flushes and "SELECT" in kinds:
        assert kinds.index("INSERT") < kinds.index("SELECT")


# -- flush-12. Autoflush errors ------------------------------------------------------------


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
def test_flush12_autoflush_error_is_reraised_with_prefix(
    engine: Engine,
    ref_engine: Engine,
    label: str,
    trigger: Callable[[Any, Any, Any], Any],
    prefixed: bool,
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = setup_items(api, engine, (("1", "a"), ("2", "b")))
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
    facts = by_label(obs)
    assert facts[label][1:] == ("raises", "IntegrityError")
    assert facts["prefixed"][1] is prefixed
    assert facts["original first line"][1].startswith("(")  # "(sqlite3.IntegrityError) ..."
    assert facts["state"][1:] == (True, False)
