"""Running one variant: warm-up, repeats, timing or memory measurement, checks.

The timed region is exactly ``Trial.run``: whatever an implementation needs beforehand
(a loaded session, a connection, the source data) is built by its factory before the
clock starts, and everything it checks or closes happens after the clock stops.
Implementations of one variant take turns repeat by repeat, so slow drift on the
machine (thermal, background work) spreads over all of them alike.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .results import ImplResult, VariantResult

Unit = Literal["s", "B/obj"]


class CheckFailed(AssertionError):
    """An implementation produced a wrong result; the scenario reports FAIL."""


def _identity(result: Any) -> Any:
    return result


def _noop() -> None:
    return None


@dataclass
class Trial:
    """One prepared run of one implementation.

    ``run`` is the measured operation; ``observe`` turns its result into plain data for
    the scenario's check (outside the timer); ``close`` releases sessions/connections.
    """

    run: Callable[[], Any]
    observe: Callable[[Any], Any] = _identity
    close: Callable[[], None] = _noop


@dataclass
class Entry:
    """One implementation taking part in a variant."""

    impl: str
    make: Callable[[bool], Trial]  # argument: True for the warm-up run
    check: Callable[[Any, bool], None]  # (observed, warmup) -> raises CheckFailed
    unavailable: str | None = None  # reason it cannot run here ("n/a")


@dataclass
class Variant:
    """One measured comparison: a scenario (or one of its variants) and its contenders."""

    scenario: str
    key: str
    title: str
    count: int
    entries: list[Entry]
    unit: Unit = "s"
    ratio_to: tuple[str, ...] = ("core", "orm")
    prepare: Callable[[bool], None] = field(default=lambda warmup: None)
    note: str = ""
    #: Stop starting new repeats once the measured rounds took this long (at least one
    #: round always runs). Only for variants whose cost is the machine's, not the code's.
    budget_s: float | None = None


class Progress:
    """A one-line status on stderr (rewritten in place on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self._width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(text))
            sys.stderr.write("\r" + text + " " * pad)
            sys.stderr.flush()
            self._width = len(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.tty and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def _measure(trial: Trial, unit: Unit, count: int) -> tuple[float, Any]:
    gc.collect()
    if unit == "s":
        t0 = time.perf_counter()
        result = trial.run()
        elapsed = time.perf_counter() - t0
        return elapsed, result
    before = tracemalloc.get_traced_memory()[0]
    result = trial.run()
    gc.collect()  # keep only what the result holds on to
    after = tracemalloc.get_traced_memory()[0]
    return (after - before) / count, result


def _attempt(variant: Variant, entry: Entry, warmup: bool) -> float:
    """Prepare, measure, check and close once; returns the measurement."""
    variant.prepare(warmup)
    trial = entry.make(warmup)
    try:
        value, result = _measure(trial, variant.unit, variant.count)
        observed = trial.observe(result)
        del result
        entry.check(observed, warmup)
        return value
    finally:
        trial.close()


def run_variant(variant: Variant, repeat: int, warmup: bool, progress: Progress) -> VariantResult:
    """All repeats of all implementations of ``variant``; failures are recorded, not raised."""
    results = {e.impl: ImplResult(impl=e.impl) for e in variant.entries}
    for entry in variant.entries:
        if entry.unavailable is not None:
            results[entry.impl].status = "n/a"
            results[entry.impl].message = entry.unavailable
    active = [e for e in variant.entries if e.unavailable is None]
    tracing = variant.unit == "B/obj"
    if tracing:
        tracemalloc.start()
    stopped_at: int | None = None
    spent = 0.0
    try:
        rounds = ([0] if warmup else []) + list(range(1, repeat + 1))
        for rnd in rounds:
            if rnd > 1 and variant.budget_s is not None and spent >= variant.budget_s:
                stopped_at = rnd - 1
                break
            round_start = time.perf_counter()
            for entry in active:
                res = results[entry.impl]
                if res.status != "ok":
                    continue
                label = "warm-up" if rnd == 0 else f"repeat {rnd}/{repeat}"
                progress.show(f"{variant.scenario} {variant.title} | {entry.impl} | {label}")
                try:
                    value = _attempt(variant, entry, warmup=rnd == 0)
                except CheckFailed as err:
                    res.status = "FAIL"
                    res.message = f"check failed: {err}"
                except Exception as err:
                    res.status = "ERROR"
                    res.message = f"{type(err).__name__}: {err}"
                    res.traceback = traceback.format_exc()
                else:
                    if rnd:
                        res.samples.append(value)
            if rnd:
                spent += time.perf_counter() - round_start
    finally:
        if tracing:
            tracemalloc.stop()
        progress.clear()
    return VariantResult(
        scenario=variant.scenario,
        key=variant.key,
        title=variant.title,
        count=variant.count,
        unit=variant.unit,
        ratio_to=variant.ratio_to,
        note=variant.note,
        impls=[results[e.impl] for e in variant.entries],
        repeat=repeat,
        budget_s=variant.budget_s if stopped_at is not None else None,
    )
