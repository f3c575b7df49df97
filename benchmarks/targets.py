"""The performance targets, and how a run measures up to them.

Each target is declared for one database (SQLite, PostgreSQL or MariaDB) at the default
scale: the ratios differ between databases because the driver and the round trips take
a different share of the time. A run evaluates only its own database's targets; at
another scale it still prints the comparison, labelled as informational. A MISS never
changes the exit status: only correctness failures do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .config import DB_KINDS, DbName
from .results import VariantResult, label

Kind = Literal["at_most", "faster_by"]


@dataclass(frozen=True)
class Target:
    """``impl`` compared with ``reference`` in the first of ``variants`` that was run,
    on the database ``db`` at the default scale.

    ``at_most``: median(impl) / median(reference) <= threshold.
    ``faster_by``: median(reference) / median(impl) >= threshold.
    """

    db: DbName
    scenario: str
    variants: tuple[str, ...]
    impl: str
    reference: str
    kind: Kind
    threshold: float
    text: str

    @property
    def requirement(self) -> str:
        ref = label(self.reference)
        if self.kind == "at_most":
            return f"<= {self.threshold:g}x {ref}"
        return f">= {self.threshold:g}x faster than {ref}"

    @property
    def defined_for(self) -> str:
        """``SQLite, default scale``: the conditions under which a PASS/MISS counts."""
        return f"{DB_KINDS[self.db]}, default scale"


def _declare(
    scenario: str,
    variants: str | tuple[str, ...],
    impl: str,
    reference: str,
    kind: Kind,
    text: str,
    *,
    sqlite: float | None = None,
    postgresql: float | None = None,
    mariadb: float | None = None,
) -> tuple[Target, ...]:
    """One requirement, with its threshold on each database that has it."""
    keys = (variants,) if isinstance(variants, str) else variants
    thresholds: dict[DbName, float | None] = {
        "sqlite": sqlite,
        "postgresql": postgresql,
        "mariadb": mariadb,
    }
    return tuple(
        Target(db, scenario, keys, impl, reference, kind, t, text)
        for db, t in thresholds.items()
        if t is not None
    )


# One row per requirement; a database without a threshold has no such target.
# fmt: off
TARGETS: tuple[Target, ...] = (
    *_declare(
        "S1", "S1/load", "sessionkit", "core", "at_most", "load: vs Core fetchall",
        sqlite=1.3, postgresql=1.8, mariadb=1.8,
    ),
    *_declare(
        "S2", "S2/client", "sessionkit", "core", "at_most", "bulk insert, client keys",
        sqlite=2.0, postgresql=2.0,
    ),
    *_declare(
        "S2", "S2/generated", "sessionkit", "core", "at_most",
        "bulk insert, generated keys: faster than every peer (best measured peer: 5.4x Core)",
        sqlite=2.0,
    ),
    *_declare(
        "S2", "S2/generated", "sessionkit", "orm", "faster_by",
        "bulk insert, generated keys, vs ORM",
        sqlite=3.0, postgresql=3.0, mariadb=3.0,
    ),
    *_declare(
        "S3", ("S3/memory", "S3/server"), "sessionkit", "core", "at_most",
        "single insert+commit, in memory (server)",
        sqlite=1.5, postgresql=1.5,
    ),
    *_declare(
        "S4", "S4/cold", "sessionkit", "core", "at_most", "get, cold",
        sqlite=1.3, postgresql=1.3,
    ),
    *_declare(
        "S4", "S4/warm", "sessionkit", "dict", "at_most", "get, warm",
        sqlite=3.0, postgresql=3.0,
    ),
    *_declare(
        "S5", "S5/update", "sessionkit", "core", "at_most", "update + commit",
        sqlite=1.5, postgresql=1.5, mariadb=1.5,
    ),
    *_declare(
        "S6", "S6/refresh", "sessionkit", "orm", "faster_by", "refresh, default",
        sqlite=2.0, postgresql=2.0,
    ),
    *_declare(
        "S6", "S6/refresh", "sessionkit_batch", "core", "at_most",
        "refresh, batch_refresh=True",
        sqlite=2.0, postgresql=2.0,
    ),
    *_declare(
        "S7", "S7/rollback", "sessionkit", "orm", "faster_by", "rollback",
        sqlite=15.0, postgresql=15.0, mariadb=15.0,
    ),
    *_declare(
        "S8", "S8/memory", "sessionkit", "floor", "at_most", "memory per object",
        sqlite=1.5, postgresql=1.5, mariadb=1.5,
    ),
    *_declare(
        "S9", "S9/books", "sessionkit", "core", "at_most", "authors + books",
        sqlite=1.3, postgresql=1.3, mariadb=1.3,
    ),
    *_declare(
        "S9", "S9/books", "sessionkit", "orm_selectin", "faster_by",
        "authors + books, vs selectinload",
        sqlite=3.0, postgresql=3.0, mariadb=3.0,
    ),
    *_declare(
        "S9", "S9/books", "sessionkit", "orm", "faster_by", "authors + books, vs ORM lazy",
        sqlite=5.0, postgresql=5.0, mariadb=5.0,
    ),
    *_declare(
        "S10", "S10/insert", "sessionkit", "core", "at_most", "insert authors + books",
        sqlite=2.0, postgresql=2.0,
    ),
    *_declare(
        "S10", "S10/insert", "sessionkit", "orm", "faster_by",
        "insert authors + books, vs ORM",
        sqlite=4.0, postgresql=4.0,
    ),
    *_declare(
        "S11", "S11/load", "sessionkit", "core", "at_most", "asyncio load",
        sqlite=1.3, postgresql=1.3, mariadb=1.3,
    ),
    *_declare(
        "S11", "S11/load", "sessionkit", "orm", "faster_by", "asyncio load, vs ORM",
        sqlite=4.0, postgresql=4.0, mariadb=4.0,
    ),
    *_declare(
        "S12", "S12/generated", "sessionkit", "orm", "faster_by", "asyncio bulk insert",
        sqlite=3.0, postgresql=3.0, mariadb=3.0,
    ),
    *_declare(
        "S13", "S13/update", "sessionkit", "orm", "faster_by", "asyncio update",
        sqlite=3.0, postgresql=3.0, mariadb=3.0,
    ),
)
# fmt: on

Status = Literal["PASS", "MISS", "n/a", "FAIL", "not run"]


def targets_for(db: DbName) -> tuple[Target, ...]:
    """The targets a run on ``db`` is measured against (other databases' are not shown)."""
    return tuple(t for t in TARGETS if t.db == db)


def is_authoritative(target: Target, db: DbName, reference_scale: bool) -> bool:
    """True when a run on ``db`` at this scale meets the conditions ``target`` is for."""
    return target.db == db and reference_scale


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
            "db": t.db,
            "defined_for": t.defined_for,
            "implementation": t.impl,
            "reference": t.reference,
            "kind": t.kind,
            "threshold": t.threshold,
            "requirement": f"{label(t.impl)} {t.requirement}",
            "value": self.value,
            "status": self.status,
            "authoritative": self.authoritative,
            "note": None if self.authoritative else f"informational: defined for {t.defined_for}",
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


def evaluate_all(
    results: dict[str, VariantResult], db: DbName, reference_scale: bool
) -> list[TargetResult]:
    """``db``'s targets measured against ``results``; ``reference_scale``: the run is at
    the default scale."""
    return [evaluate(t, results, is_authoritative(t, db, reference_scale)) for t in targets_for(db)]


def for_variant(key: str, evaluated: list[TargetResult]) -> list[TargetResult]:
    return [r for r in evaluated if r.variant == key]
