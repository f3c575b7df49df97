"""The guard that keeps an ``AsyncSession``'s objects from doing I/O where it cannot be
awaited.

An ``AsyncSession`` runs the ordinary ``Session`` inside Core's greenlet bridge, so a
load started from plain attribute access outside an awaited call would reach the async
driver without a greenlet: the reference then fails deep in the driver (``MissingGreenlet``,
wrapped in a ``StatementError`` on most drivers), after autoflushing and taking a
connection. sessionkit checks first and raises an error that says what to await.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.util.concurrency import in_greenlet

from .exc import ImplicitIOError
from .state import state_str

# What an Expiry's reason means to the user.
_CAUSES = {
    "commit": "commit() expired it (expire_on_commit=True)",
    "rollback": "rollback() expired it",
    "expire": "expire() or expire_all() expired it",
    "refresh": "refresh() expired it and did not load it",
    "bulk": "a bulk UPDATE or DELETE expired it",
    "detach": "it was expired while detached",
}


def outside_await(session: Any) -> bool:
    """True when ``session`` belongs to an AsyncSession and no awaited call is running."""
    return session._async_owner is not None and not in_greenlet()


def implicit_io_error(obj: Any, state: Any, key: str, relationship: bool) -> ImplicitIOError:
    reason = getattr(getattr(state, "expired_by", None), "reason", None)
    cause = _CAUSES.get(reason or "")
    if cause is None:
        cause = "it was not loaded with the query" if relationship else "it is not loaded"
    name = type(obj).__name__
    fixes = [
        f"await session.refresh(obj, [{key!r}])" if relationship else "await session.refresh(obj)",
        f"await obj.awaitable_attrs.{key} (with the AsyncAttrs mixin on {name})",
    ]
    if relationship:
        fixes.append(f"a loader option in the query, e.g. selectinload({name}.{key})")
    else:
        fixes.append("AsyncSession(..., expire_on_commit=False) to keep values after commit()")
    fixes.append("or session.run_sync(fn) to run synchronous code that reads it")
    return ImplicitIOError(
        f"Reading '{name}.{key}' of {state_str(obj)} needs the database ({cause}), but its "
        f"session is an AsyncSession and the read is not awaited: it would block the event "
        f"loop. No SQL was sent. Load it in an awaited call: {'; '.join(fixes)}."
    )


def note_unknown_commit(err: BaseException) -> None:
    """``err`` (a cancellation) arrived while the DBAPI COMMIT waited for the server's
    answer: the server may have committed or not, and no one can tell from here. The
    session keeps the transaction as committed (the safe side: a committed row is never
    reported as gone); the note says so where the error is seen."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_name != "do_commit":
        tb = tb.tb_next
    if tb is None:
        return  # raised after the COMMIT returned: it did commit
    note = (
        "sessionkit: the COMMIT was interrupted while waiting for the server's answer, so "
        "whether it committed is unknown. The session treats the transaction as committed: "
        "its objects stay persistent and expired, and load again when read; an object "
        "whose row did not commit raises ObjectDeletedError when loaded. Check the rows "
        "before repeating the work."
    )
    notes = getattr(err, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        err.__notes__ = notes  # type: ignore[attr-defined]  # add_note() is 3.11+
    notes.append(note)
