"""A closed Session is freed by reference counting, as the ORM's is.

Applications that turn the cyclic collector off (or run it rarely) must not accumulate
closed sessions and their per-object records: nothing a closed session leaves behind may
sit in a reference cycle.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from models import setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, select

from sessionkit.state import InstanceState


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def work_then_close(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, tuple(f"user{i}" for i in range(50)))
    gc.collect()
    gc.disable()
    try:
        freed = []
        for round_ in range(3):
            session = api.Session(engine)
            users = session.scalars(select(User).order_by(User.id)).all()
            for user in users:
                user.fullname = f"round {round_}"
            session.flush()
            session.commit()
            assert users[0].fullname == f"round {round_}"  # reloaded after commit
            session.close()
            refs = (weakref.ref(session), weakref.ref(session.identity_map))
            del session, users, user
            freed.append([ref() is None for ref in refs])
        obs.append(("closed sessions freed without the collector", freed))
    finally:
        gc.enable()


def test_closed_sessions_are_freed_like_the_orms(engine: Engine, ref_engine: Engine) -> None:
    compare(work_then_close, engine, ref_engine)


def live_states() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is InstanceState)


def test_closed_sessions_leave_no_records(engine: Engine, collector_off: Any) -> None:
    from reference import SK

    User = setup_users(SK, engine, tuple(f"user{i}" for i in range(200)))
    before = live_states()
    for round_ in range(5):
        session = SK.Session(engine)
        users = session.scalars(select(User)).all()
        for user in users:
            user.fullname = f"round {round_}"
        session.commit()
        session.rollback()
        users[0].fullname  # noqa: B018 - reloads in a new transaction
        session.close()
        del session, users, user
    assert live_states() == before


def failed_then_closed(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    gc.collect()
    gc.disable()
    try:
        session = api.Session(engine)
        session.add(User(id=1, name="duplicate key"))
        try:
            session.flush()
        except Exception as err:  # the driver's IntegrityError
            obs.append(("flush failed", type(err).__name__))
            del err
        session.rollback()
        session.close()
        ref = weakref.ref(session)
        del session
        obs.append(("failed, rolled back and closed session freed", ref() is None))
    finally:
        gc.enable()


def test_a_failed_session_is_freed_after_rollback_and_close(
    engine: Engine, ref_engine: Engine
) -> None:
    compare(failed_then_closed, engine, ref_engine)
