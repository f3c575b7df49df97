"""The benchmark suite runs end to end at a tiny scale on every database, and its
correctness checks pass.

This does not measure anything meaningful; it keeps ``python -m benchmarks`` working
as sessionkit changes (a scenario that raises or returns wrong rows fails here), on
SQLite always and on PostgreSQL and MariaDB when their URLs are set (under CI they
must be). Each run takes a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

# ``benchmarks`` is the project's top-level benchmark package (shipped in the sdist);
# pytest finds it through ``pythonpath`` in pyproject.toml.
import benchmarks
from benchmarks.config import DB_KINDS, SCENARIOS, DbName
from benchmarks.results import label
from benchmarks.targets import targets_for
from support import (
    MYSQL_URL_ENV,
    PG_URL_ENV,
    mysql_database,
    mysql_url_from_env,
    pg_url_from_env,
    reset_mysql_database,
)

# The suite refuses a MariaDB database that already has its tables: it runs in this
# process's own scratch database, created empty and dropped afterwards.
MYSQL_SCRATCH = mysql_database("bench_smoke")


@dataclass
class SmokeRun:
    db: DbName
    status: int
    doc: dict[str, Any]
    text: str


def _unavailable(env: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {env} is not: the benchmark smoke test must run on it")
    pytest.skip(f"{env} is not set")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def db_args(request: pytest.FixtureRequest) -> Iterator[tuple[DbName, list[str]]]:
    """The database to run on, and the ``--db`` arguments that select it."""
    name: DbName = request.param
    if name == "sqlite":
        yield name, []
    elif name == "postgresql":
        url = pg_url_from_env()
        if url is None:
            _unavailable(PG_URL_ENV)
        assert url is not None
        yield name, ["--db", url]
    else:
        server = mysql_url_from_env()
        if server is None:
            _unavailable(MYSQL_URL_ENV)
        assert server is not None
        reset_mysql_database(server, MYSQL_SCRATCH)
        try:
            url = make_url(server).set(database=MYSQL_SCRATCH)
            yield name, ["--db", url.render_as_string(hide_password=False)]
        finally:
            reset_mysql_database(server, MYSQL_SCRATCH, create=False)


@pytest.fixture(scope="module")
def smoke_run(
    db_args: tuple[DbName, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> SmokeRun:
    name, args = db_args
    out: Path = tmp_path_factory.mktemp("bench") / "results.json"
    buf = io.StringIO()
    argv = ["--scale", "tiny", "--repeat", "1", "--quiet", "--json", str(out), *args]
    with contextlib.redirect_stdout(buf):
        status = benchmarks.run(argv)
    text = buf.getvalue()
    assert out.exists(), text
    return SmokeRun(name, status, json.loads(out.read_text()), text)


def test_all_checks_pass(smoke_run: SmokeRun) -> None:
    assert smoke_run.status == 0, smoke_run.text
    assert smoke_run.doc["ok"] is True
    assert smoke_run.doc["errors"] == []
    assert "Correctness: all checks passed" in smoke_run.text


def test_json_has_every_scenario_and_implementation(smoke_run: SmokeRun) -> None:
    doc = smoke_run.doc
    assert set(doc["scenarios"]) == set(SCENARIOS)
    for sid, scenario in doc["scenarios"].items():
        assert scenario["variants"], sid
        for variant in scenario["variants"]:
            assert variant["checks"] == "ok", variant["key"]
            impls = variant["implementations"]
            assert "sessionkit" in impls and "orm" in impls, variant["key"]
            for name, figures in impls.items():
                if figures["status"] == "n/a":
                    continue  # e.g. an optional Session feature that does not exist yet
                assert figures["status"] == "ok", (variant["key"], name, figures["message"])
                assert len(figures["samples"]) == 1
                assert figures["median"] > 0


def test_json_records_machine_and_the_databases_targets(smoke_run: SmokeRun) -> None:
    doc = smoke_run.doc
    machine = doc["machine"]
    for key in ("platform", "python", "cpu_count", "sqlalchemy", "database"):
        assert machine[key], key
    assert machine["database"]["kind"] == DB_KINDS[smoke_run.db]
    expected = targets_for(smoke_run.db)
    assert [(t["scenario"], t["description"], t["requirement"]) for t in doc["targets"]] == [
        (t.scenario, t.text, f"{label(t.impl)} {t.requirement}") for t in expected
    ]
    assert {t["db"] for t in doc["targets"]} == {smoke_run.db}
    # At the tiny scale the targets are informational only, but every one of them ran.
    assert all(t["authoritative"] is False for t in doc["targets"])
    assert {t["status"] for t in doc["targets"]} <= {"PASS", "MISS", "n/a"}


def test_report_shows_only_the_databases_targets(smoke_run: SmokeRun) -> None:
    kind = DB_KINDS[smoke_run.db]
    text = smoke_run.text
    assert f"Targets for {kind}  (informational at scale tiny" in text
    assert f"(defined for {kind}, default scale)" in text
    for other, other_kind in DB_KINDS.items():
        if other != smoke_run.db:
            assert f"{other_kind}, default scale" not in text


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(SystemExit) as exc:
        benchmarks.run(["--only", "S99"])
    assert exc.value.code == 2
