"""Plain-text tables: one per variant as it finishes, a target summary at the end.

Ratios come first in each row because they are what carries over between machines;
absolute times follow for reference. Output is ASCII so it survives any console.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .results import VariantResult, label
from .targets import TargetResult


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds < 1e-3:
        return 1e6, "us"
    if seconds < 1.0:
        return 1e3, "ms"
    return 1.0, "s"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_value(value: float, unit: str, scale_from: float | None = None) -> str:
    """``212 ms`` / ``84.1 us`` / ``412 B``; ``scale_from`` picks the unit for a range."""
    if unit == "B/obj":
        return f"{value:.0f} B"
    factor, name = _time_unit(value if scale_from is None else scale_from)
    return f"{_num(value * factor)} {name}"


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{_num(ratio)}x"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "", indent: str = "  "
) -> str:
    """Columns padded to width; ``align`` has one ``l``/``r`` per column (default l, r...)."""
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def variant_table(vr: VariantResult, targets: Sequence[TargetResult], repeat: int) -> str:
    """The block printed when a variant finishes."""
    what = "bytes per object" if vr.unit == "B/obj" else "time"
    out = [f"{vr.scenario}  {vr.title}"]
    if vr.note:
        out.append(f"    ({vr.note})")
    header = [
        "implementation",
        *(f"x{label(r)}" for r in vr.ratio_to),
        f"median {what}",
        "min - max",
    ]
    rows = []
    details = []
    for r in vr.impls:
        name = label(r.impl)
        if r.status == "n/a":
            rows.append([name, *("n/a" for _ in vr.ratio_to), "n/a", ""])
            details.append(f"    {name}: n/a - {r.message}")
            continue
        if not r.ok:
            rows.append([name, *("-" for _ in vr.ratio_to), r.status, ""])
            details.append(f"    {name}: {r.status} - {r.message}")
            if r.traceback:
                details.append("      " + r.traceback.rstrip().replace("\n", "\n      "))
            continue
        med, lo, hi = r.median, r.min, r.max
        assert med is not None and lo is not None and hi is not None
        rows.append(
            [
                name,
                *(fmt_ratio(vr.ratio(r.impl, ref)) for ref in vr.ratio_to),
                fmt_value(med, vr.unit),
                f"{fmt_value(lo, vr.unit, med)} - {fmt_value(hi, vr.unit, med)}",
            ]
        )
    out.append(_table(header, rows))
    out.extend(details)
    for t in targets:
        out.append(
            f"  target: {label(t.target.impl)} {t.target.requirement}: {t.measured}  {t.verdict}"
            f"  (defined for {t.target.defined_for})"
        )
    measured = f"{vr.measured} of {repeat} repeats measured"
    if vr.budget_s is not None:
        measured += f"; stopped at this variant's {vr.budget_s:.0f} s time budget"
    out.append(f"  checks: {'FAIL' if vr.failed else 'ok'}  ({measured})")
    return "\n".join(out)


def summary(evaluated: Sequence[TargetResult], kind: str, scale: str) -> str:
    """The closing table of the run database's targets (``kind``, e.g. ``SQLite``)."""
    title = f"Targets for {kind}"
    if any(t.status in ("PASS", "MISS") and not t.authoritative for t in evaluated):
        title += f"  (informational at scale {scale}: (pass)/(miss) in lower case)"
    rows = []
    notes = []
    for t in evaluated:
        if t.status in ("n/a", "FAIL") and t.reason:
            notes.append(f"  {t.target.scenario} {t.target.text}: {t.status}: {t.reason}")
        rows.append(
            [
                t.target.scenario,
                t.target.text,
                f"{label(t.target.impl)} {t.target.requirement}",
                t.measured,
                t.verdict,
                t.target.defined_for,
            ]
        )
    header = ["", "scenario", "target", "measured", "result", "defined for"]
    return "\n".join([title, _table(header, rows, align="lllrll"), *notes])


def header(config: Any, facts: dict[str, Any]) -> str:
    """What ran where: printed first, so a pasted report carries its own context."""
    drv = facts["database"]
    driver = f"{drv.get('driver')} {drv.get('driver_version')}"
    if "sqlite_library" in drv:
        driver += f" (SQLite {drv['sqlite_library']})"
    if "server_version" in drv:
        driver += f" (server {drv['server_version']})"
    return "\n".join(
        [
            "sessionkit benchmarks",
            f"  database : {drv['kind']}  {drv['url']}",
            f"  scale    : {config.scale_name} (x{config.factor:g}); {config.repeat} repeats"
            + (" + 1 warm-up" if config.warmup else ""),
            f"  machine  : {facts['platform']}; {facts['cpu_count']} CPUs; {facts['cpu']}",
            f"  software : {facts['python']}; SQLAlchemy {facts['sqlalchemy']}; "
            f"sessionkit {facts['sessionkit']}; {driver}",
            "  Ratios compare medians (xCore = median time / Core's median time); absolute",
            "  times depend on the machine, the ratios are what to compare.",
        ]
    )
