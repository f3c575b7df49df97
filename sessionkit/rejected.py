"""Which object and attribute made the database (or its driver) refuse a flush.

A failed INSERT or UPDATE reports what the driver saw: "PostgreSQL text fields cannot
contain NUL (0x00) bytes", "cannot adapt type 'dict'", "NOT NULL constraint failed". The
flush knows more: the objects whose statements had not succeeded yet and the value each
one sent for each column. ``explain()`` re-raises the same error as a
``RejectedValueError`` flavour of its own class, with one more sentence naming the object,
the attribute and the fix, but only for a value shown to be the cause: a wrong culprit
is worse than none. When no value is shown to be the cause (a duplicate key, a lost
connection, a refusal that needs the whole row), it returns None and the original error
propagates unchanged.

A value is the cause when, bound alone through its column's type, it fails the same way:
the same exception class and the same words, row and parameter numbers aside.

- A failure in Core's bind processor is replayed in-process on the value alone.
- A NULL refused by a NOT NULL column is shown by the database naming that column.
- Anything else the driver or the database refused is replayed by ``_Probe``, as a
  one-row INSERT into a temporary table with the same table name, column name and column
  type, on a private connection.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import functools
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    TypeDecorator,
    insert,
)
from sqlalchemy import column as column_clause
from sqlalchemy import table as table_clause
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InternalError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import NullPool

from .exc import RejectedValueError, rejected_value_class
from .state import STATE_KEY, state_str

if TYPE_CHECKING:
    from sqlalchemy import Column
    from sqlalchemy.engine import Connection, Dialect
    from sqlalchemy.sql.expression import TableClause

    from .mapping import Mapper

# (object, its mapper, {column key: value sent}) for each statement not yet succeeded.
Candidate = tuple[Any, "Mapper", Mapping[str, Any]]

# Values replayed on the database per failed flush, at most: each is a round trip.
MAX_PROBES = 24

# Column types whose Python type says exactly what a driver can take.
_PLAIN_TYPES: dict[type, tuple[type, ...]] = {
    int: (int, float, decimal.Decimal),
    float: (int, float, decimal.Decimal),
    decimal.Decimal: (int, float, decimal.Decimal),
    bool: (bool, int),
    str: (str,),
    bytes: (bytes, bytearray, memoryview),
    datetime.datetime: (datetime.datetime, datetime.date),
    datetime.date: (datetime.date,),
    datetime.time: (datetime.time,),
    datetime.timedelta: (datetime.timedelta,),
    uuid.UUID: (uuid.UUID, str),
}
# Types so common that their name in an error message proves nothing.
_COMMON = (str, int, float, bool, bytes, decimal.Decimal, datetime.date, datetime.time)
_ARTICLE = {int: "an int", str: "a str", bytes: "bytes", bool: "a bool", float: "a float"}
_VERBS = ("INSERT INTO ", "UPDATE ")
_NO_HINT = 3
_NUMBERS = re.compile(r"\d+")
_WORD = re.compile(r"\w+")
# What a value JSON cannot hold should become instead.
_JSON_INSTEAD: list[tuple[tuple[type, ...], str]] = [
    ((set, frozenset), "a list"),
    ((datetime.date, datetime.time), "an ISO string (value.isoformat())"),
    ((decimal.Decimal,), "a float or a str"),
    ((bytes, bytearray, memoryview), "a str (for example base64)"),
    ((uuid.UUID,), "a str (str(value))"),
]


class _Suspect(NamedTuple):
    obj: Any
    mapper: Mapper
    attr: str
    column: Column[Any]
    value: Any


def explain(
    err: BaseException, conn: Connection, candidates: Iterable[Candidate]
) -> BaseException | None:
    """``err`` re-raised naming the object and attribute at fault, or None."""
    probe = _Probe(conn)
    try:
        return _explain(err, conn.dialect, candidates, probe)
    except Exception:  # e.g. a value whose repr() fails: the original error is still right
        return None
    finally:
        probe.close()


def _explain(
    err: BaseException, dialect: Dialect, candidates: Iterable[Candidate], probe: _Probe
) -> BaseException | None:
    if isinstance(err, RejectedValueError):
        return None
    if isinstance(err, StatementError):
        if isinstance(err, DBAPIError) and err.connection_invalidated:
            return None
        statement = err.statement or ""
        if not statement.startswith(_VERBS) or err.orig is None:
            return None
        preparer = dialect.identifier_preparer
        candidates = [
            c
            for c in candidates
            if statement.startswith(
                tuple(f"{verb}{preparer.format_table(c[1].table)} " for verb in _VERBS)
            )
        ]
        cause: BaseException = err.orig
    elif isinstance(err, (UnicodeEncodeError, OverflowError, TypeError, ValueError)):
        cause = err  # raised by the driver itself, before any SQL was sent
    else:
        return None
    text = str(cause)
    suspects = list(_suspects(candidates))
    if isinstance(err, IntegrityError):
        # A duplicate key or a foreign key: no single value is at fault. A NULL is, when
        # the database names its column.
        first_line = text.partition("\n")[0]  # not a DETAIL quoting the row's values
        if "null" not in first_line.lower():
            return None
        for s in suspects:
            if s.value is None and _named(first_line, s.column):
                return _rejected(err, s, _not_null_sentence(s))
        return None
    if isinstance(err, InternalError):
        return None
    # Mostly a lock, a timeout or the server going away: only a value with a hint is tried.
    hinted_only = isinstance(err, OperationalError)
    in_core = isinstance(err, StatementError) and not isinstance(err, DBAPIError)
    for rank, s in _ranked(suspects, text, dialect):
        if hinted_only and rank == _NO_HINT:
            break
        if in_core:
            shown = _same_words(cause, _processor_error(s.column, s.value, dialect))
        else:
            shown = _same_failure(err, probe.refusal(s.column, s.value))
        if shown:
            return _rejected(err, s, _sentence(s, dialect, cause))
    return None


def _suspects(candidates: Iterable[Candidate]) -> Iterator[_Suspect]:
    for obj, mapper, params in candidates:
        columns = mapper.table.c
        attr_for_column = mapper.attr_for_column
        for col_key, value in params.items():
            column = columns.get(col_key)
            if column is not None and column in attr_for_column:
                yield _Suspect(obj, mapper, attr_for_column[column], column, value)


def _ranked(suspects: list[_Suspect], text: str, dialect: Dialect) -> list[tuple[int, _Suspect]]:
    """The non-None values with their rank, the likeliest causes first, each (column,
    value) once.

    Only the order comes from the error's text and the values' types: a value is blamed
    only once it is shown to fail alone.
    """
    first_line, lowered = text.partition("\n")[0], text.lower()
    by_column: dict[Column[Any], tuple[bool, bool]] = {}
    seen: set[Any] = set()
    ranked: list[tuple[int, int, _Suspect]] = []
    for n, s in enumerate(suspects):
        value = s.value
        if value is None:
            continue  # NULL binds everywhere; only NOT NULL refuses it (see above)
        try:
            key: Any = (s.column, type(value), value)
            if key in seen:
                continue
        except Exception:  # unhashable: told apart by repr
            key = (s.column, type(value), repr(value))
            if key in seen:
                continue
        seen.add(key)
        column = by_column.get(s.column)
        if column is None:
            type_name = _type_text(s.column, dialect).partition("(")[0].strip().lower()
            column = by_column[s.column] = (
                _named(first_line, s.column),
                bool(type_name) and type_name in lowered,
            )
        if column[0]:
            rank = 0
        else:
            try:
                hints = (_reason(s.column, value, dialect) is not None) + (
                    column[1] or _mentioned(text, value)
                )
            except Exception:
                hints = 0
            rank = _NO_HINT - hints
        ranked.append((rank, n, s))
    ranked.sort(key=lambda r: r[:2])
    return [(rank, s) for rank, _, s in ranked]


def _named(text: str, column: Column[Any]) -> bool:
    """Whether the error's text names ``column``, as the databases quote names."""
    name = column.name
    return any(
        form in text
        for form in (f'"{name}"', f"'{name}'", f"`{name}`", f"{column.table.name}.{name}")
    )


