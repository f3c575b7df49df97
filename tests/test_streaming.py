"""Streaming results: ``yield_per`` (the statement's execution option, the
``execution_options=`` argument or ``Result.yield_per()``), ``stream_results`` and
``partitions()``. Objects are built a batch at a time, so the objects alive while a large
result is read are bounded by one batch, and the identity-map rules hold for each batch
as it is built. Each scenario runs on sessionkit and on the SQLAlchemy ORM.

Live objects are counted with ``gc.get_objects()`` after a collection; the assertions after
``compare()`` check the bound itself, so that a regression shared by both cannot hide.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest
from models import empty_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, select

from support import by_label, event_kinds


def _sizes(engine: Engine) -> tuple[int, int]:
    """(rows, yield_per): 20,000 rows on SQLite, fewer where inserting them costs more."""
    return (20_000, 1_000) if engine.dialect.name == "sqlite" else (4_000, 200)


def _users(api: Api, engine: Engine, count: int) -> Any:
    """The ``user_account`` table with ``count`` committed rows, ids 1..count."""
    User = empty_users(api, engine)
    with engine.begin() as conn:
        conn.execute(
            User.__table__.insert(),
            [{"id": i, "name": f"user{i}", "fullname": f"User {i}"} for i in range(1, count + 1)],
        )
    return User


def _live(cls: type) -> int:
    """How many instances of ``cls`` exist right now."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)


