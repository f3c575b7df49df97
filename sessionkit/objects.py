"""Helpers on single objects: which session holds one, and leaving it behind.

``make_transient`` forgets an object's identity, ``make_transient_to_detached`` gives a
transient object one, ``object_session`` finds the session it is attached to. They
act on one object and its session's bookkeeping, so they sit above the Session.
"""

from __future__ import annotations

from .exc import InvalidRequestError
from .firing import fire, snapshot
from .hooks import SESSION
from .mapping import state_of
from .session import Session
from .state import Expiry, state_str


def object_session(instance: object) -> Session | None:
    """The session ``instance`` is attached to (pending, persistent or deleted), or None."""
    state = state_of(instance)
    ref = state.session_ref
    session: Session | None = None if ref is None else ref()
    if session is None:
        return None
    if instance in session or (state.deleted and state.key is not None):
        return session
    return None


# make_transient() of an object in a session: the ORM's event for each state it had.
_LEFT_SESSION = {
    "pending": "pending_to_transient",
    "persistent": "persistent_to_detached",
    "deleted": "deleted_to_detached",
}


def make_transient(instance: object) -> None:
    """Forget the object's identity and session; its ``__dict__`` values stay."""
    state = state_of(instance)
    ref = state.session_ref
    session = None if ref is None else ref()
    if session is not None:
        before = snapshot(session._tracker, (instance,)) if SESSION else None
        session._tracker.forget(instance, state)
        state.session_ref = None
        if before:
            name = _LEFT_SESSION.get(before[0][1])
            if name is not None:
                fire(session, name, instance)
    state.session_ref = None
    state.key = None
    state.deleted = state.was_deleted = False
    state.expired = None
    state.clear_history()


def make_transient_to_detached(instance: object) -> None:
    """Give a transient object with a primary key an identity, as if loaded then detached."""
    state = state_of(instance)
    if state.key is not None or state.session_ref is not None:
        raise InvalidRequestError(f"Given object {state_str(instance)} must be transient")
    key = state.mapper.key_from_dict(instance.__dict__)
    if key is None:
        raise InvalidRequestError(
            f"Instance {state_str(instance)} has no complete primary key "
            f"({', '.join(state.mapper.pk_attr_keys)}); set it before "
            f"make_transient_to_detached()."
        )
    state.key = key
    d = instance.__dict__
    missing = frozenset(k for k in state.mapper.attr_keys if k not in d)
    state.expired = missing or None
    state.expired_by = Expiry("detach")
    state.clear_history()
