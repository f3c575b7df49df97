"""Which object and attribute made the database (or its driver) refuse a flush.

A failed INSERT or UPDATE reports what the driver saw: "PostgreSQL text fields cannot
contain NUL (0x00) bytes", "cannot adapt type 'dict'", "NOT NULL constraint failed". The
flush knows more: the objects whose statements had not succeeded yet and the value each
one sent for each column. ``explain()`` finds the value that explains the error and
returns the same error, re-raised as a ``RejectedValueError`` flavour of its own class,
with one more sentence naming the object, the attribute and the fix. When no value
explains the error (a duplicate key, a lost connection), it returns None and the
original error propagates unchanged.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import BigInteger, Integer, SmallInteger, String, TypeDecorator
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)

from .exc import RejectedValueError, rejected_value_class
from .state import STATE_KEY, state_str

if TYPE_CHECKING:
    from sqlalchemy import Column
    from sqlalchemy.engine import Dialect

    from .mapping import Mapper

# (object, its mapper, {column key: value sent}) for each statement not yet succeeded.
Candidate = tuple[Any, "Mapper", Mapping[str, Any]]

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


class _Finding(NamedTuple):
    obj: Any
    attr: str
    evidence: bool  # the error's own text points at this value
    explanation: str


def explain(
    err: BaseException, dialect: Dialect, candidates: Iterable[Candidate]
) -> BaseException | None:
    """``err`` re-raised naming the object and attribute at fault, or None."""
    try:
        return _explain(err, dialect, candidates)
    except Exception:  # e.g. a value whose repr() fails: the original error is still right
        return None


def _explain(
    err: BaseException, dialect: Dialect, candidates: Iterable[Candidate]
) -> BaseException | None:
    if isinstance(err, RejectedValueError):
        return None
    if isinstance(err, StatementError):
        text = str(err.args[0]) if err.args else ""
        statement = err.statement or ""
        if not statement.startswith(_VERBS):
            return None
        preparer = dialect.identifier_preparer
        candidates = [
            c
            for c in candidates
            if statement.startswith(
                tuple(f"{verb}{preparer.format_table(c[1].table)} " for verb in _VERBS)
            )
        ]
    elif isinstance(err, (UnicodeEncodeError, OverflowError, TypeError, ValueError)):
        text = str(err)  # raised by the driver itself, before any SQL was sent
    else:
        return None
    if isinstance(err, IntegrityError):
        if "null" not in text.lower():
            return None  # a duplicate key or a foreign key: no single value is at fault
        findings = _not_null_findings(candidates, text)
    else:
        findings = _value_findings(err, candidates, dialect, text)
    if not isinstance(err, StatementError):
        # Raised by the driver (or by anything else) without a statement: blame a value
        # only if the error's own text points at it.
        findings = [f for f in findings if f.evidence]
    if not findings:
        return None
    finding = next((f for f in findings if f.evidence), findings[0])
    return _rejected(err, finding)


def _rejected(err: BaseException, finding: _Finding) -> BaseException | None:
    cls = rejected_value_class(type(err))
    try:
        if isinstance(err, SQLAlchemyError):
            new = cls.__new__(cls)
            new.__dict__.update(err.__dict__)
            # The driver's words stay first; ours follow, before the [SQL: ...] part.
            new.args = (f"{err.args[0]}\n{finding.explanation}", *err.args[1:])
            if isinstance(err, StatementError):
                new.__dict__["detail"] = list(err.detail)
        else:
            new = cls(*err.args)
            new.__dict__.update(err.__dict__)
    except Exception:  # pragma: no cover - an error class we cannot copy: keep it as is
        return None
    new.instance = finding.obj
    new.attribute = finding.attr
    new.explanation = finding.explanation
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


def _type_text(column: Column[Any], dialect: Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # pragma: no cover - a type this dialect cannot render
        return type(column.type).__name__


def _columns(mapper: Mapper, params: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    """(attribute, column, value) for each parameter that is a mapped column."""
    columns = mapper.table.c
    attr_for_column = mapper.attr_for_column
    for col_key, value in params.items():
        column = columns.get(col_key)
        if column is not None and column in attr_for_column:
            yield attr_for_column[column], column, value


def _not_null_findings(candidates: Iterable[Candidate], text: str) -> list[_Finding]:
    found = []
    for obj, mapper, params in candidates:
        for attr, column, value in _columns(mapper, params):
            if value is None and not column.nullable:
                found.append(
                    _Finding(
                        obj,
                        attr,
                        column.name in text,
                        f"{describe(obj, mapper)}.{attr} is None, but column "
                        f"{mapper.table.name}.{column.name} is NOT NULL; assign a value before "
                        f"flushing, or give the column a default.",
                    )
                )
    return found


def _value_findings(
    err: BaseException, candidates: Iterable[Candidate], dialect: Dialect, text: str
) -> list[_Finding]:
    found = []
    for obj, mapper, params in candidates:
        for attr, column, value in _columns(mapper, params):
            if value is None:
                continue
            why = _why_rejected(err, column, value, dialect, text)
            if why is not None:
                evidence, sentence = why
                who = f"{describe(obj, mapper)}.{attr}"
                found.append(_Finding(obj, attr, evidence, f"{who} {sentence}"))
    return found


def _why_rejected(
    err: BaseException, column: Column[Any], value: Any, dialect: Dialect, text: str
) -> tuple[bool, str] | None:
    """(the error text points at it, the rest of the sentence) if ``value`` cannot go
    into ``column``; None if nothing is wrong with it."""
    where = f"column {column.table.name}.{column.name}"
    if isinstance(value, str):
        if "\x00" in value and dialect.name == "postgresql":
            return (
                "NUL" in text or "0x00" in text,
                f"contains a NUL character (\\x00) at index {value.index(chr(0))}, which "
                f"PostgreSQL text columns cannot store; strip it (value.replace('\\x00', '')) "
                f"or use a LargeBinary column ({where}).",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as bad:
            return (
                isinstance(err, UnicodeEncodeError),
                f"contains a lone surrogate ({value[bad.start]!r}) at index {bad.start}, "
                f"which cannot be encoded as UTF-8 for {where}; decode the source text with "
                f"errors='replace' (or remove the character) before assigning it.",
            )
    col_type = column.type
    if not isinstance(col_type, TypeDecorator):  # a TypeDecorator converts values itself
        found = _plain_type_problem(err, column, value, dialect, text, where)
        if found is not None:
            return found
    problem = None
    if isinstance(err, StatementError) and not isinstance(err, DBAPIError):
        # Core failed while converting the parameters: find the value its type refuses.
        try:
            process = col_type._cached_bind_processor(dialect)
            if process is not None:
                process(value)
        except Exception as bad:
            problem = f"{type(bad).__name__}: {bad}"
    elif (
        not isinstance(err, StatementError)
        and not isinstance(value, _COMMON)
        and re.search(rf"\b{re.escape(type(value).__name__)}\b", text)
    ):
        # The driver refused while adapting it, naming the value's unusual type.
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return None
    name = type(value).__name__
    return (
        True,
        f"is {_short(value)} ({_an(name)} {name}), which {where} "
        f"({_type_text(column, dialect)}) cannot take ({problem}); assign a value of the "
        f"type the column expects (or None) before flushing.",
    )


def _plain_type_problem(
    err: BaseException, column: Column[Any], value: Any, dialect: Dialect, text: str, where: str
) -> tuple[bool, str] | None:
    col_type = column.type
    try:
        python_type = col_type.python_type
    except NotImplementedError:
        return None
    accepted = _PLAIN_TYPES.get(python_type)
    if accepted is None:
        return None
    type_text = _type_text(column, dialect)
    if not isinstance(value, accepted):
        name = type(value).__name__
        article = _ARTICLE.get(python_type, f"a {python_type.__name__}")
        evidence = bool(re.search(rf"\b{re.escape(name)}\b", text)) or (
            isinstance(value, str) and bool(value) and value[:40] in text
        )
        return (
            evidence,
            f"is {_short(value)} ({_an(name)} {name}), which {where} ({type_text}) cannot "
            f"store; assign {article} (or None) before flushing.",
        )
    length = col_type.length if isinstance(col_type, String) else None
    if isinstance(value, str) and length and len(value) > length and isinstance(err, DataError):
        return (
            True,
            f"is {len(value)} characters long, but {where} is {type_text}; shorten the value "
            f"or widen the column.",
        )
    if isinstance(col_type, Integer) and isinstance(value, int) and not isinstance(value, bool):
        bits = _integer_bits(col_type, dialect)
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return (
                "range" in text or "too large" in text,
                f"is {_short(value)}, out of range for {where} ({type_text}, {bits}-bit); "
                f"use a BigInteger or Numeric column, or a smaller value.",
            )
    return None


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _integer_bits(col_type: Integer, dialect: Dialect) -> int:
    if isinstance(col_type, BigInteger) or dialect.name == "sqlite":
        return 64
    if isinstance(col_type, SmallInteger):
        return 16
    return 32
