"""The benchmark suite runs end to end at a tiny scale and its correctness checks pass.

This does not measure anything meaningful; it keeps ``python -m benchmarks`` working
as sessionkit changes (a scenario that raises or returns wrong rows fails here).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

# ``benchmarks`` is the project's top-level benchmark package (shipped in the sdist);
# pytest finds it through ``pythonpath`` in pyproject.toml.
import benchmarks
from benchmarks.config import SCENARIOS
from benchmarks.targets import TARGETS


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = benchmarks.run(["--scale", "tiny", "--repeat", "1", "--quiet", "--json", str(out)])
    return status, json.loads(out.read_text()), buf.getvalue()


def test_all_checks_pass(smoke_run: tuple[int, dict, str]) -> None:
    status, doc, text = smoke_run
    assert status == 0, text
    assert doc["ok"] is True
    assert doc["errors"] == []
    assert "Correctness: all checks passed" in text


def test_json_has_every_scenario_and_implementation(smoke_run: tuple[int, dict, str]) -> None:
    _, doc, _ = smoke_run
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


def test_json_records_machine_and_targets(smoke_run: tuple[int, dict, str]) -> None:
    _, doc, _ = smoke_run
    machine = doc["machine"]
    for key in ("platform", "python", "cpu_count", "sqlalchemy", "database"):
        assert machine[key], key
    assert machine["database"]["kind"] == "SQLite"
    assert len(doc["targets"]) == len(TARGETS)
    # At the tiny scale the targets are informational only.
    assert all(t["authoritative"] is False for t in doc["targets"])
    assert {t["status"] for t in doc["targets"]} <= {"PASS", "MISS", "n/a"}


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(SystemExit) as exc:
        benchmarks.run(["--only", "S99"])
    assert exc.value.code == 2
