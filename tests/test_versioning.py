"""Optimistic concurrency: ``version_id_col``.

Every UPDATE and DELETE of a versioned class checks the version it loaded and bumps it,
so a change made by another transaction in between makes the flush fail with
StaleDataError naming the object, instead of silently overwriting that change. Compared
with the ORM's ``version_id_col`` where both have it; then two sessions, threads and
processes race on real servers.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from typing import Any

import pytest
from reference import SK, Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, String, create_engine, select, text
from sqlalchemy.exc import ArgumentError

import sessionkit
from sessionkit.exc import StaleDataError
from support import Backend

THREADS = 8
PROCESSES = 4
ROUNDS = 25


def versioned_model(api: Api, generator: Any = None) -> tuple[Any, Any]:
    Base = api.declarative_base()

    class Doc(Base):
        __tablename__ = "docs"
        id = Column(Integer, primary_key=True, autoincrement=False)
        title = Column(String(50))
        counter = Column(Integer, nullable=False, default=0)
        version = Column(String(32) if generator else Integer, nullable=False)
        __mapper_args__ = (
            {"version_id_col": version, "version_id_generator": generator}
            if generator
            else {"version_id_col": version}
        )

    return Base, Doc


def _docs(api: Api, engine: Engine, n: int = 2) -> Any:
    Base, Doc = versioned_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([Doc(id=i, title=f"t{i}", counter=0) for i in range(1, n + 1)])
        s.commit()
    return Doc


def _sql(obs: Obs, label: str) -> None:
    """Statement kinds and parameters (bind names differ between the libraries)."""
    events = [(e[1].split()[0], e[2]) for e in obs.rec.without_pool() if e[0] == "SQL"]
    obs.append((label, events))
    obs.rec.clear()


def test_versions_are_set_checked_and_bumped_like_the_reference(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Doc = _docs(api, engine, n=0)
        session = api.Session(engine)
        obs.rec.clear()
        doc = Doc(id=1, title="a")
        session.add(doc)
        session.flush()
        _sql(obs, "insert")
        obs.append(("after insert", doc.version))
        doc.title = "b"
        session.flush()
        _sql(obs, "update")
        obs.append(("after update", doc.version))
        doc.title = "b"  # no net change: no UPDATE, no new version
        session.flush()
        _sql(obs, "no change")
        session.commit()
        obs.rec.clear()
        doc.title = "c"  # the version expired with the commit: loaded before the UPDATE
        session.commit()
        _sql(obs, "update after commit")
        session.delete(doc)
        session.commit()
        _sql(obs, "delete")
        session.close()

    obs = {o[0]: o[1:] for o in compare(scen, engine, ref_engine)}
    assert obs["insert"][0] == [("INSERT", (1, "a", 0, 1))]
    assert obs["after insert"] == (1,)
    assert obs["update"][0] == [("UPDATE", ("b", 2, 1, 1))]
    assert obs["after update"] == (2,)
    assert obs["no change"][0] == []
    assert [k for k, _ in obs["update after commit"][0]] == ["SELECT", "UPDATE"]
    assert obs["update after commit"][0][1][1][-1] == 2  # expected version 2
    assert obs["delete"][0] == [("SELECT", (1,)), ("DELETE", (1, 3))]


def test_a_lost_update_raises_stale_data_error_naming_the_object(engine: Engine) -> None:
    Doc = _docs(SK, engine)
    first, second = SK.Session(engine), SK.Session(engine)
    a, b = first.get(Doc, 1), second.get(Doc, 1)
    a.title = "first wins"
    first.commit()
    b.title = "second loses"
    with pytest.raises(StaleDataError) as caught:
        second.commit()
    message = str(caught.value)
    assert "UPDATE statement on table 'docs' expected to update 1 row(s); 0 were matched" in (
        message
    )
    assert "Doc with primary key 1" in message and "version=1" in message
    # The session needs rollback(), then works again; the winner's row is intact.
    with pytest.raises(sessionkit.exc.PendingRollbackError):
        second.get(Doc, 2)
    second.rollback()
    assert b.title == "first wins" and b.version == 2
    b.title = "second, on the current version"
    second.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title, version FROM docs WHERE id = 1")).one() == (
            "second, on the current version",
            3,
        )
    first.close()
    second.close()


def test_deleting_a_row_changed_since_raises(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Doc = _docs(api, engine)
        first, second = api.Session(engine), api.Session(engine)
        a, b = first.get(Doc, 1), second.get(Doc, 1)
        a.title = "changed"
        first.commit()
        second.delete(b)
        obs.error("delete", second.commit)
        second.rollback()
        obs.append(("kept", api.state(b), b.title))
        first.close()
        second.close()

    obs = {o[0]: o[1:] for o in compare(scen, engine, ref_engine)}
    assert obs["delete"] == ("raises", "StaleDataError")
    assert obs["kept"] == ("persistent", "changed")


def test_version_assigned_by_the_application_is_written_as_given(engine: Engine) -> None:
    Doc = _docs(SK, engine)
    with SK.Session(engine) as session:
        doc = session.get(Doc, 1)
        doc.version = 10
        session.commit()
        assert doc.version == 10
        doc.title = "next"
        session.commit()
        assert doc.version == 11


def test_custom_version_generator(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        counter = iter(range(100))
        Base, Doc = versioned_model(api, generator=lambda v: f"v{next(counter)}")
        Base.metadata.create_all(engine)
        with api.Session(engine) as s:
            d = Doc(id=1, title="a")
            s.add(d)
            s.flush()
            obs.append(("inserted", d.version))
            d.title = "b"
            s.flush()
            obs.append(("updated", d.version))
            s.commit()

    obs = {o[0]: o[1:] for o in compare(scen, engine, ref_engine)}
    assert obs["inserted"] == ("v0",) and obs["updated"] == ("v1",)


def test_row_switch_checks_the_old_rows_version(engine: Engine) -> None:
    Doc = _docs(SK, engine)
    with SK.Session(engine) as session, SK.Session(engine) as other:
        old = session.get(Doc, 1)
        o = other.get(Doc, 1)
        o.title = "meanwhile"
        other.commit()
        session.delete(old)
        session.add(Doc(id=1, title="replacement"))
        with pytest.raises(StaleDataError, match="Doc with primary key 1"):
            session.flush()


def test_version_mapping_errors_name_the_class_and_the_fix() -> None:
    Base = sessionkit.declarative_base()
    stray = Column("stray", Integer)
    with pytest.raises(ArgumentError, match=r"version_id_col .* of class Bad1 is not a column"):

        class Bad1(Base):
            __tablename__ = "bad1"
            id = Column(Integer, primary_key=True)
            __mapper_args__ = {"version_id_col": stray}

    with pytest.raises(ArgumentError, match=r"unsupported key\(s\) \['polymorphic_on'\]"):

        class Bad2(Base):
            __tablename__ = "bad2"
            id = Column(Integer, primary_key=True)
            __mapper_args__ = {"polymorphic_on": id}


# -- races on real servers -------------------------------------------------------------


def _server_only(backend: Backend) -> None:
    if backend.is_sqlite:
        pytest.skip("concurrent writers need a server: SQLite allows one writer at a time")


def _race(engine: Engine, Doc: Any, barrier: Any, rounds: int) -> list[bool]:
    """``rounds`` read-modify-writes of doc 1, all racers reading before any writes.

    Returns, per round, whether this racer's UPDATE won.
    """
    results = []
    for _ in range(rounds):
        session = sessionkit.Session(engine)
        try:
            doc = session.get(Doc, 1)
            doc.counter += 1
            barrier.wait()  # everyone has read the same version
            try:
                session.commit()
                results.append(True)
            except StaleDataError:
                session.rollback()
                results.append(False)
        finally:
            session.close()
        barrier.wait()  # the round is over for everyone
    return results


def _check_race(engine: Engine, racers: int, per_racer: list[list[bool]]) -> None:
    for round_results in zip(*per_racer, strict=True):
        # Exactly one winner per round; every other racer raised.
        assert sum(round_results) == 1, round_results
    with engine.connect() as conn:
        row = conn.execute(text("SELECT counter, version FROM docs WHERE id = 1")).one()
    counter, version = row
    # Exactly the winning updates landed, none was lost or applied twice.
    assert counter == ROUNDS and version == ROUNDS + 1
    assert sum(not won for results in per_racer for won in results) == (racers - 1) * ROUNDS


def test_threads_racing_lose_no_update(backend: Backend, engine: Engine) -> None:
    _server_only(backend)
    Doc = _docs(SK, engine, n=1)
    barrier = threading.Barrier(THREADS, timeout=60)
    results: list[list[bool]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            results[n] = _race(engine, Doc, barrier, ROUNDS)
        except BaseException as err:  # reported below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _check_race(engine, THREADS, results)
    assert engine.pool.checkedout() == 0


def _process_worker(
    url: str, connect_args: dict[str, Any], barrier: Any, rounds: int, queue: Any
) -> None:
    engine = create_engine(url, connect_args=connect_args)
    _, Doc = versioned_model(SK)
    try:
        queue.put(_race(engine, Doc, barrier, rounds))
    except BaseException as err:
        barrier.abort()
        queue.put(repr(err))
    finally:
        engine.dispose()


def test_processes_racing_lose_no_update(backend: Backend, engine: Engine) -> None:
    _server_only(backend)
    _docs(SK, engine, n=1)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(PROCESSES, timeout=120)
    url = engine.url.render_as_string(hide_password=False)
    extra: dict[str, Any] = {}
    if backend.is_postgresql:
        # The test's own schema (see conftest), for the children's connections too.
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        extra["options"] = f"-c search_path={schema}"
    procs = [
        ctx.Process(target=_process_worker, args=(url, extra, barrier, ROUNDS, queue))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(isinstance(r, list) for r in results), results
    _check_race(engine, PROCESSES, results)


def test_orm_reference_agrees_on_the_lost_update(engine: Engine, ref_engine: Engine) -> None:
    """Same race, both libraries: the second writer gets StaleDataError, the row keeps
    the first writer's change."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Doc = _docs(api, engine)
        first, second = api.Session(engine), api.Session(engine)
        a, b = first.get(Doc, 1), second.get(Doc, 1)
        a.counter = 5
        first.commit()
        b.counter = 7
        obs.error("second commit", second.commit)
        second.rollback()
        obs.append(("row", b.counter, b.version))
        first.close()
        second.close()

    obs = {o[0]: o[1:] for o in compare(scen, engine, ref_engine)}
    assert obs["second commit"] == ("raises", "StaleDataError")
    assert obs["row"] == (5, 2)


def test_uuid_versions_survive_a_race(engine: Engine) -> None:
    Base, Doc = versioned_model(SK, generator=lambda v: uuid.uuid4().hex)
    Base.metadata.create_all(engine)
    with SK.Session(engine) as s:
        s.add(Doc(id=1, title="a"))
        s.commit()
    first, second = SK.Session(engine), SK.Session(engine)
    a, b = first.get(Doc, 1), second.get(Doc, 1)
    a.title, b.title = "x", "y"
    first.commit()
    with pytest.raises(StaleDataError):
        second.commit()
    first.close()
    second.close()
    with engine.connect() as conn:
        assert conn.execute(select(Doc.__table__.c.title)).scalar_one() == "x"