@pytest.mark.parametrize(
    "how", ["statement option", "execution_options argument", "Result.yield_per", "two entities"]
)
def test_yield_per_builds_one_batch_at_a_time(engine: Engine, ref_engine: Engine, how: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        count, per = _sizes(engine)
        User = _users(api, engine, count)
        session = api.Session(engine)
        stmt = select(User).order_by(User.id)
        if how == "statement option":
            result = session.execute(stmt.execution_options(yield_per=per)).scalars()
        elif how == "execution_options argument":
            result = session.execute(stmt, execution_options={"yield_per": per}).scalars()
        elif how == "Result.yield_per":
            result = session.execute(stmt).yield_per(per).scalars()
        else:
            both = select(User, User.name).order_by(User.id).execution_options(yield_per=per)
            result = session.execute(both)
        rows = iter(result)
        first = next(rows)
        obs.append(("live after the first row", _live(User)))
        ids = [first.id if how != "two entities" else (first[0].id, first[1])]
        del first
        middle = None
        for seen, row in enumerate(rows, 2):
            ids.append(row.id if how != "two entities" else (row[0].id, row[1]))
            if seen == count // 2 + 1:  # the first row of a batch half-way through
                middle = _live(User)
        del row
        obs.append(("live half-way", middle))
        if how == "two entities":
            expected: list[Any] = [(i, f"user{i}") for i in range(1, count + 1)]
        else:
            expected = list(range(1, count + 1))
        obs.append(("every row, in order", ids == expected))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    _, per = _sizes(engine)
    assert 0 < facts["live after the first row"][1] <= per
    assert 0 < facts["live half-way"][1] <= per
    assert facts["every row, in order"][1] is True


def test_partitions_follow_yield_per(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine, 250)
        session = api.Session(engine)
        stmt = select(User).order_by(User.id)

        def sizes(label: str, result: Any, size: int | None = None) -> None:
            parts = list(result.partitions(size))
            obs.append((label, [len(p) for p in parts]))

        streamed = stmt.execution_options(yield_per=100)
        sizes("yield_per=100", session.execute(streamed).scalars())
        sizes("yield_per=100, partitions(30)", session.execute(streamed).scalars(), 30)
        sizes("scalars(), yield_per=100", session.scalars(streamed))
        sizes("Result.yield_per(40)", session.execute(stmt).yield_per(40).scalars())
        sizes("no yield_per", session.execute(stmt).scalars())
        sizes(
            "two entities, yield_per=100",
            session.execute(select(User, User.name).execution_options(yield_per=100)),
        )
        sizes(
            "columns only, yield_per=100",
            session.execute(select(User.id, User.name).execution_options(yield_per=100)),
        )
        batch = next(session.execute(streamed).scalars().partitions())
        obs.append(("identity", batch[0] is session.get(User, 1), batch[-1].id))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["yield_per=100"][1] == [100, 100, 50]
    assert facts["yield_per=100, partitions(30)"][1] == [30] * 8 + [10]
    assert facts["Result.yield_per(40)"][1] == [40] * 6 + [10]
    assert facts["no yield_per"][1] == [250]
    assert facts["two entities, yield_per=100"][1] == [100, 100, 50]
    assert facts["identity"][1:] == (True, 100)


@pytest.mark.parametrize("populate_existing", [False, True])
def test_each_batch_follows_the_identity_map_rules(
    engine: Engine, ref_engine: Engine, populate_existing: bool
) -> None:
    """A row meets the object as it is when its batch is built, not when execute() ran."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine, 60)
        session = api.Session(engine)
        held = session.get(User, 35)
        changed = session.get(User, 45)
        stmt = select(User).order_by(User.id)
        opts = {"yield_per": 10, "populate_existing": populate_existing}
        rows = iter(session.execute(stmt, execution_options=opts).scalars())
        first = next(rows)
        session.expire(held)
        changed.name = "changed in the session"
        obs.rec.clear()
        rest = list(rows)
        obs.append(("returned, not rebuilt", rest[33] is held, rest[43] is changed, first.id))
        obs.append(("expired object filled by its row", held.name))
        obs.sql("reading it")
        obs.append(("modified object", changed.name, changed in session.dirty))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["returned, not rebuilt"][1:] == (True, True, 1)
    assert facts["expired object filled by its row"][1] == "user35"
    assert facts["reading it"][1] == []
    if populate_existing:
        assert facts["modified object"][1:] == ("user45", False)
    else:
        assert facts["modified object"][1:] == ("changed in the session", True)


def test_stream_results_builds_what_each_fetch_asks_for(engine: Engine, ref_engine: Engine) -> None:
    """``stream_results`` alone: with a server-side cursor (PostgreSQL, MariaDB) each
    ``partitions(n)`` step builds its own objects; SQLite has none and builds them all."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        count, per = _sizes(engine)
        User = _users(api, engine, count)
        session = api.Session(engine)
        stmt = select(User).order_by(User.id).execution_options(stream_results=True)
        parts = session.execute(stmt).scalars().partitions(per)
        first = next(parts)
        obs.append(("first partition", len(first), first[0].id))
        del first
        obs.append(("live after the first partition", _live(User)))
        obs.append(("the rest", sum(len(p) for p in parts)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    count, per = _sizes(engine)
    assert facts["first partition"][1:] == (per, 1)
    assert facts["the rest"][1] == count - per
    if engine.dialect.name != "sqlite":
        assert facts["live after the first partition"][1] <= per


def test_streaming_keeps_autoflush_and_the_transaction(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine, 30)
        session = api.Session(engine)
        new = User(id=31, name="new")
        session.add(new)
        obs.rec.clear()
        stmt = select(User).order_by(User.id.desc()).execution_options(yield_per=7)
        result = session.scalars(stmt)
        obs.sql("execute: autoflush, then the SELECT", pool=True)
        objs = result.all()
        obs.append(("pending object streamed back", objs[0] is new, len(objs)))
        obs.sql("reading the rows", pool=True)
        session.commit()
        obs.sql("commit", pool=True)
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert event_kinds(facts["execute: autoflush, then the SELECT"][1]) == [
        "checkout",
        "BEGIN",
        "INSERT",
        "SELECT",
    ]
    assert facts["pending object streamed back"][1:] == (True, 31)
    assert facts["reading the rows"][1] == []


def test_closing_a_stream_early_releases_its_cursor(engine: Engine, ref_engine: Engine) -> None:
    """``close()`` in the middle of a stream closes the cursor (a server-side one on
    PostgreSQL and MariaDB), so the session's next statement finds the connection free."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        count, per = _sizes(engine)
        User = _users(api, engine, count)
        session = api.Session(engine)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stmt = select(User).order_by(User.id).execution_options(yield_per=per)
            result = session.execute(stmt)
            rows = iter(result.scalars())
            obs.append(("first", next(rows).id))
            result.close()
            gc.collect()
            obs.append(("next statement", session.get(User, count).name))
            session.commit()
        obs.append(("warnings", [str(w.message) for w in caught]))
        obs.error("reading on after close()", lambda: next(rows))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    count, _ = _sizes(engine)
    assert facts["next statement"][1] == f"user{count}"
    assert facts["warnings"][1] == []


@pytest.mark.parametrize("how", ["close", "expunge_all"])
def test_reading_a_result_after_its_session_let_go_is_refused(
    engine: Engine, ref_engine: Engine, how: str
) -> None:
    """Rows read after close() or expunge_all() would become objects of a session that no
    longer holds them; like the ORM, that is an error, not a silent re-attach."""

    def scenario(api: Api, engine: Engine, obs: Obs) -> None:
        User = _users(api, engine, 5)
        session = api.Session(engine)
        result = session.execute(select(User).order_by(User.id))
        getattr(session, how)()
        try:
            users = result.scalars().all()
            obs.append(("read", [api.state(u) for u in users]))
        except Exception as err:
            obs.append(("read", type(err).__name__, getattr(err, "code", None)))
        session.close()

    compare(scenario, engine, ref_engine)
