"""Holding back the cyclic garbage collector's automatic passes during bulk work.

CPython runs its cyclic collector after every few hundred container allocations, and a
full pass walks every tracked object in the process. Building or bookkeeping tens of
thousands of objects therefore triggers passes over an ever larger heap; measured, that
is about half the cost of loading 100,000 rows (README, "Performance"). The objects
sessionkit creates in these loops form no reference cycles, so nothing is lost by
letting the collector catch up once afterwards instead.

The collector belongs to the application, so this never enables or disables it. For the
length of a bulk operation it raises the first-generation threshold to a value no loop
reaches, and afterwards puts back the thresholds it found, but only if they still hold
its own value: a ``gc.set_threshold()``, ``gc.disable()`` or ``gc.enable()`` the
application makes at any time, from any thread, stays as the application made it. Each
swap is one compare-and-set done entirely in C (built-in iterators consumed by a
``deque``), so no other thread and no signal handler can run between its read and its
write. Overlapping operations in several threads share one swap.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import chain, starmap

BULK = 1000
"""Below this many objects the pause is not worth its cost."""

HELD = 1_000_000_007
"""The first-generation threshold while held back: far beyond any loop, and an odd
number no application picks, so that finding it again proves nobody changed it."""

_lock = threading.Lock()
_depth = 0
_saved: list[tuple[int, int, int]] = []


def _hold() -> tuple[int, int, int] | None:
    """Atomically: remember the thresholds and set the held-back one."""
    found: list[tuple[int, int, int]] = []
    deque(
        chain(
            map(found.append, starmap(gc.get_threshold, ((),))),
            starmap(gc.set_threshold, ((HELD,),)),
        ),
        maxlen=0,
    )
    return found[0] if found else None


def _release(saved: tuple[int, int, int]) -> None:
    """Atomically: put ``saved`` back if the thresholds are still the held-back ones."""
    held = (HELD, saved[1], saved[2])
    deque(
        starmap(
            gc.set_threshold, filter(None, map({held: saved}.get, starmap(gc.get_threshold, ((),))))
        ),
        maxlen=0,
    )


_NOT_PAUSED = nullcontext()


def paused(count: int) -> AbstractContextManager[None]:
    """Hold the collector back while ``count`` objects are worked on, if that is many.

    Small operations (every commit of a few objects) get a shared no-op context: the
    generator-based one costs more than the pause saves there.
    """
    if count < BULK or not gc.isenabled():
        return _NOT_PAUSED
    return _paused()


@contextmanager
def _paused() -> Iterator[None]:
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            saved = _hold()
            _saved[:] = [] if saved is None else [saved]
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved:
                _release(_saved.pop())
