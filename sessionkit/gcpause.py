"""Pausing the cyclic garbage collector around bulk work.

CPython runs its cyclic collector after every few hundred container allocations, and a
full pass walks every tracked object in the process. Building or bookkeeping tens of
thousands of objects therefore triggers passes over an ever larger heap; measured, that
was about half the cost of loading 100,000 rows. The objects sessionkit creates in these
loops form no reference cycles, so nothing is lost by collecting once afterwards instead.
Collection is only paused when it was enabled, and always resumed, even on error.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK = 1000
"""Below this many objects the pause is not worth its two calls."""


@contextmanager
def paused(count: int) -> Iterator[None]:
    if count < BULK or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
