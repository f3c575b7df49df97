"""Joining an application's transaction (docs/behaviour.md: join-1 … join-4): a Session
bound to a Connection that is already in a transaction, in each join_transaction_mode,
compared with the reference."""

from __future__ import annotations

from typing import Any

import pytest
from models import setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, select

from support import step_kinds, user_names

# -- join-1 … join-4: joining an application's transaction -----------------------------------


def join_modes(mode: str | None) -> Any:
    def scenario(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        obs.rec.clear()
        kw = {} if mode is None else {"join_transaction_mode": mode}
        with engine.connect() as conn:
            trans = conn.begin()
            s = api.Session(bind=conn, **kw)
            s.add(User(name="first"))
            s.commit()
            obs.sql("session commit")
            obs.append(("external still active", trans.is_active, conn.in_transaction()))
            s.add(User(name="second"))
            s.flush()
            s.rollback()
            obs.sql("session rollback")
            obs.append(("external after rollback", trans.is_active))
            s.close()
            obs.append(("connection open after close", not conn.closed))
            if trans.is_active:
                trans.rollback()
            obs.sql("teardown")
        obs.append(("rows", user_names(api, engine, User)))

    return scenario


@pytest.mark.parametrize(
    "mode", [None, "rollback_only", "create_savepoint", "control_fully", "conditional_savepoint"]
)
def test_join1_join4_join_an_external_transaction(
    sp_engine: Engine, sp_ref_engine: Engine, mode: str | None
) -> None:
    obs = compare(join_modes(mode), sp_engine, sp_ref_engine)
    facts = {o[0]: o for o in obs}
    assert facts["connection open after close"][1] is True
    if mode == "control_fully":
        assert "COMMIT" in step_kinds(obs, "session commit")
    else:
        assert "COMMIT" not in step_kinds(obs, "session commit")
    if mode == "create_savepoint":
        assert facts["external after rollback"][1] is True
        assert facts["rows"][1] == ["sandy", "patrick", "squidward"]


def join_savepoint_test_pattern(api: Api, engine: Engine, obs: Obs) -> None:
    """The test-suite recipe: each test's work happens in a SAVEPOINT of an outer
    transaction that the fixture rolls back."""
    User = setup_users(api, engine)
    obs.rec.clear()
    with engine.connect() as conn:
        trans = conn.begin()
        s = api.Session(bind=conn, join_transaction_mode="create_savepoint")
        s.add(User(name="test data"))
        s.commit()
        obs.append(("visible inside", list(s.scalars(select(User.name).order_by(User.id)))))
        s.close()
        trans.rollback()
    obs.sql("the whole test")
    obs.append(("rows after teardown", user_names(api, engine, User)))


def test_join3_create_savepoint_test_pattern(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    obs = compare(join_savepoint_test_pattern, sp_engine, sp_ref_engine)
    assert obs[0][1][-1] == "test data"
    assert obs[-1] == ("rows after teardown", ["sandy", "patrick", "squidward"])


def join_conditional_inside_savepoint(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    with engine.connect() as conn:
        outer = conn.begin()
        conn.begin_nested()
        s = api.Session(bind=conn)
        s.add(User(name="in savepoint"))
        s.commit()
        obs.sql("conditional_savepoint inside a SAVEPOINT behaves as create_savepoint")
        s.close()
        outer.rollback()


def test_join4_conditional_savepoint_inside_savepoint(
    sp_engine: Engine, sp_ref_engine: Engine
) -> None:
    obs = compare(join_conditional_inside_savepoint, sp_engine, sp_ref_engine)
    assert "RELEASE SAVEPOINT" in step_kinds(obs, obs[0][0])


def join_connection_without_transaction(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    with engine.connect() as conn:
        s = api.Session(bind=conn)
        s.add(User(name="committed"))
        s.commit()
        obs.sql("begins and commits on the given connection")
        s.close()
        obs.append(("still open", not conn.closed))
    obs.append(("rows", user_names(api, engine, User)))


def test_join4_given_connection_without_transaction(
    sp_engine: Engine, sp_ref_engine: Engine
) -> None:
    obs = compare(join_connection_without_transaction, sp_engine, sp_ref_engine)
    assert "COMMIT" in step_kinds(obs, "begins and commits on the given connection")
    assert obs[-1][1][-1] == "committed"
