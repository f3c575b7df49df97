"""Helpers shared by the test suite: backend descriptions, SQL recording, and small
helpers that read what a scenario observed (facts by label, event kinds, messages)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from reference import Api, Obs

PG_URL_ENV = "SESSIONKIT_PG_URL"
PG_REF_DATABASE = "sessionkit_ref"
MYSQL_URL_ENV = "SESSIONKIT_MYSQL_URL"
# MariaDB has no schemas: each test process works in databases of its own, so that
# parallel runs against one server never meet.
MYSQL_DATABASE_PREFIX = f"sk_{os.getpid()}"

Slot = Literal["main", "ref"]
SLOTS: tuple[Slot, ...] = ("main", "ref")

Event = tuple[Any, ...]

# Event tags that are not SQL statements.
BEGIN = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
SAVEPOINT = "SAVEPOINT"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT"
RELEASE_SAVEPOINT = "RELEASE SAVEPOINT"
SQL = "SQL"
CHECKOUT = "checkout"
CHECKIN = "checkin"
POOL_EVENTS = frozenset({CHECKOUT, CHECKIN})


def hexid(obj: object) -> str:
    """``hex(id(obj))``, the way SQLAlchemy shows object identities."""
    return hex(id(obj))


def pg_url_from_env() -> str | None:
    """The PostgreSQL URL from the environment, or None if unset or empty."""
    return os.environ.get(PG_URL_ENV) or None


def mysql_url_from_env() -> str | None:
    """The MariaDB URL from the environment, or None if unset or empty."""
    return os.environ.get(MYSQL_URL_ENV) or None


def mysql_database(slot: str) -> str:
    """The database this test process uses on the MariaDB server for ``slot``."""
    return f"{MYSQL_DATABASE_PREFIX}_{slot}"


def reset_mysql_database(server_url: str, database: str, *, create: bool = True) -> None:
    """Drop and create ``database`` on the MariaDB server at ``server_url``
    (``create=False``: only drop it).

    Connections still using the database (leaked by earlier tests of this process:
    the name is this process's own) are killed first: an open transaction's metadata
    locks would make DROP DATABASE wait for them.
    """
    admin = create_engine(server_url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 30")
            leftovers = conn.execute(
                text(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = :db AND ID <> CONNECTION_ID()"
                ),
                {"db": database},
            ).scalars()
            for thread_id in list(leftovers):
                try:
                    conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
                except OperationalError as exc:  # gone meanwhile: 1094 unknown thread id
                    if exc.orig is None or exc.orig.args[0] != 1094:
                        raise
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
            if create:
                conn.exec_driver_sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    finally:
        admin.dispose()


@dataclass(frozen=True)
class Backend:
    """A database backend the tests run against.

    ``url("main")`` is the database the code under test uses; ``url("ref")`` is
    a second, independent database (where the SQLAlchemy ORM reference runs).
    On MariaDB both are this process's own databases (:func:`mysql_database`),
    which the engine fixtures create; ``mysql_url`` is the server's URL as given.
    """

    name: str
    tmp_path: Path | None = None
    pg_url: str | None = None
    mysql_url: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.name == "postgresql"

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    @property
    def dialect_name(self) -> str:
        """``engine.dialect.name`` on this backend: MariaDB is reached through the
        ``mysql`` dialect (or SQLAlchemy's ``mariadb`` one, given a ``mariadb://`` URL)."""
        if self.is_mariadb and self.mysql_url is not None:
            return str(make_url(self.mysql_url).get_dialect().name)
        return self.name

    def url(self, slot: str) -> str:
        if slot not in SLOTS:
            raise ValueError(f"unknown database slot {slot!r}; expected one of {SLOTS}")
        if self.name == "sqlite":
            if self.tmp_path is None:
                raise ValueError("the sqlite backend needs tmp_path")
            return f"sqlite:///{self.tmp_path / f'{slot}.db'}"
        if self.name == "postgresql":
            if self.pg_url is None:
                raise ValueError(f"the postgresql backend needs {PG_URL_ENV}")
            if slot == "main":
                return self.pg_url
            return (
                make_url(self.pg_url)
                .set(database=PG_REF_DATABASE)
                .render_as_string(hide_password=False)
            )
        if self.name == "mariadb":
            if self.mysql_url is None:
                raise ValueError(f"the mariadb backend needs {MYSQL_URL_ENV}")
            return (
                make_url(self.mysql_url)
                .set(database=mysql_database(slot))
                .render_as_string(hide_password=False)
            )
        raise ValueError(f"unknown backend {self.name!r}")


def normalize_params(parameters: Any, executemany: bool) -> tuple[Any, ...] | list[tuple[Any, ...]]:
    """DB-API parameters as plain tuples.

    A mapping becomes the tuple of its values in insertion order, a sequence the
    tuple of its items, None the empty tuple; for executemany the result is a
    list with one such tuple per parameter set.
    """
    if executemany:
        return [_param_tuple(p) for p in parameters]
    return _param_tuple(parameters)


def _param_tuple(parameters: Any) -> tuple[Any, ...]:
    if parameters is None:
        return ()
    if isinstance(parameters, Mapping):
        return tuple(parameters.values())
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes)):
        return tuple(parameters)
    return (parameters,)


