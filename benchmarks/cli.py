"""Command line: ``python -m benchmarks [--db URL] [--scale S] [--only S1,S4] ...``.

``run(argv)`` is also the programmatic entry point (the smoke test uses it): it returns
the exit status instead of exiting, 0 when every correctness check passed, 1 otherwise.
Targets that are missed are reported but never change the status.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from . import plot, report
from .config import SCALES, SCENARIOS, Config, Counts, parse_only, parse_scale
from .db import Database
from .facts import machine_facts
from .harness import Progress, run_variant
from .results import VariantResult
from .scenarios import BUILDERS, Env
from .targets import evaluate_all, for_variant


def build_parser() -> argparse.ArgumentParser:
    scenarios = "\n".join(f"  {k}  {v}" for k, v in SCENARIOS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Compare sessionkit with the SQLAlchemy ORM, SQLAlchemy Core and the raw "
            "DB-API driver on the same table and data, in one process."
        ),
        epilog=f"scenarios:\n{scenarios}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="run on this database (postgresql+psycopg://..., mysql+pymysql://...) "
        "instead of a SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--scale",
        default="default",
        help=f"row counts: {', '.join(SCALES)} (small = 1/10, large = 5x) or a factor "
        "such as 0.5 (default: default)",
    )
    parser.add_argument("--only", metavar="S1,S4", help="run only these scenarios")
    parser.add_argument(
        "--repeat", type=int, default=5, metavar="N", help="measured repeats (default: 5)"
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up round")
    parser.add_argument("--json", metavar="PATH", help="write all figures and machine facts")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the ratios")
    parser.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    return parser


def parse_config(argv: Sequence[str] | None) -> Config:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scale_name, factor = parse_scale(args.scale)
        only = parse_only(args.only) if args.only else tuple(SCENARIOS)
    except ValueError as err:
        parser.error(str(err))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return Config(
        scale_name=scale_name,
        factor=factor,
        repeat=args.repeat,
        warmup=not args.no_warmup,
        db_url=args.db,
        only=only,
        json_path=args.json,
        plot_path=args.plot,
        progress=not args.quiet,
        counts=Counts.for_factor(factor),
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns 0 if every check passed, 1 if any failed, 2 on misuse."""
    config = parse_config(argv)
    if config.plot_path:
        problem = plot.require_matplotlib()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    started = time.perf_counter()
    try:
        db = Database(config.db_url)
    except Exception as err:
        print(f"error: cannot use the database: {err}", file=sys.stderr)
        return 2
    try:
        facts = machine_facts(db)
        print(report.header(config, facts), flush=True)
        results, errors = _run_scenarios(config, db)
    finally:
        db.close()
    elapsed = time.perf_counter() - started

    by_key = {vr.key: vr for vr in results}
    evaluated = evaluate_all(by_key, db.dialect, config.is_reference_scale)
    failed = [vr for vr in results if vr.failed]
    print()
    print(report.summary(evaluated, db.kind, config.scale_name))
    print()
    if failed or errors:
        names = [vr.key for vr in failed] + [e["scenario"] for e in errors]
        print(f"Correctness: FAIL in {', '.join(names)}")
    else:
        print("Correctness: all checks passed")
    print(f"Elapsed: {elapsed:.0f} s")

    if config.json_path:
        _write_json(config, facts, results, evaluated, errors, elapsed)
        print(f"Wrote {config.json_path}")
    if config.plot_path:
        title = f"sessionkit benchmarks: {facts['database']['kind']}, scale {config.scale_name}"
        plot.write_png(config.plot_path, results, evaluated, title)
        print(f"Wrote {config.plot_path}")
    return 1 if failed or errors else 0


def _run_scenarios(
    config: Config, db: Database
) -> tuple[list[VariantResult], list[dict[str, str]]]:
    env = Env(db=db, counts=config.counts, factor=config.factor)
    progress = Progress(config.progress)
    results: list[VariantResult] = []
    errors: list[dict[str, str]] = []
    for sid in config.only:
        variants = BUILDERS[sid](env)
        while True:
            try:
                variant = next(variants)
            except StopIteration:
                break
            except Exception:
                progress.clear()
                tb = traceback.format_exc()
                errors.append({"scenario": sid, "traceback": tb})
                print(f"\n{sid}  ERROR while setting up the scenario\n{tb}", flush=True)
                break
            vr = run_variant(variant, config.repeat, config.warmup, progress)
            results.append(vr)
            own = for_variant(
                vr.key, evaluate_all({vr.key: vr}, db.dialect, config.is_reference_scale)
            )
            print()
            print(report.variant_table(vr, own, config.repeat), flush=True)
    return results, errors


def _write_json(
    config: Config,
    facts: dict[str, Any],
    results: list[VariantResult],
    evaluated: list[Any],
    errors: list[dict[str, str]],
    elapsed: float,
) -> None:
    scenarios: dict[str, Any] = {}
    for vr in results:
        entry = scenarios.setdefault(vr.scenario, {"title": SCENARIOS[vr.scenario], "variants": []})
        entry["variants"].append(vr.to_json())
    doc = {
        "format": "sessionkit-benchmarks/1",
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "elapsed_s": elapsed,
        "ok": not errors and not any(vr.failed for vr in results),
        "config": {
            "scale": config.scale_name,
            "factor": config.factor,
            "repeat": config.repeat,
            "warmup": config.warmup,
            "only": list(config.only),
            "counts": vars(config.counts),
        },
        "machine": facts,
        "scenarios": scenarios,
        "targets": [t.to_json() for t in evaluated],
        "errors": errors,
    }
    with open(config.json_path or "", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
