"""The scenarios: what each one sets up, who takes part, and what "correct" means.

A scenario is a generator of :class:`~benchmarks.harness.Variant` objects. It owns the
Engine for each variant (created with the same settings for every contender, disposed
when the variant is done) and the database state before each repeat. The warm-up round
runs on at most ``WARMUP_ROWS`` rows: enough to fill statement caches and the connection
pool, without paying for a full extra repeat of the slow contenders.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import selectinload

from . import checks, schema
from .config import BOOKS_PER_AUTHOR, Counts
from .db import Database
from .harness import CheckFailed, Entry, Trial, Variant
from .impls import aio, baselines, core, dbapi, sessions
from .impls.sessions import ORM, SESSIONKIT, SESSIONKIT_TYPED, SessionApi
from .models import ORM_LIBRARY, sessionkit_library
from .schema import Row

WARMUP_ROWS = 500
SEED = 20240601


#: Seconds of measured repeats after which S3 on a file stops (scaled with --scale):
#: each commit there waits for the disk, which can take 10 ms on a virtual machine.
FILE_COMMIT_BUDGET_S = 90.0


@dataclass
class Env:
    db: Database
    counts: Counts
    factor: float = 1.0


class TableState:
    """Refills the table only when the wanted number of rows changes."""

    def __init__(
        self,
        engine: Engine,
        rows: Sequence[Any],
        fill: Callable[[Engine, Sequence[Any]], None] = schema.reset,
    ) -> None:
        self.engine = engine
        self.rows = rows
        self.fill = fill
        self.current: int | None = None

    def ensure(self, n: int) -> None:
        if self.current != n:
            self.fill(self.engine, self.rows[:n])
            self.current = n


def _sizes(n: int) -> Callable[[bool], int]:
    warm = min(n, WARMUP_ROWS)
    return lambda warmup: warm if warmup else n


def _entry(
    impl: str,
    make: Callable[[], Trial],
    check: Callable[[Any, bool], None],
    unavailable: str | None = None,
) -> Entry:
    return Entry(impl, lambda warmup: make(), check, unavailable)


def s1_load(env: Env) -> Iterator[Variant]:
    n = env.counts.load
    rows = schema.make_rows(n)
    size = _sizes(n)
    with env.db.connect() as engine:
        state = TableState(engine, rows)

        def check(observed: list[Row], warmup: bool) -> None:
            checks.same_rows_any_order(observed, rows[: size(warmup)], "loaded rows")

        yield Variant(
            "S1",
            "S1/load",
            f"load {n:,} rows into objects",
            n,
            [
                _entry("sessionkit", lambda: sessions.load(SESSIONKIT, engine), check),
                _entry("sessionkit_typed", lambda: sessions.load(SESSIONKIT_TYPED, engine), check),
                _entry("orm", lambda: sessions.load(ORM, engine), check),
                _entry("core", lambda: core.load(engine), check),
                _entry("dbapi", lambda: dbapi.load(engine), check),
                _entry("floor", lambda: baselines.load_floor(engine), check),
            ],
            prepare=lambda warmup: state.ensure(size(warmup)),
            note="floor = Core fetchall + one __slots__ object per row in a dict by pk",
        )


def _s2_variant(engine: Engine, rows: Sequence[Row], client_keys: bool) -> Variant:
    n = len(rows)
    size = _sizes(n)

    def entry(impl: str, fn: Callable[..., Trial], *args: Any) -> Entry:
        def make(warmup: bool) -> Trial:
            return fn(*args, engine, rows[: size(warmup)], client_keys)

        return Entry(impl, make, check)

    def check(ids: list[Any], warmup: bool) -> None:
        used = rows[: size(warmup)]
        if not client_keys:
            checks.table_holds_generated(engine, used, ids)
            return
        checks.table_holds(engine, used, "inserted rows")
        if list(ids) != [r[0] for r in used]:
            raise CheckFailed("objects do not carry the keys they were given")

    kind = "client-assigned keys" if client_keys else "database-generated keys"
    return Variant(
        "S2",
        "S2/client" if client_keys else "S2/generated",
        f"bulk insert {n:,} rows, {kind}",
        n,
        [
            entry("sessionkit", sessions.bulk_insert, SESSIONKIT),
            entry("orm", sessions.bulk_insert, ORM),
            entry("core", core.bulk_insert),
            entry("dbapi", dbapi.bulk_insert),
        ],
        prepare=lambda warmup: schema.empty(engine),
        note="objects (Core: parameter dicts) are built inside the timed region",
    )


def s2_bulk_insert(env: Env) -> Iterator[Variant]:
    rows = schema.make_rows(env.counts.bulk_insert)
    for client_keys in (True, False):
        with env.db.connect() as engine:
            yield _s2_variant(engine, rows, client_keys)


def _s3_variant(
    engine: Engine, rows: Sequence[Row], place: str, where: str, budget_s: float | None
) -> Variant:
    n = len(rows)
    warm = min(n, 20)  # each commit may wait for the disk: keep the warm-up short

    def size(warmup: bool) -> int:
        return warm if warmup else n

    def entry(impl: str, fn: Callable[..., Trial], *args: Any) -> Entry:
        def make(warmup: bool) -> Trial:
            return fn(*args, engine, rows[: size(warmup)])

        return Entry(impl, make, check)

    def check(_: Any, warmup: bool) -> None:
        checks.table_holds_generated(engine, rows[: size(warmup)], None)

    return Variant(
        "S3",
        f"S3/{place}",
        f"{n:,} x (insert one row + commit), {where}",
        n,
        [
            entry("sessionkit", sessions.single_insert, SESSIONKIT),
            entry("sessionkit_typed", sessions.single_insert, SESSIONKIT_TYPED),
            entry("orm", sessions.single_insert, ORM),
            entry("core", core.single_insert),
            entry("dbapi", dbapi.single_insert),
        ],
        prepare=lambda warmup: schema.empty(engine),
        note="keys generated by the database; one session is kept across the commits",
        budget_s=budget_s,
    )


def s3_single_insert(env: Env) -> Iterator[Variant]:
    rows = schema.make_rows(env.counts.single_insert)
    if env.db.is_sqlite:
        places = [("file", "SQLite file", False), ("memory", "SQLite in memory", True)]
    else:
        places = [("server", env.db.kind, False)]
    for place, where, memory in places:
        with env.db.connect(memory=memory) as engine:
            budget = FILE_COMMIT_BUDGET_S * env.factor if place == "file" else None
            yield _s3_variant(engine, rows, place, where, budget)


def s4_get(env: Env) -> Iterator[Variant]:
    n = env.counts.get
    rows = schema.make_rows(n)
    keys = random.Random(SEED).sample(range(1, n + 1), n)
    size = _sizes(n)

    def used_keys(warmup: bool) -> list[int]:
        return keys[: size(warmup)]

    def check(observed: list[Row], warmup: bool) -> None:
        expected = [rows[k - 1] for k in used_keys(warmup)]
        checks.same_rows(observed, expected, "rows returned by get()")

    with env.db.connect() as engine:
        state = TableState(engine, rows)
        yield Variant(
            "S4",
            "S4/cold",
            f"{n:,} gets by primary key, cold (one SELECT each)",
            n,
            [
                Entry(
                    "sessionkit",
                    lambda w: sessions.get_cold(SESSIONKIT, engine, used_keys(w)),
                    check,
                ),
                Entry("orm", lambda w: sessions.get_cold(ORM, engine, used_keys(w)), check),
                Entry("core", lambda w: core.get_cold(engine, used_keys(w)), check),
                Entry("dbapi", lambda w: dbapi.get_cold(engine, used_keys(w)), check),
            ],
            prepare=lambda warmup: state.ensure(n),
            note="keys in shuffled order; Core reuses one prebuilt SELECT ... WHERE id = :pk",
        )
    with env.db.connect() as engine:
        state = TableState(engine, rows)
        yield Variant(
            "S4",
            "S4/warm",
            f"{n:,} gets by primary key, warm (identity-map hits)",
            n,
            [
                Entry(
                    "sessionkit",
                    lambda w: sessions.get_warm(SESSIONKIT, engine, used_keys(w)),
                    check,
                ),
                Entry("orm", lambda w: sessions.get_warm(ORM, engine, used_keys(w)), check),
                Entry("dict", lambda w: baselines.get_dict(rows, used_keys(w)), check),
            ],
            ratio_to=("dict", "orm"),
            prepare=lambda warmup: state.ensure(n),
            note="all objects loaded before the clock starts; dict = d[pk] on a plain dict",
        )


def s5_update(env: Env) -> Iterator[Variant]:
    n = env.counts.update
    rows = schema.make_rows(n)
    size = _sizes(n)

    def check(_: Any, warmup: bool) -> None:
        expected = [(*r[:6], r[6] + 1) for r in rows[: size(warmup)]]
        checks.table_holds(engine, expected, "updated rows")

    with env.db.connect() as engine:
        yield Variant(
            "S5",
            "S5/update",
            f"load {n:,} objects, change one attribute each, commit",
            n,
            [
                _entry("sessionkit", lambda: sessions.update(SESSIONKIT, engine), check),
                _entry(
                    "sessionkit_typed", lambda: sessions.update(SESSIONKIT_TYPED, engine), check
                ),
                _entry("orm", lambda: sessions.update(ORM, engine), check),
                _entry("core", lambda: core.update(engine), check),
                _entry("dbapi", lambda: dbapi.update(engine), check),
            ],
            prepare=lambda warmup: schema.reset(engine, rows[: size(warmup)]),
            note="the load is part of the timed region for every contender",
        )


def s6_refresh(env: Env) -> Iterator[Variant]:
    n = env.counts.refresh
    rows = schema.make_rows(n)
    size = _sizes(n)

    def check(observed: list[tuple[int, int]], warmup: bool) -> None:
        expected = [(r[0], r[6]) for r in rows[: size(warmup)]]
        checks.same_rows_any_order(observed, expected, "(id, visits) read after commit")

    with env.db.connect() as engine:
        state = TableState(engine, rows)
        batch = Entry(
            "sessionkit_batch",
            lambda w: sessions.refresh(SESSIONKIT, engine, batch_refresh=True),
            check,
            unavailable=sessions.batch_refresh_unavailable(engine),
        )
        yield Variant(
            "S6",
            "S6/refresh",
            f"commit {n:,} loaded objects, then read one attribute of each",
            n,
            [
                _entry("sessionkit", lambda: sessions.refresh(SESSIONKIT, engine), check),
                batch,
                _entry("orm", lambda: sessions.refresh(ORM, engine), check),
                _entry("core", lambda: core.refresh(engine), check),
                _entry("dbapi", lambda: dbapi.refresh(engine), check),
            ],
            prepare=lambda warmup: state.ensure(size(warmup)),
            note="timed: commit() (expires everything) + the reads; Core/DB-API re-select",
        )


def s7_rollback(env: Env) -> Iterator[Variant]:
    n = env.counts.rollback
    rows = schema.make_rows(n)
    size = _sizes(n)

    def check(count: int, warmup: bool) -> None:
        if count != size(warmup):
            raise CheckFailed(f"{count} objects checked, expected {size(warmup)}")
        checks.table_holds(engine, rows[: size(warmup)], "rows after rollback")

    with env.db.connect() as engine:
        state = TableState(engine, rows)
        yield Variant(
            "S7",
            "S7/rollback",
            f"rollback() after changing {n:,} loaded objects",
            n,
            [
                _entry("sessionkit", lambda: sessions.rollback(SESSIONKIT, engine), check),
                _entry("orm", lambda: sessions.rollback(ORM, engine), check),
                _entry("core", lambda: core.rollback(engine), check),
                _entry("dbapi", lambda: dbapi.rollback(engine), check),
                Entry("floor", lambda w: baselines.rollback_floor(size(w)), check),
            ],
            prepare=lambda warmup: state.ensure(size(warmup)),
            note="only rollback() is timed; floor = clear a dict attribute on n plain objects",
        )


def s8_memory(env: Env) -> Iterator[Variant]:
    n = env.counts.memory
    rows = schema.make_rows(n)
    size = _sizes(n)

    def check(observed: list[Row], warmup: bool) -> None:
        checks.same_rows_any_order(observed, rows[: size(warmup)], "rows held")

    with env.db.connect() as engine:
        state = TableState(engine, rows)
        yield Variant(
            "S8",
            "S8/memory",
            f"memory per loaded object, {n:,} rows held",
            n,
            [
                _entry("sessionkit", lambda: sessions.memory(SESSIONKIT, engine), check),
                _entry(
                    "sessionkit_typed", lambda: sessions.memory(SESSIONKIT_TYPED, engine), check
                ),
                _entry("orm", lambda: sessions.memory(ORM, engine), check),
                _entry("core", lambda: core.memory(engine), check),
                _entry("dbapi", lambda: dbapi.memory(engine), check),
                _entry("floor", lambda: baselines.memory_floor(engine), check),
            ],
            unit="B/obj",
            ratio_to=("floor", "core", "orm"),
            prepare=lambda warmup: state.ensure(size(warmup)),
            note="tracemalloc, retained bytes / rows, values included; floor = __slots__ objects",
        )


def s9_relationship(env: Env) -> Iterator[Variant]:
    n = env.counts.authors
    per = BOOKS_PER_AUTHOR
    authors = schema.make_authors(n)
    warm = min(n, max(1, WARMUP_ROWS // per))  # at most WARMUP_ROWS books

    def size(warmup: bool) -> int:
        return warm if warmup else n

    expected = {k: schema.library_rows(authors[:k], per) for k in {warm, n}}

    def check(observed: list[schema.LibraryRow], warmup: bool) -> None:
        checks.same_rows_any_order(observed, expected[size(warmup)], "authors and their books")

    def fill(engine: Engine, rows: Sequence[Any]) -> None:
        schema.reset_library(engine, rows, per)

    orm_author = ORM_LIBRARY.author
    with env.db.connect() as engine:
        state = TableState(engine, authors, fill)
        yield Variant(
            "S9",
            "S9/books",
            f"load {n:,} authors, then read the {per} books of each",
            n,
            [
                _entry(
                    "sessionkit",
                    lambda: sessions.load_with_books(
                        SESSIONKIT, sessionkit_library().author, engine
                    ),
                    check,
                    unavailable=sessions.relationship_unavailable(),
                ),
                _entry(
                    "orm_selectin",
                    lambda: sessions.load_with_books(
                        ORM, orm_author, engine, selectinload(orm_author.books)
                    ),
                    check,
                ),
                _entry("orm", lambda: sessions.load_with_books(ORM, orm_author, engine), check),
                _entry("core", lambda: core.load_with_books(engine), check),
            ],
            ratio_to=("core", "orm_selectin", "orm"),
            prepare=lambda warmup: state.ensure(size(warmup)),
            note="ORM = default lazy loading, one SELECT per author; Core = books WHERE "
            "author_id IN (500 keys per SELECT), grouped in Python",
        )


def s10_insert_with_books(env: Env) -> Iterator[Variant]:
    n = env.counts.authors_insert
    per = BOOKS_PER_AUTHOR
    source = schema.library_source(schema.make_authors(n), per)
    warm = min(n, max(1, WARMUP_ROWS // per))  # at most WARMUP_ROWS books

    def used(warmup: bool) -> list[schema.AuthorSource]:
        return source[: warm if warmup else n]

    def check(observed: checks.LibraryKeys, warmup: bool) -> None:
        checks.library_holds(engine, used(warmup), observed)

    with env.db.connect() as engine:
        if core.authors_returning(engine):
            core_way = "authors in one executemany INSERT ... RETURNING id"
        else:
            core_way = "one INSERT per author reading its key (no executemany RETURNING)"
        yield Variant(
            "S10",
            "S10/insert",
            f"insert {n:,} authors with {per} books each through the collections, one commit",
            n,
            [
                Entry(
                    "sessionkit",
                    lambda w: sessions.insert_with_books(
                        SESSIONKIT, sessionkit_library(), engine, used(w)
                    ),
                    check,
                    unavailable=sessions.relationship_unavailable(),
                ),
                Entry(
                    "orm",
                    lambda w: sessions.insert_with_books(ORM, ORM_LIBRARY, engine, used(w)),
                    check,
                ),
                Entry("core", lambda w: core.insert_with_books(engine, used(w)), check),
            ],
            prepare=lambda warmup: schema.empty_library(engine),
            note="objects (Core: parameter dicts) are built inside the timed region; "
            f"Core: {core_way}, then the books in one executemany",
        )


def _async_entries(
    engine: Engine,
    ours: Callable[[SessionApi], Trial],
    core_way: Callable[[], Trial],
    check: Callable[[Any, bool], None],
) -> list[Entry]:
    """sessionkit's and the ORM's AsyncSession, and async Core, on the async driver."""
    missing = aio.async_unavailable(engine)
    return [
        _entry("sessionkit", lambda: ours(SESSIONKIT), check, missing),
        _entry("orm", lambda: ours(ORM), check, missing),
        _entry("core", core_way, check, missing),
    ]


def s11_async_load(env: Env) -> Iterator[Variant]:
    n = env.counts.load
    rows = schema.make_rows(n)
    size = _sizes(n)
    with env.db.connect() as engine:
        state = TableState(engine, rows)

        def check(observed: list[Row], warmup: bool) -> None:
            checks.same_rows_any_order(observed, rows[: size(warmup)], "loaded rows")

        entries = _async_entries(
            engine, lambda api: aio.load(api, engine), lambda: aio.core_load(engine), check
        )
        yield Variant(
            "S11",
            "S11/load",
            f"asyncio: load {n:,} rows into objects",
            n,
            entries,
            prepare=lambda warmup: state.ensure(size(warmup)),
            note=f"async driver: {aio.ASYNC_DRIVERS.get(engine.dialect.name)}",
        )


def s12_async_bulk_insert(env: Env) -> Iterator[Variant]:
    rows = schema.make_rows(env.counts.bulk_insert)
    n = len(rows)
    size = _sizes(n)
    with env.db.connect() as engine:

        def check(ids: list[Any], warmup: bool) -> None:
            checks.table_holds_generated(engine, rows[: size(warmup)], ids)

        current = {"rows": rows}

        def prepare(warmup: bool) -> None:
            schema.empty(engine)
            current["rows"] = rows[: size(warmup)]

        entries = _async_entries(
            engine,
            lambda api: aio.bulk_insert(api, engine, current["rows"]),
            lambda: aio.core_bulk_insert(engine, current["rows"]),
            check,
        )
        yield Variant(
            "S12",
            "S12/generated",
            f"asyncio: bulk insert {n:,} rows, database-generated keys",
            n,
            entries,
            prepare=prepare,
            note="objects (Core: parameter dicts) are built inside the timed region",
        )


def s13_async_update(env: Env) -> Iterator[Variant]:
    n = env.counts.update
    rows = schema.make_rows(n)
    size = _sizes(n)
    with env.db.connect() as engine:

        def check(_: Any, warmup: bool) -> None:
            expected = [(*r[:6], r[6] + 1) for r in rows[: size(warmup)]]
            checks.table_holds(engine, expected, "updated rows")

        entries = _async_entries(
            engine, lambda api: aio.update(api, engine), lambda: aio.core_update(engine), check
        )
        yield Variant(
            "S13",
            "S13/update",
            f"asyncio: load {n:,} objects, change one attribute each, commit",
            n,
            entries,
            prepare=lambda warmup: schema.reset(engine, rows[: size(warmup)]),
            note="the load is part of the timed region for every contender",
        )


BUILDERS: dict[str, Callable[[Env], Iterator[Variant]]] = {
    "S1": s1_load,
    "S2": s2_bulk_insert,
    "S3": s3_single_insert,
    "S4": s4_get,
    "S5": s5_update,
    "S6": s6_refresh,
    "S7": s7_rollback,
    "S8": s8_memory,
    "S9": s9_relationship,
    "S10": s10_insert_with_books,
    "S11": s11_async_load,
    "S12": s12_async_bulk_insert,
    "S13": s13_async_update,
}