def statement_kind(statement: str) -> str:
    """First word of a SQL statement, upper-cased (``"SELECT"``, ``"INSERT"``...)."""
    words = statement.split(None, 1)
    return words[0].upper() if words else ""


class SQLRecorder:
    """Records transaction, SQL and pool events of an engine, in order.

    Listening starts on construction; ``detach()`` (or leaving the ``with``
    block) stops it.  Events are tuples in ``.events``:

    - ``("BEGIN",)``, ``("COMMIT",)``, ``("ROLLBACK",)``
    - ``("SAVEPOINT", name)``, ``("ROLLBACK TO SAVEPOINT", name)``,
      ``("RELEASE SAVEPOINT", name)``
    - ``("SQL", statement, params)``: params from :func:`normalize_params`
    - ``("checkout",)``, ``("checkin",)``: connection pool checkouts/checkins

    Savepoint names are the ones sent to the database (``sa_savepoint_1``...),
    even though SQLAlchemy's own "savepoint" event only passes None for them.

    Transaction events are SQLAlchemy ``Connection`` events, so they are
    recorded even where the driver emits no SQL for them (pysqlite sends no
    BEGIN; psycopg sends BEGIN itself).  Savepoints are emitted as SQL by
    SQLAlchemy, so each shows up twice: the savepoint event, then the
    ``SAVEPOINT``/``ROLLBACK TO SAVEPOINT``/``RELEASE SAVEPOINT`` statement.
    A pool checkin's reset-on-return rollback is not a Connection event and is
    not recorded.  Connection events only reach ``Connection`` objects created
    after the recorder was attached.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pool = engine.pool
        self.events: list[Event] = []
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = []
        self._attach()

    # -- listening -----------------------------------------------------------

    def _listen(self, target: Any, identifier: str, fn: Callable[..., None]) -> None:
        event.listen(target, identifier, fn)
        self._listeners.append((target, identifier, fn))

    def _attach(self) -> None:
        record = self.events.append

        def on_begin(conn: Any) -> None:
            record((BEGIN,))

        def on_commit(conn: Any) -> None:
            record((COMMIT,))

        def on_rollback(conn: Any) -> None:
            record((ROLLBACK,))

        # SQLAlchemy fires "savepoint" before it generates the name of an
        # anonymous savepoint (the event gets name=None); fill the name in from
        # the SAVEPOINT statement that follows on the same connection.
        pending_savepoint: dict[int, int] = {}

        def on_savepoint(conn: Any, name: str | None) -> None:
            if name is None:
                pending_savepoint[id(conn)] = len(self.events)
            record((SAVEPOINT, name))

        def on_rollback_savepoint(conn: Any, name: str, context: Any) -> None:
            record((ROLLBACK_TO_SAVEPOINT, name))

        def on_release_savepoint(conn: Any, name: str, context: Any) -> None:
            record((RELEASE_SAVEPOINT, name))

        def on_before_cursor_execute(
            conn: Any,
            cursor: Any,
            statement: str,
            parameters: Any,
            context: Any,
            executemany: bool,
        ) -> None:
            index = pending_savepoint.pop(id(conn), None)
            if index is not None:
                words = statement.split()
                if (
                    len(words) == 2
                    and words[0].upper() == SAVEPOINT
                    and index < len(self.events)
                    and self.events[index] == (SAVEPOINT, None)
                ):
                    self.events[index] = (SAVEPOINT, words[1])
            record((SQL, statement, normalize_params(parameters, executemany)))

        def on_checkout(dbapi_connection: Any, record_: Any, proxy: Any) -> None:
            record((CHECKOUT,))

        def on_checkin(dbapi_connection: Any, record_: Any) -> None:
            record((CHECKIN,))

        self._listen(self.engine, "begin", on_begin)
        self._listen(self.engine, "commit", on_commit)
        self._listen(self.engine, "rollback", on_rollback)
        self._listen(self.engine, "savepoint", on_savepoint)
        self._listen(self.engine, "rollback_savepoint", on_rollback_savepoint)
        self._listen(self.engine, "release_savepoint", on_release_savepoint)
        self._listen(self.engine, "before_cursor_execute", on_before_cursor_execute)
        self._listen(self.pool, "checkout", on_checkout)
        self._listen(self.pool, "checkin", on_checkin)

    @property
    def attached(self) -> bool:
        return bool(self._listeners)

    def detach(self) -> None:
        """Remove all listeners; safe to call more than once."""
        while self._listeners:
            target, identifier, fn = self._listeners.pop()
            if event.contains(target, identifier, fn):
                event.remove(target, identifier, fn)

    def __enter__(self) -> SQLRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    # -- reading -------------------------------------------------------------

    def clear(self) -> None:
        """Forget the events recorded so far (keeps listening)."""
        self.events.clear()

    def sql(self) -> list[str]:
        """The SQL statements, in order."""
        return [e[1] for e in self.events if e[0] == SQL]

    def statements(self) -> list[tuple[str, Any]]:
        """``(statement, params)`` pairs, in order."""
        return [(e[1], e[2]) for e in self.events if e[0] == SQL]

    def tx(self) -> list[Event]:
        """Only the transaction events (no SQL, no pool events)."""
        return [e for e in self.events if e[0] != SQL and e[0] not in POOL_EVENTS]

    def without_pool(self) -> list[Event]:
        """All events except pool checkouts/checkins."""
        return [e for e in self.events if e[0] not in POOL_EVENTS]

    def pool_events(self) -> list[Event]:
        """Only the pool checkouts/checkins."""
        return [e for e in self.events if e[0] in POOL_EVENTS]

    def kinds(self, *, pool: bool = True) -> list[str]:
        """One word per event: the tag of a non-SQL event (``"BEGIN"``,
        ``"ROLLBACK TO SAVEPOINT"``, ``"checkout"``...) or the first word of a
        SQL statement, upper-cased (``"SELECT"``, ``"INSERT"``...).

        ``pool=False`` leaves out checkouts/checkins.
        """
        events = self.events if pool else self.without_pool()
        return [statement_kind(e[1]) if e[0] == SQL else e[0] for e in events]

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"<SQLRecorder {state} {len(self.events)} events on {self.engine.url!r}>"


# -- reading observations --------------------------------------------------------------------

# The start of the SELECT that loads every column of one ``user_account`` row by its key.
SELECT_ALL = (
    "SELECT user_account.id, user_account.name, user_account.fullname \n"
    "FROM user_account \nWHERE user_account.id = "
)

_ADDRESS = re.compile(r"0x[0-9a-f]+")
_SESSION_NUMBER = re.compile(r"session '\d+' \(this is '\d+'\)")


def by_label(obs: Iterable[Any]) -> dict[str, Any]:
    """Observations by label (the last one wins)."""
    return {o[0]: o for o in obs}


def by_unique_label(obs: Iterable[Any]) -> dict[str, Any]:
    """Observations by label; a label observed twice fails the test."""
    out: dict[str, Any] = {}
    for o in obs:
        assert o[0] not in out, f"duplicate label {o[0]!r}"
        out[o[0]] = o
    return out


def event_kinds(events: Iterable[Event]) -> list[str]:
    """One word per recorded event, as in ``obs.sql()`` steps: the tag of a non-SQL event
    (``"BEGIN"``, ``"checkout"``...) or the first word of a SQL statement, upper-cased
    (``"SELECT"``, ``"INSERT"``...)."""
    return [statement_kind(e[1]) if e[0] == SQL else e[0] for e in events]


def step_kinds(obs: Obs, label: str) -> list[str]:
    """The event kinds of the first ``obs.sql(label)`` step, SQL words as sent (not
    upper-cased); KeyError if there is no such step."""
    for o in obs:
        if o[0] == label:
            return [e[0] if e[0] != SQL else e[1].split()[0] for e in o[1]]
    raise KeyError(label)


def take_kinds(obs: Obs) -> list[str]:
    """The kinds of the events recorded since the last clear, pool events left out and SQL
    words as sent (not upper-cased); then clears the recorder."""
    kinds = [e[1].split()[0] if e[0] == SQL else e[0] for e in obs.rec.without_pool()]
    obs.rec.clear()
    return kinds


def sql_statements(events: Iterable[Event], kind: str | None = None) -> list[tuple[str, Any]]:
    """``(statement, params)`` of the SQL events; given ``kind`` (``"INSERT"``...), only
    the statements of that kind."""
    return [
        (e[1], e[2])
        for e in events
        if e[0] == SQL and (kind is None or statement_kind(e[1]) == kind)
    ]


def named_key(api: Api, obj: object) -> Any:
    """``inspect(obj).identity_key`` with the class replaced by its name."""
    key = api.inspect(obj).identity_key
    return None if key is None else (key[0].__name__, key[1], key[2])


def norm_addresses(message: str) -> str:
    """A message with object addresses (``0x...``) made run-independent."""
    return _ADDRESS.sub("0x...", message)


def norm_addresses_and_sessions(message: str) -> str:
    """A message with object addresses (and session numbers) made run-independent."""
    message = _ADDRESS.sub("0x...", message)
    return _SESSION_NUMBER.sub("session 'N' (this is 'M')", message)


def record_message(obs: Obs, label: str, err: BaseException | None, expected: str) -> None:
    """Record whether ``err``'s message starts with ``expected`` (the reference's words,
    with this run's real addresses) and, normalised, the part of it that should match."""
    if err is None:
        obs.append((label, "no error"))
        return
    message = str(err)
    expected_part = norm_addresses_and_sessions(expected)
    obs.append(
        (
            label,
            message.startswith(expected),
            norm_addresses_and_sessions(message)[: len(expected_part)],
        )
    )


