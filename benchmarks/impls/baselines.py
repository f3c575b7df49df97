"""Hand-written floors: what the work would cost with no library bookkeeping at all.

They answer "how close to the minimum is sessionkit?", which a comparison with other
libraries alone cannot: an identity map needs at least one object per row and one dict
entry per key; a rollback needs at least one pass over the objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from ..harness import CheckFailed, Trial
from ..models import SlotUser, row_of
from ..schema import Row
from .core import SELECT_ALL


def load_floor(engine: Engine) -> Trial:
    """S1 floor: Core ``fetchall()``, then one ``__slots__`` object per row in a dict by pk."""
    conns: list[Any] = []

    def run() -> dict[int, SlotUser]:
        conn = engine.connect()
        conns.append(conn)
        rows = conn.execute(SELECT_ALL).fetchall()
        by_pk: dict[int, SlotUser] = {}
        for r in rows:
            by_pk[r[0]] = SlotUser(*r)
        return by_pk

    def close() -> None:
        for conn in conns:
            conn.close()

    return Trial(run, lambda by_pk: [row_of(o) for o in by_pk.values()], close)


def get_dict(rows: Sequence[Row], keys: Sequence[int]) -> Trial:
    """S4 warm baseline: ``d[pk]`` on a plain dict of objects."""
    d = {r[0]: SlotUser(*r) for r in rows}

    def run() -> list[SlotUser]:
        return [d[k] for k in keys]

    return Trial(run, lambda objs: [row_of(o) for o in objs])


class _Tracked:
    """A plain object with a dict of pending changes, as a minimal change tracker keeps."""

    def __init__(self, visits: int) -> None:
        self.visits = visits
        self.changes = {"visits": visits}


def rollback_floor(n: int) -> Trial:
    """S7 floor: one pass clearing a dict attribute on ``n`` plain objects."""
    objs = [_Tracked(i) for i in range(n)]

    def run() -> None:
        for obj in objs:
            obj.changes.clear()

    def observe(_: None) -> int:
        if any(obj.changes for obj in objs):
            raise CheckFailed("some objects still hold changes")
        return n

    return Trial(run, observe)


def memory_floor(engine: Engine) -> Trial:
    """S8 floor: one ``__slots__`` object per row holding the same values, in a list."""
    conn = engine.connect()

    def run() -> list[SlotUser]:
        rows = conn.execute(SELECT_ALL).fetchall()
        return [SlotUser(*r) for r in rows]

    return Trial(run, lambda objs: [row_of(o) for o in objs], conn.close)
