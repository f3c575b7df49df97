"""The contenders, one module per family.

Each function builds a :class:`~benchmarks.harness.Trial` for one scenario: setup runs
when the function is called, the measured operation is ``Trial.run``. Functions of the
same name in different modules do the same work, so scenarios can line them up.

- ``sessions``: sessionkit and the SQLAlchemy ORM, through literally the same code
  (their public APIs match), so neither gets a friendlier code path;
- ``core``: SQLAlchemy Core, written as an experienced Core user would (prebuilt
  statements, ``executemany``, ``fetchall``);
- ``dbapi``: the raw driver with hand-written SQL;
- ``baselines``: hand-written floors (``__slots__`` objects, a dict lookup).
"""
