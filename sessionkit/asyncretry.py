"""``run_transaction_async``: ``run_transaction`` (retry.py) for an ``AsyncSession``.

The same policy, decided by the same functions: a fresh session per attempt, always
closed (to its end, even when the task is cancelled meanwhile), the whole transaction run
again after a serialization failure, a deadlock or a connection lost before COMMIT, never
after an ambiguous COMMIT unless asked, never after a cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.util.concurrency import greenlet_spawn

from .asyncsession import AsyncSession, run_to_completion
from .retry import check_retry_arguments, close_after_error, is_retryable, retry_pause, will_retry

__all__ = ["run_transaction_async"]

_T = TypeVar("_T")


async def run_transaction_async(
    factory: Callable[[], AsyncSession],
    work: Callable[[AsyncSession], Awaitable[_T]],
    *,
    attempts: int = 5,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    retry_ambiguous_commit: bool = False,
) -> _T:
    """``await work(session)`` in a fresh session from ``factory`` (an
    ``async_sessionmaker``), commit, and return what ``work`` returned; retried as
    ``run_transaction`` retries (see there for each argument)."""
    check_retry_arguments(attempts, base_delay, max_delay)
    attempt = 0
    while True:
        attempt += 1
        session = factory()
        committing = False
        try:
            result = await work(session)
            await session.flush()
            committing = True
            await session.commit()
        except BaseException as err:
            cleanup = greenlet_spawn(close_after_error, session.sync_session, err)
            await run_to_completion(cleanup)
            policy = (attempts, retry_on, retry_ambiguous_commit)
            if not will_retry(err, attempt, committing, *policy):
                raise
        else:
            await run_to_completion(session.close())
            return result
        await asyncio.sleep(retry_pause(attempt, base_delay, max_delay))
