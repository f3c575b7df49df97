"""sessionkit's benchmark suite: sessionkit against the SQLAlchemy ORM, Core and DB-API.

Run ``python -m benchmarks --help`` (or ``nox -s bench``). ``run(argv)`` is the
programmatic entry point and returns the exit status.
"""

from __future__ import annotations

from .cli import run

__all__ = ["run"]
