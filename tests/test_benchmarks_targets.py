"""Which targets a benchmark run is measured against, when its verdict counts, and how
targets are reported and drawn: pure functions on synthetic results, no database."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from benchmarks import report
from benchmarks.config import DB_KINDS, DbName
from benchmarks.db import BACKENDS, Database
from benchmarks.plot import target_lines
from benchmarks.results import ImplResult, VariantResult
from benchmarks.targets import (
    TARGETS,
    Target,
    evaluate_all,
    is_authoritative,
    targets_for,
)

README = Path(__file__).resolve().parent.parent / "benchmarks" / "README.md"
DBS: tuple[DbName, ...] = ("sqlite", "postgresql", "mariadb")


def variant(
    key: str, ratio_to: tuple[str, ...] = ("core", "orm"), **medians: float
) -> VariantResult:
    """A variant measured once per implementation, with these times."""
    return VariantResult(
        scenario=key.split("/")[0],
        key=key,
        title=key,
        count=100,
        unit="s",
        ratio_to=ratio_to,
        note="",
        impls=[ImplResult(impl, samples=[t]) for impl, t in medians.items()],
        repeat=1,
    )


def find(db: DbName, key: str, impl: str, reference: str) -> Target:
    matches = [
        t
        for t in targets_for(db)
        if key in t.variants and t.impl == impl and t.reference == reference
    ]
    assert len(matches) == 1, (db, key, impl, reference, matches)
    return matches[0]


def test_every_target_belongs_to_one_database_and_each_database_has_its_own() -> None:
    assert {t.db for t in TARGETS} == set(DBS)
    assert sum(len(targets_for(db)) for db in DBS) == len(TARGETS)
    for db in DBS:
        assert targets_for(db), db
        assert all(t.db == db for t in targets_for(db))
        assert {t.defined_for for t in targets_for(db)} == {f"{DB_KINDS[db]}, default scale"}
        # One target per (variant, implementation, reference) on a database.
        keys = [(t.variants, t.impl, t.reference) for t in targets_for(db)]
        assert len(keys) == len(set(keys)), db


def test_thresholds_differ_by_database_where_declared() -> None:
    assert find("sqlite", "S1/load", "sessionkit", "core").threshold == 1.3
    assert find("postgresql", "S1/load", "sessionkit", "core").threshold == 1.8
    assert find("mariadb", "S1/load", "sessionkit", "core").threshold == 1.8
    assert find("sqlite", "S2/generated", "sessionkit", "core").kind == "at_most"
    for db in DBS:
        generated = find(db, "S2/generated", "sessionkit", "orm")
        assert (generated.kind, generated.threshold) == ("faster_by", 3.0)
    assert not [
        t
        for t in targets_for("postgresql")
        if t.reference == "core" and "S2/generated" in t.variants
    ]
    mariadb = {t.scenario for t in targets_for("mariadb")}
    assert mariadb == {"S1", "S2", "S5", "S7", "S8", "S9", "S11", "S12", "S13"}


def test_a_run_is_authoritative_only_on_the_targets_database_at_the_default_scale() -> None:
    target = find("postgresql", "S7/rollback", "sessionkit", "orm")
    assert is_authoritative(target, "postgresql", reference_scale=True)
    assert not is_authoritative(target, "postgresql", reference_scale=False)
    assert not is_authoritative(target, "sqlite", reference_scale=True)
    assert not is_authoritative(target, "mariadb", reference_scale=True)


def test_the_same_figures_pass_on_one_database_and_miss_on_another() -> None:
    # sessionkit at 1.6x Core: within PostgreSQL's and MariaDB's 1.8x, not SQLite's 1.3x.
    results = {"S1/load": variant("S1/load", sessionkit=1.6, core=1.0, orm=3.0)}
    verdicts = {}
    for db in DBS:
        evaluated = evaluate_all(results, db, reference_scale=True)
        assert [r.target for r in evaluated] == list(targets_for(db))
        (s1,) = [r for r in evaluated if r.variant == "S1/load"]
        assert s1.authoritative and s1.value == pytest.approx(1.6)
        verdicts[db] = s1.verdict
        assert {r.status for r in evaluated if r.variant is None} == {"not run"}
    assert verdicts == {"sqlite": "MISS", "postgresql": "PASS", "mariadb": "PASS"}


def test_at_another_scale_the_verdicts_are_informational() -> None:
    results = {"S1/load": variant("S1/load", sessionkit=1.6, core=1.0, orm=3.0)}
    evaluated = evaluate_all(results, "postgresql", reference_scale=False)
    (s1,) = [r for r in evaluated if r.variant == "S1/load"]
    assert (s1.status, s1.verdict, s1.authoritative) == ("PASS", "(pass)", False)
    doc = s1.to_json()
    assert doc["db"] == "postgresql"
    assert doc["defined_for"] == "PostgreSQL, default scale"
    assert doc["note"] == "informational: defined for PostgreSQL, default scale"


def test_faster_by_is_the_reference_time_over_the_implementations() -> None:
    def rollback(orm: float) -> str:
        results = {"S7/rollback": variant("S7/rollback", sessionkit=1.0, core=0.5, orm=orm)}
        evaluated = evaluate_all(results, "mariadb", reference_scale=True)
        (s7,) = [r for r in evaluated if r.variant == "S7/rollback"]
        return s7.status

    assert rollback(orm=15.0) == "PASS"
    assert rollback(orm=14.9) == "MISS"


def test_the_report_names_the_database_a_target_is_defined_for() -> None:
    vr = variant("S7/rollback", sessionkit=1.0, core=0.5, orm=20.0)
    evaluated = evaluate_all({vr.key: vr}, "mariadb", reference_scale=False)
    table = report.variant_table(vr, [r for r in evaluated if r.variant == vr.key], repeat=1)
    assert (
        "target: sessionkit >= 15x faster than ORM: 20.0x faster than ORM  (pass)"
        "  (defined for MariaDB, default scale)"
    ) in table
    summary = report.summary(evaluated, "MariaDB", "tiny")
    assert summary.startswith("Targets for MariaDB  (informational at scale tiny")
    assert "defined for" in summary.splitlines()[1]
    assert summary.count("MariaDB, default scale") == len(targets_for("mariadb"))
    assert "SQLite" not in summary and "PostgreSQL" not in summary
    authoritative = report.summary(
        evaluate_all({vr.key: vr}, "mariadb", True), "MariaDB", "default"
    )
    assert authoritative.splitlines()[0] == "Targets for MariaDB"
    assert "  PASS  " in authoritative


def test_mysql_and_mariadb_urls_count_as_mariadb() -> None:
    for url in ("mysql+pymysql://u@h/db", "mariadb+pymysql://u@h/db", "mysql://u@h/db"):
        assert BACKENDS[make_url(url).get_backend_name()] == "mariadb", url
    assert BACKENDS[make_url("postgresql+psycopg://u@h/db").get_backend_name()] == "postgresql"
    db = Database(None)
    try:
        assert (db.dialect, db.kind) == ("sqlite", "SQLite")
    finally:
        db.close()
    with pytest.raises(ValueError, match="unsupported database 'oracle'"):
        Database("oracle://u@h/db")


def _readme_targets() -> Counter[tuple[str, str, tuple[float | None, ...]]]:
    """(scenario, kind, thresholds per database) of each row of the README's table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows: Counter[tuple[str, str, tuple[float | None, ...]]] = Counter()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| S"):
            continue
        scenario = cells[0].split()[0]
        kind = "faster_by" if ">=" in cells[1] else "at_most"
        thresholds = tuple(None if c == "-" else float(c.rstrip("x")) for c in cells[2:5])
        rows[(scenario, kind, thresholds)] += 1
    return rows


