"""Every session and mapper event, heard during scenarios written for other rules.

Each scenario below was written to compare the lifecycle of sessionkit with the ORM's.
Here it runs again with a listener on every session event (on the ``Session`` class) and
every persistence event (on all mappers) of each library, and the two libraries must
hear the same events, in the same order, with the same arguments (normalised: the
object's class, its label and its state at that moment; a transaction's origin and
nesting). Listening must not change what the scenario itself observes either: its own
observations are compared as always.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy.orm as orm
import test_commit_rollback as commit_rollback
import test_savepoints as savepoints
import test_seed_stories as seed
from reference import Api, Obs, compare
from sqlalchemy import Connection, Engine, event

import sessionkit
from support import MAPPER_EVENTS, SESSION_EVENTS

Scenario = Callable[[Api, Engine, Obs], None]


def _describe(api: Api, arg: Any) -> Any:
    if isinstance(arg, (orm.SessionTransaction, sessionkit.SessionTransaction)):
        return ("transaction", arg.origin.name, arg.nested, arg.parent is None)
    if isinstance(arg, Connection):
        return "connection"
    if isinstance(arg, (orm.Mapper, sessionkit.Mapper)):
        return ("mapper", arg.class_.__name__)
    if isinstance(arg, (orm.Session, sessionkit.Session)) or arg is None:
        return type(arg).__name__ if arg is None else "session"
    if hasattr(arg, api.state_key):
        label = {k: v for k, v in api.visible(arg).items() if k in ("id", "name")}
        return (type(arg).__name__, sorted(label.items()), api.state(arg))
    return type(arg).__name__.replace("UOWTransaction", "FlushContext")


@contextmanager
def listening(api: Api, log: list[Any]) -> Iterator[None]:
    mapper_cls = sessionkit.Mapper if api.name == "sessionkit" else orm.Mapper
    installed = []

    def make(name: str) -> Callable[..., None]:
        def listener(*args: Any) -> None:
            log.append((name, *(_describe(api, a) for a in args)))

        return listener

    for name in SESSION_EVENTS:
        fn = make(name)
        event.listen(api.Session, name, fn)
        installed.append((api.Session, name, fn))
    for name in MAPPER_EVENTS:
        fn = make(name)
        event.listen(mapper_cls, name, fn)
        installed.append((mapper_cls, name, fn))
    try:
        yield
    finally:
        for target, name, fn in installed:
            event.remove(target, name, fn)


TRANSITIONS = frozenset(n for n in SESSION_EVENTS if "_to_" in n and n != "loaded_as_persistent")


def _kind(entry: Any) -> str:
    return "transition" if entry[0] in TRANSITIONS else entry[0]


def _runs_sorted(log: list[Any]) -> list[Any]:
    """The ORM announces the state changes of a flush or a rollback by iterating sets,
    in no fixed order: consecutive transition events (and consecutive events of one
    name) are compared as a sorted run."""
    out: list[Any] = []
    run: list[Any] = []
    for entry in [*log, None]:
        if run and (entry is None or _kind(entry) != _kind(run[0])):
            out.extend(sorted(run, key=repr))
            run = []
        if entry is not None:
            run.append(entry)
    return out


def heard(scenario: Scenario) -> Scenario:
    def run(api: Api, engine: Engine, obs: Obs) -> None:
        log: list[Any] = []
        with listening(api, log):
            scenario(api, engine, obs)
        obs.append(("events heard", _runs_sorted(log)))

    return run


SCENARIOS = {
    "rolling back": seed.rolling_back,
    "transaction rollback program": seed.transaction_rollback_program,
    "closing": seed.closing,
    "expire_on_commit=False": seed.expire_on_commit_false,
    "context managers": seed.context_managers,
    "commit expires everything": commit_rollback.c1_c2_commit_expires_everything,
    "deleted detached at commit": commit_rollback.c4_deleted_detached_at_commit,
    "commit after failed flush": commit_rollback.c7_commit_after_failed_flush,
    "rollback without connection": commit_rollback.d2_rollback_without_connection,
    "unflushed delete forgotten": commit_rollback.d4_unflushed_delete_forgotten,
    "primary key change undone": commit_rollback.d6_pk_change_undone,
}
SAVEPOINT_SCENARIOS = {
    "savepoint rollback": savepoints.savepoint_rollback,
    "savepoint context manager": savepoints.savepoint_context_manager,
    "failed flush in savepoint": savepoints.failed_flush_in_savepoint,
    "session rollback while nested": savepoints.session_rollback_while_nested,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_events_heard(name: str, engine: Engine, ref_engine: Engine) -> None:
    obs = compare(heard(SCENARIOS[name]), engine, ref_engine)
    assert obs[-1][0] == "events heard" and obs[-1][1], "the scenario heard no event at all"


@pytest.mark.parametrize("name", sorted(SAVEPOINT_SCENARIOS))
def test_same_events_heard_with_savepoints(
    name: str, sp_engine: Engine, sp_ref_engine: Engine
) -> None:
    obs = compare(heard(SAVEPOINT_SCENARIOS[name]), sp_engine, sp_ref_engine)
    assert obs[-1][1]
