"""Which events have ever had a listener in this process.

The session and the flush ask Core's event dispatch only for the names in these sets,
so that a program with no listeners pays one set test per operation, not a dispatch
lookup per object. Names are added when a listener is registered (``events.py``) and
never removed: after ``event.remove()`` the dispatch itself finds nothing to call.
"""

from __future__ import annotations

from typing import Final

SESSION: Final[set[str]] = set()
MAPPER: Final[set[str]] = set()