def _mentioned(text: str, value: Any) -> bool:
    """Whether the text mentions the value or its unusual type."""
    if isinstance(value, str):
        return bool(value) and value[:40] in text
    name = type(value).__name__
    return (
        not isinstance(value, _COMMON)
        and name in text
        and re.search(rf"\b{re.escape(name)}\b", text) is not None
    )


# -- showing that a value fails alone ---------------------------------------------------------


def _processor_error(column: Column[Any], value: Any, dialect: Dialect) -> BaseException | None:
    """What Core's bind processor for ``column`` raises for ``value`` alone, or None."""
    process = column.type._cached_bind_processor(dialect)
    if process is None:
        return None
    try:
        process(value)
    except Exception as err:
        return err
    return None


def _same_words(a: BaseException, b: BaseException | None) -> bool:
    """Same class, same first line; numbers (rows, parameter positions) may differ."""
    if b is None or type(a) is not type(b):
        return False
    first_a, first_b = (str(e).partition("\n")[0] for e in (a, b))
    return _NUMBERS.sub("#", first_a) == _NUMBERS.sub("#", first_b)


def _same_failure(err: BaseException, alone: BaseException | None) -> bool:
    if alone is None or type(alone) is not type(err):
        return False
    if isinstance(err, StatementError) and isinstance(alone, StatementError):
        return err.orig is not None and _same_words(err.orig, alone.orig)
    return _same_words(err, alone)


