"""Nox sessions for sessionkit.

Run ``nox`` for the default sessions (tests, lint, typecheck) or ``nox -s NAME``
for a single one.  nox itself goes into a virtual environment, never into the
system's Python::

    python3 -m venv .venv && .venv/bin/pip install nox && .venv/bin/nox -s tests

The PostgreSQL and MariaDB parts of the test matrix need servers: run
``scripts/pgserver.sh start`` and ``scripts/mariadbserver.sh start`` (``start auto``
for new servers on free ports) and export the URLs they print as
``SESSIONKIT_PG_URL`` and ``SESSIONKIT_MYSQL_URL`` (nox passes the environment
through to the sessions).  ``bash .ci/run`` does all of this, with servers of its own.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

COVERAGE_THRESHOLD = 90


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--cov=sessionkit",
        "--cov-branch",
        "--cov-report=term-missing",
        f"--cov-fail-under={COVERAGE_THRESHOLD}",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy in strict mode, and the typed example
    (tests/typing) with mypy and pyright, both strict: what an application sees.

    ``pyright[nodejs]`` brings Node.js as a wheel, so the session needs no system Node;
    the wheel bundles pyright itself (older releases fetched it from npm on first use).
    """
    session.install("mypy", "pyright[nodejs]", "sqlalchemy>=2.1,<2.2")
    session.run("mypy", "--strict", "sessionkit", "tests/typing")
    session.run("pyright", "tests/typing")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks."""
    session.install("-e", ".[bench,test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Run the differential tests with many more generated examples, and interrupt
    random scenarios with real signals (SESSIONKIT_SIGNAL_SOAK runs per backend)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_differential.py",
        "tests/test_interrupts.py::test_random_signals_soak",
        *session.posargs,
        env={
            "SESSIONKIT_HYPOTHESIS_EXAMPLES": "20000",
            "SESSIONKIT_DIFFERENTIAL_RANDOM": "1",
            "SESSIONKIT_SIGNAL_SOAK": "2000",
        },
    )
