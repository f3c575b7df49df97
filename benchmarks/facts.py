"""Facts about the machine and software, recorded with every result file."""

from __future__ import annotations

import os
import platform
from typing import Any

import sqlalchemy

import sessionkit

from .db import Database


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_facts(db: Database) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlalchemy": sqlalchemy.__version__,
        "sessionkit": sessionkit.__version__,
        "database": {"kind": db.kind, "url": db.label, **db.driver_versions()},
    }