class _CannotProbe(Exception):
    """This dialect or engine gives no safe way to replay a value."""


class _Probe:
    """Replays one value at a time as a one-row INSERT, as the flush sent it.

    The INSERT goes into a temporary table named like the real one, with one column named
    and typed like the real one, so the database applies the same conversion and checks
    and words its refusal the same way; the session's dialect renders it, so the value
    goes through the same bind processors and casts.

    It runs on a private connection, never the session's: there, PostgreSQL refuses every
    statement until ROLLBACK, and elsewhere the probe would run inside a transaction the
    application may go on with (a flush that failed inside a SAVEPOINT). Nor does it
    check a connection out of the engine's pool: the flush would wait when the pool is
    exhausted, SingletonThreadPool and StaticPool would hand back the session's own
    connection, and the application's listeners would see statements it never sent. The
    private connection is made by the engine's own creator (its URL, connect arguments
    and ``do_connect`` hooks) and set up by the dialect's ``on_connect``; for SQLite it is
    an in-memory database of the same driver, whose checks do not depend on the file. It
    works in one transaction, each INSERT inside a SAVEPOINT, rolls everything back and
    closes; temporary tables are invisible to other connections and lock nothing the
    application uses. It opens only when a value needs it, and replays at most
    ``MAX_PROBES`` values.
    """

    def __init__(self, conn: Connection) -> None:
        self.session_conn = conn
        self.dialect = conn.dialect
        self.budget = MAX_PROBES
        self.conn: Connection | None = None
        self.broken = False
        # The column whose temporary table exists, the table, and how to drop it.
        self.current: tuple[Column[Any], TableClause, str] | None = None

    def refusal(self, column: Column[Any], value: Any) -> BaseException | None:
        """The error inserting ``value`` alone into a copy of ``column`` raises; None if
        the database takes it or it cannot be tried."""
        if self.broken or self.budget <= 0:
            return None
        self.budget -= 1
        try:
            conn = self._connection()
            target = self._table_for(conn, column)
            savepoint = conn.begin_nested()
        except Exception:
            self.broken = True
            return None
        refused: BaseException | None = None
        try:
            conn.execute(insert(target), {column.name: value})
        except Exception as err:
            refused = err
        try:
            savepoint.rollback()
        except Exception:
            self.broken = True
            return None
        if isinstance(refused, DBAPIError) and refused.connection_invalidated:
            self.broken = True
            return None
        return refused

    def _connection(self) -> Connection:
        if self.conn is None:
            self.conn = _private_connection(self.session_conn)
            self.conn.begin()
        return self.conn

    def _table_for(self, conn: Connection, column: Column[Any]) -> TableClause:
        if self.current is not None:
            if self.current[0] is column:
                return self.current[1]
            conn.exec_driver_sql(self.current[2])
            self.current = None
        dialect = self.dialect
        quote = dialect.identifier_preparer.quote
        name = quote(column.table.name)
        options = ""
        if dialect.name == "postgresql":
            schema: str | None = "pg_temp"
            drop = f"DROP TABLE pg_temp.{name}"
        elif dialect.name == "sqlite":
            schema = "temp"
            drop = f"DROP TABLE temp.{name}"
        elif dialect.name in ("mysql", "mariadb"):
            schema = None  # a temporary table hides the real one on this connection only
            drop = f"DROP TEMPORARY TABLE {name}"
            kwargs = column.table.kwargs
            charset = kwargs.get("mysql_charset") or kwargs.get("mariadb_charset")
            collate = kwargs.get("mysql_collate") or kwargs.get("mariadb_collate")
            if isinstance(charset, str) and _WORD.fullmatch(charset):
                options += f" DEFAULT CHARSET={charset}"
            if isinstance(collate, str) and _WORD.fullmatch(collate):
                options += f" COLLATE={collate}"
        else:
            raise _CannotProbe(dialect.name)
        target = f"{schema}.{name}" if schema else name
        type_sql = column.type.compile(dialect=dialect)
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {target} ({quote(column.name)} {type_sql}){options}"
        )
        table = table_clause(
            column.table.name, column_clause(column.name, column.type), schema=schema
        )
        self.current = (column, table, drop)
        return table

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):  # the original error matters, not this one
            conn.close()  # rolls back; the temporary tables go with the connection


