"""Calling session event listeners: transactions, flushes and object-state transitions.

Every function here is called only when ``hooks.SESSION`` holds a name, so the
bookkeeping it does (snapshots of object states) is paid by programs that listen.
Object-state transitions are found by comparing each object's lifecycle state before
and after an operation, which keeps the operations themselves free of event code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import hooks
from .state import STATE_KEY

if TYPE_CHECKING:
    from .tracking import Tracker

# (state before, state after) -> the ORM's event name.
_TRANSITIONS = {
    ("transient", "pending"): "transient_to_pending",
    ("pending", "transient"): "pending_to_transient",
    ("persistent", "transient"): "persistent_to_transient",
    ("pending", "persistent"): "pending_to_persistent",
    ("detached", "persistent"): "detached_to_persistent",
    ("persistent", "deleted"): "persistent_to_deleted",
    ("deleted", "persistent"): "deleted_to_persistent",
    ("deleted", "detached"): "deleted_to_detached",
    ("persistent", "detached"): "persistent_to_detached",
}
TRANSITION_NAMES = frozenset(_TRANSITIONS.values())

Snapshot = list[tuple[Any, str]]


def fire(session: Any, name: str, *args: Any) -> None:
    """Call the listeners of ``name`` (if any was ever registered)."""
    if name in hooks.SESSION:
        getattr(session.dispatch, name)(session, *args)


def watching_states() -> bool:
    return not hooks.SESSION.isdisjoint(TRANSITION_NAMES)


def lifecycle(tracker: Tracker, obj: Any) -> str:
    """``inspect(obj)``'s state name, relative to the tracker's session."""
    state = obj.__dict__.get(STATE_KEY)
    if state is None:
        return "transient"
    ref = state.session_ref
    if state.key is None:
        return "pending" if ref is tracker.ref and state in tracker.new else "transient"
    if ref is not tracker.ref or ref is None:
        return "detached"
    if state.deleted:
        return "deleted"
    return "persistent"


def snapshot(tracker: Tracker, objs: Iterable[Any], undoing: bool = False) -> Snapshot | None:
    """The states of ``objs`` now, if anyone listens to state transitions.

    ``undoing``: a rollback is coming, and the ORM reports an object only marked by
    ``delete()`` as going from *deleted* back to *persistent*.
    """
    if not watching_states():
        return None
    seen: set[int] = set()
    out = []
    marked = tracker.deleted if undoing else {}
    for obj in objs:
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            name = lifecycle(tracker, obj)
            if name == "persistent" and obj.__dict__.get(STATE_KEY) in marked:
                name = "deleted"
            out.append((obj, name))
    return out


def transitions(session: Any, tracker: Tracker, before: Snapshot | None) -> None:
    """Fire the transition event of each object whose state changed since ``before``."""
    if not before:
        return
    for obj, old in before:
        name = _TRANSITIONS.get((old, lifecycle(tracker, obj)))
        if name is not None:
            fire(session, name, obj)


def session_objects(tracker: Tracker) -> list[Any]:
    """Every object the session holds: identity map first, then pending, as the ORM."""
    objs = tracker.identity_map.objects()
    objs.extend(tracker.new.values())
    objs.extend(tracker.deleted.values())
    return objs


def log_objects(tracker: Tracker, levels: Iterable[Any]) -> list[Any]:
    """Objects a rollback of ``levels`` may move: pending ones and those the levels'
    flushes inserted first, then those they deleted (the ORM's order)."""
    objs = list(tracker.new.values())
    logs = [level.log for level in levels]
    objs.extend(ref() for log in logs for ref, _ in log.inserted)
    objs.extend(ref() for log in logs for ref, _ in log.deleted)
    objs.extend(tracker.deleted.values())
    return objs