def test_the_readme_table_lists_the_declared_targets() -> None:
    declared: dict[tuple[str, str, str, str, str], dict[str, float]] = {}
    for t in TARGETS:
        declared.setdefault((t.scenario, t.variants[0], t.impl, t.reference, t.kind), {})[t.db] = (
            t.threshold
        )
    expected = Counter(
        (scenario, kind, tuple(by_db.get(db) for db in DBS))
        for (scenario, _, _, _, kind), by_db in declared.items()
    )
    assert _readme_targets() == expected


def test_the_plot_draws_faster_by_targets_at_the_references_ratio_over_n() -> None:
    vr = variant("S7/rollback", sessionkit=1.0, core=0.5, orm=30.0)
    evaluated = [r for r in evaluate_all({vr.key: vr}, "sqlite", True) if r.variant == vr.key]
    # ORM is 60x Core; 15x faster than the ORM is 4x Core.
    assert target_lines(vr, evaluated) == [
        (pytest.approx(4.0), "target sessionkit (15x faster than ORM)")
    ]
    s9 = variant(
        "S9/books",
        ratio_to=("core", "orm_selectin", "orm"),
        sessionkit=1.0,
        core=1.0,
        orm_selectin=6.0,
        orm=20.0,
    )
    lines = target_lines(
        s9, [r for r in evaluate_all({"S9/books": s9}, "sqlite", True) if r.variant]
    )
    assert sorted(lines) == [
        (pytest.approx(1.3), "target sessionkit"),
        (pytest.approx(2.0), "target sessionkit (3x faster than ORM selectinload)"),
        (pytest.approx(4.0), "target sessionkit (5x faster than ORM)"),
    ]


def test_the_plot_figure_has_a_dashed_line_and_a_label_per_target() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from benchmarks.plot import figure

    vr = variant("S7/rollback", sessionkit=1.0, core=0.5, orm=30.0)
    s1 = variant("S1/load", sessionkit=1.2, core=1.0, orm=3.0)
    evaluated = evaluate_all({vr.key: vr, s1.key: s1}, "sqlite", True)
    fig: Any = figure([s1, vr], evaluated, "title")
    try:
        axes = {ax.get_title(): ax for ax in fig.axes}
        for title, x, text in (
            ("S7 S7/rollback", 4.0, "target sessionkit (15x faster than ORM)"),
            ("S1 S1/load", 1.3, "target sessionkit"),
        ):
            ax = axes[title]
            dashed = [
                line.get_xdata()[0]
                for line in ax.get_lines()
                if line.get_linestyle() == "--" and line.get_color() == "tab:red"
            ]
            assert dashed == [pytest.approx(x)], title
            labels = [t.get_text().strip() for t in ax.texts if t.get_color() == "tab:red"]
            assert labels == [text], title
            lo, hi = ax.get_xlim()
            assert lo < x < hi, title
    finally:
        plt.close(fig)