def _private_connection(session_conn: Connection) -> Connection:
    dialect = session_conn.dialect
    engine = session_conn.engine
    if dialect.name == "sqlite":
        raw = dialect.loaded_dbapi.connect(":memory:")
        raw.isolation_level = None  # SQLite's own transactions: SAVEPOINT works as written
    else:
        creator = getattr(engine.pool, "_creator", None)
        if creator is None:
            raise _CannotProbe("no creator")
        raw = creator()
        if raw is session_conn.connection.dbapi_connection:
            raise _CannotProbe("the creator shares the session's connection")  # not closed
        try:
            setup = dialect.on_connect()
            if setup is not None:
                setup(raw)
        except Exception:
            raw.close()
            raise
    private = Engine(NullPool(lambda: raw, dialect=dialect), dialect, engine.url)
    try:
        return private.connect()
    except Exception:
        raw.close()
        raise


# -- the sentence -----------------------------------------------------------------------------


def _rejected(err: BaseException, s: _Suspect, sentence: str) -> BaseException | None:
    cls = rejected_value_class(type(err))
    try:
        if isinstance(err, SQLAlchemyError):
            new = cls.__new__(cls)
            new.__dict__.update(err.__dict__)
            # The driver's words stay first; ours follow, before the [SQL: ...] part.
            new.args = (f"{err.args[0]}\n{sentence}", *err.args[1:])
            if isinstance(err, StatementError):
                new.__dict__["detail"] = list(err.detail)
        else:
            new = cls(*err.args)
            new.__dict__.update(err.__dict__)
    except Exception:  # pragma: no cover - an error class we cannot copy: keep it as is
        return None
    new.instance = s.obj
    new.attribute = s.attr
    new.explanation = sentence
    return new


def describe(obj: Any, mapper: Mapper) -> str:
    """``Item(id='k1')``: the class and primary key, or ``<Item at 0x...>`` without one."""
    state = obj.__dict__.get(STATE_KEY)
    key = getattr(state, "key", None)
    if key is None:
        key = mapper.key_from_dict(obj.__dict__)
    if key is None:
        return state_str(obj)
    values = (key,) if mapper.single_pk else key
    pairs = ", ".join(f"{a}={_short(v)}" for a, v in zip(mapper.pk_attr_keys, values, strict=True))
    return f"{type(obj).__name__}({pairs})"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}...{text[-10:]}"