def message_starts(err: BaseException | None, words: str) -> bool:
    """Whether there is an error and its message starts with ``words``."""
    return err is not None and str(err).startswith(words)


def message_starts_or_none(err: BaseException | None, words: str) -> bool | None:
    """Whether the error's message starts with ``words``; None if there is no error."""
    return None if err is None else str(err).startswith(words)


def not_bound(obj: object) -> str:
    """The reference's words for loading an attribute of a detached ``User``."""
    return (
        f"Instance <User at {hex(id(obj))}> is not bound to a Session; attribute refresh "
        "operation cannot proceed"
    )


# -- reading and changing the database behind a scenario's back -----------------------------


def user_ids(api: Api, engine: Engine, User: Any) -> list[Any]:
    """The committed rows, read through a separate session (outside any recording)."""
    with api.Session(engine) as s:
        return list(s.execute(select(User.id, User.name).order_by(User.id)).all())


def unrecorded_rows(obs: Obs, engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows read through a separate Core connection; its events are not recorded."""
    mark = len(obs.rec.events)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    del obs.rec.events[mark:]
    return rows


def behind_the_back(obs: Obs, engine: Engine, sql: str) -> None:
    """Run and commit ``sql`` on a separate Core connection, unrecorded."""
    mark = len(obs.rec.events)
    with engine.begin() as conn:
        conn.execute(text(sql))
    del obs.rec.events[mark:]


def enforce_foreign_keys(engine: Engine) -> Engine:
    """SQLite enforces foreign keys only when asked; PostgreSQL and MariaDB (InnoDB)
    always do."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def with_real_savepoints(engine: Engine) -> Engine:
    """pysqlite with real BEGIN / SAVEPOINT, as both libraries recommend for savepoints."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


def user_names(api: Api, engine: Engine, User: Any) -> list[str]:
    """The committed user names, in id order, read in a fresh session of ``api``."""
    with api.Session(engine) as s:
        return list(s.scalars(select(User.name).order_by(User.id)))


# -- session and mapper events ---------------------------------------------------------------

# The ORM's session events that sessionkit has, each with the kinds of its arguments.
SESSION_EVENT_ARGS: dict[str, tuple[str, ...]] = {
    "after_transaction_create": ("session", "transaction"),
    "after_transaction_end": ("session", "transaction"),
    "after_begin": ("session", "transaction", "connection"),
    "before_commit": ("session",),
    "after_commit": ("session",),
    "after_rollback": ("session",),
    "after_soft_rollback": ("session", "transaction"),
    "before_flush": ("session", "flush_context", "instances"),
    "after_flush": ("session", "flush_context"),
    "after_flush_postexec": ("session", "flush_context"),
    "before_attach": ("session", "instance"),
    "after_attach": ("session", "instance"),
    "transient_to_pending": ("session", "instance"),
    "pending_to_transient": ("session", "instance"),
    "pending_to_persistent": ("session", "instance"),
    "persistent_to_transient": ("session", "instance"),
    "persistent_to_detached": ("session", "instance"),
    "persistent_to_deleted": ("session", "instance"),
    "deleted_to_persistent": ("session", "instance"),
    "deleted_to_detached": ("session", "instance"),
    "detached_to_persistent": ("session", "instance"),
    "loaded_as_persistent": ("session", "instance"),
}
SESSION_EVENTS = tuple(SESSION_EVENT_ARGS)
MAPPER_EVENTS = (
    "before_insert",
    "after_insert",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
)
_MAPPER_EVENT_ARGS = ("mapper", "connection", "instance")
# Transitions the ORM fires for a batch of objects by walking a set (the objects of a flush,
# of a rolled-back transaction), in an order that depends on object addresses: a run of
# them is recorded sorted, by group (pending and persistent to transient come from one set).
_SET_ORDERED = {
    "pending_to_persistent": "pending_to_persistent",
    "persistent_to_deleted": "persistent_to_deleted",
    "pending_to_transient": "to_transient",
    "persistent_to_transient": "to_transient",
    "deleted_to_persistent": "deleted_to_persistent",
    "deleted_to_detached": "deleted_to_detached",
}


class EventLog:
    """Session and mapper event listeners that write each event into ``obs`` as a tuple
    of plain values, after the SQL the engine saw since the previous event: the order of
    events and statements is part of what two runs must agree on.

    Arguments are described, not kept: a session, transaction, connection or flush
    context by a number given in order of first appearance (so identities compare across
    runs: the transaction ``after_transaction_end`` announces is the one
    ``after_transaction_create`` did), a transaction also by ``nested``, its parent's
    number and its origin, an object by its class name, the values of ``label_keys`` in
    its ``__dict__`` (read without loading anything) and its state at that moment.

    A run of one batch transition (``pending_to_persistent`` after a flush...) is kept
    sorted: the ORM walks a set there (see ``_SET_ORDERED``).

    Every listener added through the log is removed by ``remove()`` (or on leaving the
    ``with`` block): a listener on a class would otherwise hear every later test.
    """

    def __init__(self, obs: Obs, label_keys: Sequence[str] = ("id", "name")) -> None:
        self.obs = obs
        self.api = obs.api
        self.label_keys = tuple(label_keys)
        self._numbers: dict[str, dict[int, int]] = {}
        self._keep: list[Any] = []  # numbered objects stay alive: their ids stay theirs
        self._listeners: list[tuple[Any, str, Callable[..., Any]]] = []
        obs.rec.clear()  # what the scenario did before listening is not part of the log

    # -- listening -----------------------------------------------------------

    def add(self, target: Any, name: str, fn: Callable[..., Any], **kw: Any) -> None:
        """``event.listen(target, name, fn, **kw)``, removed again by ``remove()``."""
        event.listen(target, name, fn, **kw)
        self._listeners.append((target, name, fn))

    def listen(self, target: Any, *names: str, **kw: Any) -> None:
        """Record the session events ``names`` (default: all of them) heard on ``target``."""
        for name in names or SESSION_EVENTS:
            self.add(target, name, self.recorder(name), **kw)

    def listen_mapper(self, target: Any, *names: str, **kw: Any) -> None:
        """Record the mapper events ``names`` (default: all six) heard on ``target``."""
        for name in names or MAPPER_EVENTS:
            self.add(target, name, self.recorder(name), **kw)

    def recorder(self, name: str, tag: str | None = None) -> Callable[..., None]:
        """A listener that records event ``name`` (as ``tag``, if given)."""
        kinds = SESSION_EVENT_ARGS.get(name, _MAPPER_EVENT_ARGS)

        def record(*args: Any) -> None:
            self.record(tag or name, kinds, args)

        return record

    def remove(self) -> None:
        """Remove every listener added through this log; safe to call more than once."""
        while self._listeners:
            target, name, fn = self._listeners.pop()
            if event.contains(target, name, fn):
                event.remove(target, name, fn)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # -- recording -----------------------------------------------------------

    def flush_sql(self) -> None:
        """Record the SQL seen since the last event (nothing if there was none)."""
        if self.obs.rec.without_pool():
            self.obs.sql()
        else:
            self.obs.rec.clear()

    def note(self, *fact: Any) -> None:
        """Record a fact of the scenario's own, in order with the events and SQL."""
        self.flush_sql()
        self.obs.append(fact)

    def record(self, name: str, kinds: Sequence[str], args: Sequence[Any]) -> None:
        self.flush_sql()
        assert len(args) == len(kinds), (name, args)
        entry = (name, *(self.describe(k, a) for k, a in zip(kinds, args, strict=True)))
        group = _SET_ORDERED.get(name)
        at = len(self.obs)
        while (
            group is not None
            and at > 0
            and _SET_ORDERED.get(self.obs[at - 1][0]) == group
            and repr(self.obs[at - 1]) > repr(entry)
        ):
            at -= 1
        self.obs.insert(at, entry)

    def number(self, kind: str, obj: Any) -> int:
        table = self._numbers.setdefault(kind, {})
        if id(obj) not in table:
            table[id(obj)] = len(table)
            self._keep.append(obj)
        return table[id(obj)]

    def describe(self, kind: str, arg: Any) -> Any:
        if kind == "session":
            return f"session {self.number('session', arg)}"
        if kind == "transaction":
            return self.transaction(arg)
        if kind == "connection":
            from sqlalchemy import Connection

            return (
                ("connection", self.number("connection", arg))
                if isinstance(arg, Connection)
                else ("not a Connection", type(arg).__name__)
            )
        if kind == "flush_context":
            return ("flush", self.number("flush", arg))
        if kind == "instances":
            return None if arg is None else sorted(repr(self.instance(o)) for o in arg)
        if kind == "mapper":
            return ("mapper", arg.class_.__name__)
        return self.instance(arg)

    def transaction(self, tx: Any) -> tuple[Any, ...]:
        """``("tx", number, nested, parent's number or None, origin)``."""
        parent = None if tx.parent is None else self.number("tx", tx.parent)
        return ("tx", self.number("tx", tx), tx.nested, parent, tx.origin.name)

    def instance(self, obj: Any) -> tuple[Any, ...]:
        """``(class name, *label values, state now)``."""
        labels = (obj.__dict__.get(k) for k in self.label_keys)
        return (type(obj).__name__, *labels, self.api.state(obj))


def event_outline(obs: Iterable[Any]) -> list[str]:
    """The order of what an ``EventLog`` recorded, one word each: the event name (or the
    fact's label), SQL steps as their event kinds (``"BEGIN"``, ``"INSERT"``...).

    Consecutive SQL events of one kind are one word: how many INSERTs a batch takes
    depends on the backend, a savepoint is an event and a statement, and SQLite with
    real savepoints sends BEGIN itself."""
    out: list[str] = []
    for o in obs:
        if o[0] != "sql":
            out.append(o[0])
            continue
        sql_words = event_kinds(o[1])
        out.extend(w for i, w in enumerate(sql_words) if i == 0 or w != sql_words[i - 1])
    return out
