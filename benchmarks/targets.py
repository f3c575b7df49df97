"""The performance targets, and how a run measures up to them.

Targets are defined for the default scale on the default SQLite file database; at other
scales or on a server the comparison is still printed, labelled as informational. A
MISS never changes the exit status: only correctness failures do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .results import VariantResult, label

REFERENCE_CONDITIONS = "target defined for SQLite default scale"


@dataclass(frozen=True)
class Target:
    """``impl`` compared with ``reference`` in the first of ``variants`` that was run.

    ``at_most``: median(impl) / median(reference) <= threshold.
    ``faster_by``: median(reference) / median(impl) >= threshold.
    """

    scenario: str
    variants: tuple[str, ...]
    impl: str
    reference: str
    kind: Literal["at_most", "faster_by"]
    threshold: float
    text: str

    @property
    def requirement(self) -> str:
        ref = label(self.reference)
        if self.kind == "at_most":
            return f"<= {self.threshold:g}x {ref}"
        return f">= {self.threshold:g}x faster than {ref}"


TARGETS: tuple[Target, ...] = (
    Target("S1", ("S1/load",), "sessionkit", "core", "at_most", 1.8, "load: vs Core fetchall"),
    Target("S2", ("S2/client",), "sessionkit", "core", "at_most", 2.0, "bulk insert, client keys"),
    Target(
        "S2",
        ("S2/generated",),
        "sessionkit",
        "orm",
        "faster_by",
        5.0,
        "bulk insert, generated keys",
    ),
    Target(
        "S3",
        ("S3/memory", "S3/server"),
        "sessionkit",
        "core",
        "at_most",
        2.0,
        "single insert+commit, in memory (server)",
    ),
    Target("S4", ("S4/cold",), "sessionkit", "core", "at_most", 1.3, "get, cold"),
    Target("S4", ("S4/warm",), "sessionkit", "dict", "at_most", 3.0, "get, warm"),
    Target("S5", ("S5/update",), "sessionkit", "core", "at_most", 1.5, "update + commit"),
    Target("S6", ("S6/refresh",), "sessionkit", "orm", "faster_by", 2.0, "refresh, default"),
    Target(
        "S6",
        ("S6/refresh",),
        "sessionkit_batch",
        "core",
        "at_most",
        2.0,
        "refresh, batch_refresh=True",
    ),
    Target("S7", ("S7/rollback",), "sessionkit", "orm", "faster_by", 15.0, "rollback"),
    Target("S8", ("S8/memory",), "sessionkit", "floor", "at_most", 1.5, "memory per object"),
    Target("S9", ("S9/books",), "sessionkit", "core", "at_most", 1.3, "authors + books"),
    Target(
        "S9",
        ("S9/books",),
        "sessionkit",
        "orm_selectin",
        "faster_by",
        3.0,
        "authors + books, vs selectinload",
    ),
    Target(
        "S9",
        ("S9/books",),
        "sessionkit",
        "orm",
        "faster_by",
        5.0,
        "authors + books, vs ORM lazy",
    ),
    Target(
        "S10",
        ("S10/insert",),
        "sessionkit",
        "core",
        "at_most",
        2.0,
        "insert authors + books",
    ),
    Target(
        "S10",
        ("S10/insert",),
        "sessionkit",
        "orm",
        "faster_by",
        4.0,
        "insert authors + books, vs ORM",
    ),
    Target("S11", ("S11/load",), "sessionkit", "core", "at_most", 1.3, "asyncio load"),
    Target("S11", ("S11/load",), "sessionkit", "orm", "faster_by", 4.0, "asyncio load, vs ORM"),
    Target("S12", ("S12/generated",), "sessionkit", "orm", "faster_by", 3.0, "asyncio bulk insert"),
    Target("S13", ("S13/update",), "sessionkit", "orm", "faster_by", 3.0, "asyncio update"),
)

Status = Literal["PASS", "MISS", "n/a", "FAIL", "not run"]


@dataclass
class TargetResult:
    target: Target
    variant: str | None
    value: float | None
    status: Status
    authoritative: bool
    reason: str | None = None

    @property
    def measured(self) -> str:
        if self.value is None:
            return "-"
        ref = label(self.target.reference)
        digits = 2 if self.target.kind == "at_most" else 1
        # Show one more digit when rounding would hide which side of the threshold it is.
        if f"{self.value:.{digits}f}" == f"{self.target.threshold:.{digits}f}":
            digits += 2
        if self.target.kind == "at_most":
            return f"{self.value:.{digits}f}x {ref}"
        return f"{self.value:.{digits}f}x faster than {ref}"

    @property
    def verdict(self) -> str:
        """PASS/MISS, or (pass)/(miss) when not measured under the target's conditions."""
        if self.status in ("PASS", "MISS") and not self.authoritative:
            return f"({self.status.lower()})"
        return self.status

    def to_json(self) -> dict[str, Any]:
        t = self.target
        return {
            "scenario": t.scenario,
            "variant": self.variant,
            "description": t.text,
            "implementation": t.impl,
            "reference": t.reference,
            "kind": t.kind,
            "threshold": t.threshold,
            "requirement": f"{label(t.impl)} {t.requirement}",
            "value": self.value,
            "status": self.status,
            "authoritative": self.authoritative,
            "note": None if self.authoritative else REFERENCE_CONDITIONS,
            "reason": self.reason,
        }


def evaluate(
    target: Target, results: dict[str, VariantResult], authoritative: bool
) -> TargetResult:
    key = next((k for k in target.variants if k in results), None)
    if key is None:
        return TargetResult(target, None, None, "not run", authoritative)
    vr = results[key]
    mine, ref = vr.get(target.impl), vr.get(target.reference)
    if mine is None or ref is None:
        return TargetResult(target, key, None, "n/a", authoritative, "not measured here")
    if mine.status == "n/a":
        return TargetResult(target, key, None, "n/a", authoritative, mine.message)
    if not mine.ok or not ref.ok:
        bad = mine if not mine.ok else ref
        return TargetResult(target, key, None, "FAIL", authoritative, bad.message)
    ratio = vr.ratio(target.impl, target.reference)
    assert ratio is not None
    if target.kind == "at_most":
        value, passed = ratio, ratio <= target.threshold
    else:
        value = 1.0 / ratio
        passed = value >= target.threshold
    return TargetResult(target, key, value, "PASS" if passed else "MISS", authoritative)


def evaluate_all(results: dict[str, VariantResult], authoritative: bool) -> list[TargetResult]:
    return [evaluate(t, results, authoritative) for t in TARGETS]


def for_variant(key: str, evaluated: list[TargetResult]) -> list[TargetResult]:
    return [r for r in evaluated if r.variant == key]