@functools.lru_cache(maxsize=256)
def _type_text(column: Column[Any], dialect: Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # pragma: no cover - a type this dialect cannot render
        return type(column.type).__name__


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _a_type(value: Any) -> str:
    name = type(value).__name__
    return f"{_an(name)} {name}"


def _not_null_sentence(s: _Suspect) -> str:
    return (
        f"{describe(s.obj, s.mapper)}.{s.attr} is None, but column {s.column.table.name}."
        f"{s.column.name} is NOT NULL; assign a value before flushing, or give the column "
        f"a default."
    )


def _sentence(s: _Suspect, dialect: Dialect, cause: BaseException) -> str:
    """The object and attribute, what is wrong with the value, and the fix."""
    why = _reason(s.column, s.value, dialect)
    if why is None:
        column = s.column
        problem = f"{type(cause).__name__}: {str(cause).partition(chr(10))[0]}"
        why = (
            f"is {_short(s.value)} ({_a_type(s.value)}), which column {column.table.name}."
            f"{column.name} ({_type_text(column, dialect)}) cannot take ({problem}); assign "
            f"a value of the type the column expects (or None) before flushing."
        )
    return f"{describe(s.obj, s.mapper)}.{s.attr} {why}"


def _reason(column: Column[Any], value: Any, dialect: Dialect) -> str | None:
    """The rest of the sentence when the value's kind says why ``column`` cannot take
    it; None when nothing specific is known."""
    where = f"column {column.table.name}.{column.name}"
    type_text = _type_text(column, dialect)
    if isinstance(value, str):
        if "\x00" in value and dialect.name == "postgresql":
            return (
                f"contains a NUL character (\\x00) at index {value.index(chr(0))}, which "
                f"PostgreSQL text columns cannot store; strip it (value.replace('\\x00', '')) "
                f"or use a LargeBinary column ({where})."
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as bad:
            return (
                f"contains a lone surrogate ({value[bad.start]!r}) at index {bad.start}, "
                f"which cannot be encoded as UTF-8 for {where}; decode the source text with "
                f"errors='replace' (or remove the character) before assigning it."
            )
    col_type = column.type
    if isinstance(col_type, JSON):
        return _json_reason(value, where, type_text)
    if isinstance(col_type, TypeDecorator):
        return None  # it converts values itself
    return _plain_type_reason(col_type, value, dialect, where, type_text)


def _json_reason(value: Any, where: str, type_text: str) -> str | None:
    found = _json_trouble(value, "", nan=False) or _json_trouble(value, "", nan=True)
    if found is None:
        return None
    path, part = found
    if isinstance(part, float):
        held = f"holds {part!r} at {path}" if path else f"is {part!r}"
        return (
            f"{held}, which {where} ({type_text}) cannot store: JSON has no NaN or Infinity; "
            f"use None or a string instead before flushing."
        )
    instead = next(
        (text for kinds, text in _JSON_INSTEAD if isinstance(part, kinds)),
        "a dict, list, str, int, float, bool or None",
    )
    held = f"{'holds' if path else 'is'} {_short(part)} ({_a_type(part)})"
    if path:
        held += f" at {path}"
    return (
        f"{held}, which JSON cannot represent, so {where} ({type_text}) cannot store it; "
        f"convert it to {instead} before flushing."
    )


def _json_trouble(value: Any, path: str, nan: bool, depth: int = 0) -> tuple[str, Any] | None:
    """(where, what) of the first part of ``value`` JSON cannot hold: a type it has no
    form for, or (``nan=True``) a NaN or an infinity."""
    if depth > 50 or value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return (path, value) if nan and not math.isfinite(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                return None if nan else (path, key)
            found = _json_trouble(item, f"{path}[{key!r}]", nan, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = _json_trouble(item, f"{path}[{n}]", nan, depth + 1)
            if found is not None:
                return found
        return None
    return None if nan else (path, value)


def _plain_type_reason(
    col_type: Any, value: Any, dialect: Dialect, where: str, type_text: str
) -> str | None:
    try:
        python_type = col_type.python_type
    except NotImplementedError:
        return None
    accepted = _PLAIN_TYPES.get(python_type)
    if accepted is None:
        return None
    if isinstance(col_type, Integer) and isinstance(value, bool):
        return (
            f"is {value!r} (a bool), which {where} ({type_text}) cannot store; assign "
            f"int(value) (or None) before flushing."
        )
    if not isinstance(value, accepted):
        article = _ARTICLE.get(python_type, f"a {python_type.__name__}")
        return (
            f"is {_short(value)} ({_a_type(value)}), which {where} ({type_text}) cannot "
            f"store; assign {article} (or None) before flushing."
        )
    length = col_type.length if isinstance(col_type, String) else None
    if isinstance(value, str) and length and len(value) > length:
        return (
            f"is {len(value)} characters long, but {where} is {type_text}; shorten the value "
            f"or widen the column."
        )
    if isinstance(col_type, Integer) and isinstance(value, int):
        bits = _integer_bits(col_type, dialect)
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return (
                f"is {_short(value)}, out of range for {where} ({type_text}, {bits}-bit); "
                f"use a BigInteger or Numeric column, or a smaller value."
            )
    if isinstance(col_type, Numeric) and not isinstance(col_type, Float):
        digits = _integer_digits(col_type)
        if digits is not None and _too_large(value, digits):
            return (
                f"is {_short(value)}, too large for {where} ({type_text}), which holds at "
                f"most {digits} digits before the decimal point; use a Numeric with more "
                f"precision, or a smaller value."
            )
    return None


def _integer_bits(col_type: Integer, dialect: Dialect) -> int:
    if isinstance(col_type, BigInteger) or dialect.name == "sqlite":
        return 64
    if isinstance(col_type, SmallInteger):
        return 16
    return 32


def _integer_digits(col_type: Numeric[Any]) -> int | None:
    precision = col_type.precision
    if precision is None:
        return None
    return int(precision) - int(col_type.scale or 0)


def _too_large(value: Any, digits: int) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        return False
    try:
        number = decimal.Decimal(value)
    except (ValueError, decimal.InvalidOperation):
        return False
    return number.is_finite() and abs(number) >= decimal.Decimal(10) ** digits
