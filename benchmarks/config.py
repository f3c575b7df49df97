"""Run configuration: how much work each scenario does and how often it is repeated.

Row counts live in one place so that ``--scale`` changes every scenario consistently and
the targets can tell whether they are being checked at the scale they were defined for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: The databases the suite runs on (MySQL URLs count as MariaDB), as targets name them.
DbName = Literal["sqlite", "postgresql", "mariadb"]

#: Their display names.
DB_KINDS: dict[DbName, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}

#: Scenario ids in run order, with their one-line titles.
SCENARIOS: dict[str, str] = {
    "S1": "load",
    "S2": "bulk insert",
    "S3": "single insert + commit",
    "S4": "get by primary key",
    "S5": "update + commit",
    "S6": "refresh after commit",
    "S7": "rollback",
    "S8": "memory per loaded object",
    "S9": "load authors + read their books",
    "S10": "insert authors + books through the collections",
    "S11": "asyncio: load",
    "S12": "asyncio: bulk insert",
    "S13": "asyncio: update + commit",
}

#: Named scales: a factor applied to the default row counts.
SCALES: dict[str, float] = {
    "tiny": 0.02,  # smoke tests: a few seconds in all
    "small": 0.1,
    "default": 1.0,
    "large": 5.0,
}

#: Default-scale row counts (the numbers the targets are defined for).
BASE_COUNTS: dict[str, int] = {
    "load": 100_000,
    "bulk_insert": 10_000,
    "single_insert": 2_000,
    "get": 10_000,
    "update": 10_000,
    "refresh": 10_000,
    "rollback": 10_000,
    "memory": 10_000,
    "authors": 1_000,
    "authors_insert": 1_000,
}

#: S9, S10: books per author (fixed; ``--scale`` changes the number of authors).
BOOKS_PER_AUTHOR = 10

#: No scenario runs on fewer rows than this, whatever the scale.
MIN_COUNT = 20


@dataclass(frozen=True)
class Counts:
    """Rows (or operations) per scenario at the chosen scale."""

    load: int
    bulk_insert: int
    single_insert: int
    get: int
    update: int
    refresh: int
    rollback: int
    memory: int
    authors: int
    authors_insert: int

    @classmethod
    def for_factor(cls, factor: float) -> Counts:
        return cls(**{k: max(MIN_COUNT, round(v * factor)) for k, v in BASE_COUNTS.items()})


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know, parsed from the command line."""

    scale_name: str = "default"
    factor: float = 1.0
    repeat: int = 5
    warmup: bool = True
    db_url: str | None = None  # None: a SQLite file in a temporary directory
    only: tuple[str, ...] = tuple(SCENARIOS)
    json_path: str | None = None
    plot_path: str | None = None
    progress: bool = True
    counts: Counts = field(default_factory=lambda: Counts.for_factor(1.0))

    @property
    def is_reference_scale(self) -> bool:
        """True when the targets' own conditions hold for the scale (default, 1.0)."""
        return self.factor == 1.0


def parse_scale(text: str) -> tuple[str, float]:
    """``small``/``default``/``large``/``tiny`` or a positive number such as ``0.5``."""
    if text in SCALES:
        return text, SCALES[text]
    try:
        factor = float(text)
    except ValueError:
        raise ValueError(
            f"unknown scale {text!r}: use one of {', '.join(SCALES)} or a positive number"
        ) from None
    if factor <= 0:
        raise ValueError(f"scale must be positive, got {text!r}")
    return text, factor


def parse_only(text: str) -> tuple[str, ...]:
    """``S1,S4`` (case-insensitive, also ``1,4``) in run order, unknown ids rejected."""
    wanted = set()
    for part in text.split(","):
        part = part.strip().upper()
        if not part:
            continue
        if not part.startswith("S"):
            part = "S" + part
        if part not in SCENARIOS:
            raise ValueError(f"unknown scenario {part!r}: choose from {', '.join(SCENARIOS)}")
        wanted.add(part)
    if not wanted:
        raise ValueError("--only needs at least one scenario id, e.g. --only S1,S4")
    return tuple(s for s in SCENARIOS if s in wanted)
