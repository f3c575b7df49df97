"""Measured figures and the statistics derived from them (median, range, ratios)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

#: Display names of the implementations.
LABELS: dict[str, str] = {
    "sessionkit": "sessionkit",
    "sessionkit_batch": "sessionkit batch_refresh",
    "sessionkit_typed": "sessionkit typed model",
    "orm": "ORM",
    "orm_selectin": "ORM selectinload",
    "core": "Core",
    "dbapi": "DB-API",
    "floor": "floor",
    "dict": "dict",
}


def label(impl: str) -> str:
    return LABELS.get(impl, impl)


@dataclass
class ImplResult:
    """One implementation's samples in one variant (status ok / FAIL / ERROR / n/a)."""

    impl: str
    samples: list[float] = field(default_factory=list)
    status: str = "ok"
    message: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.ok else None

    @property
    def min(self) -> float | None:
        return min(self.samples) if self.ok else None

    @property
    def max(self) -> float | None:
        return max(self.samples) if self.ok else None


@dataclass
class VariantResult:
    scenario: str
    key: str
    title: str
    count: int
    unit: str
    ratio_to: tuple[str, ...]
    note: str
    impls: list[ImplResult]
    repeat: int = 0  # repeats asked for
    budget_s: float | None = None  # set when the variant's time budget cut repeats short

    @property
    def measured(self) -> int:
        """Repeats measured for every implementation that ran correctly."""
        return min((len(r.samples) for r in self.impls if r.ok), default=0)

    def get(self, impl: str) -> ImplResult | None:
        return next((r for r in self.impls if r.impl == impl), None)

    def median(self, impl: str) -> float | None:
        r = self.get(impl)
        return None if r is None else r.median

    def ratio(self, impl: str, reference: str) -> float | None:
        """median(impl) / median(reference); None if either is missing or failed."""
        a, b = self.median(impl), self.median(reference)
        if a is None or b is None or b == 0:
            return None
        return a / b

    @property
    def failed(self) -> bool:
        return any(r.status in ("FAIL", "ERROR") for r in self.impls)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "key": self.key,
            "title": self.title,
            "count": self.count,
            "unit": self.unit,
            "note": self.note,
            "checks": "FAIL" if self.failed else "ok",
            "repeats_requested": self.repeat,
            "repeats_measured": self.measured,
            "time_budget_s": self.budget_s,
            "implementations": {
                r.impl: {
                    "label": label(r.impl),
                    "status": r.status,
                    "message": r.message,
                    "traceback": r.traceback,
                    "samples": r.samples,
                    "median": r.median,
                    "min": r.min,
                    "max": r.max,
                    "ratios": {ref: self.ratio(r.impl, ref) for ref in self.ratio_to},
                }
                for r in self.impls
            },
        }
