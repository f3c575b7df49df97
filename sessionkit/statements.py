"""The statements a flush emits for one mapped class, built once per class and dialect.

``Facts`` gathers what the flush needs to know about a class's columns (defaults, keys,
what the database generates) and its INSERT, UPDATE and DELETE statements; the helpers
below put what a statement produced (generated keys, defaults) back on the objects. The
order in which statements run is ``flush.py``'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam
from sqlalchemy.engine import Connection

from .exc import StaleDataError
from .state import STATE_KEY, InstanceState

if TYPE_CHECKING:
    from .mapping import Mapper

# The bind parameter holding the version an UPDATE or DELETE expects to find.
VERSION_PARAM = "sk_expected_version"


class Facts:
    """Per-mapper facts the flush needs, computed on first flush of that class."""

    def __init__(self, mapper: Mapper, dialect: Any) -> None:
        table = mapper.table
        self.insert_as_none = [
            c.key
            for c in mapper.columns
            if not c.primary_key
            and c.server_default is None
            and c.default is None
            and not c.type.should_evaluate_none
        ]
        self.evaluates_none = frozenset(
            c.key for c in mapper.columns if c.type.should_evaluate_none
        )
        self.pk_col_keys = frozenset(c.key for c in mapper.pk_columns)
        self.server_default_cols = [
            c
            for c in mapper.columns
            if c.server_default is not None
            or (c.default is not None and c.default.is_clause_element)
        ]
        self.server_default_keys = frozenset(c.key for c in self.server_default_cols)
        self.prefer_eager = bool(table.implicit_returning and dialect.insert_executemany_returning)
        self.build_params, self.pk_mask, self.server_default_mask = _compile_param_builder(
            mapper, self
        )
        self.insert = table.insert()
        # The UPDATE's primary-key parameter names, in primary-key order.
        self.pk_labels = tuple(str(c._label) for c in mapper.pk_columns)
        self.update = table.update().where(
            and_(*(c == bindparam(c._label, type_=c.type) for c in mapper.pk_columns))
        )
        self.delete = table.delete().where(
            and_(*(c == bindparam(c.key, type_=c.type) for c in mapper.pk_columns))
        )
        vcol = mapper.version_column
        if vcol is not None:
            expected = vcol == bindparam(VERSION_PARAM, type_=vcol.type)
            self.update = self.update.where(expected)
            self.delete = self.delete.where(expected)


def _compile_param_builder(
    mapper: Mapper, facts: Facts
) -> tuple[Callable[[dict[str, Any]], tuple[dict[str, Any], int]], int, int]:
    """Generate ``build(d) -> (params, mask)`` for INSERTs of one mapper.

    Columns without any default are always sent (NULL when unset), as the reference does;
    the others (primary key, defaults, types that store NULL themselves) only when set,
    and ``mask`` has one bit per such column present, so records with the same mask share
    one executemany.
    """
    always = set(facts.insert_as_none)
    lines = ["def build(d):"]
    fixed = [
        f"{col.key!r}: d.get({attr!r})"
        for attr, col in zip(mapper.attr_keys, mapper.columns, strict=True)
        if col.key in always
    ]
    lines.append("    p = {" + ", ".join(fixed) + "}")
    lines.append("    m = 0")
    pk_mask = default_mask = 0
    bit = 1
    for attr, col in zip(mapper.attr_keys, mapper.columns, strict=True):
        if col.key in always:
            continue
        if col.key in facts.evaluates_none:
            lines.append(f"    if {attr!r} in d:")
            lines.append(f"        p[{col.key!r}] = d[{attr!r}]")
        else:
            lines.append(f"    v = d.get({attr!r})")
            lines.append("    if v is not None:")
            lines.append(f"        p[{col.key!r}] = v")
        lines.append(f"        m |= {bit}")
        if col.primary_key:
            pk_mask |= bit
        if col.key in facts.server_default_keys:
            default_mask |= bit
        bit <<= 1
    lines.append("    return p, m")
    namespace: dict[str, Any] = {}
    exec(
        compile(
            "\n".join(lines), f"<sessionkit insert params for {mapper.class_.__name__}>", "exec"
        ),
        namespace,
    )
    return namespace["build"], pk_mask, default_mask


def facts_for(mapper: Mapper, conn: Connection) -> Facts:
    key = ("flush_facts", conn.dialect.name, conn.dialect.driver)
    facts = mapper.statement_cache.get(key)
    if facts is None:
        facts = mapper.statement_cache[key] = Facts(mapper, conn.dialect)
    assert isinstance(facts, Facts)
    return facts


def set_pk(mapper: Mapper, d: dict[str, Any], pk: Sequence[Any] | None) -> None:
    if pk is None:
        return
    for attr, value in zip(mapper.pk_attr_keys, pk, strict=True):
        if d.get(attr) is None:
            d[attr] = value


def postfetch(
    mapper: Mapper,
    obj: Any,
    state: InstanceState,
    compiled: Any,
    cparams: Mapping[str, Any],
    returned: Sequence[Any] | None,
) -> None:
    """Values the INSERT produced: RETURNING columns and Python defaults land on the
    object; server-side values not returned are expired so the next read loads them."""
    d = obj.__dict__
    attr_for_column = mapper.attr_for_column
    returning = compiled.effective_returning or ()
    if returned is not None:
        for value, col in zip(returned, returning, strict=False):
            if col.primary_key:
                continue
            attr = attr_for_column.get(col)
            if attr is not None:
                d[attr] = value
    for col in compiled.prefetch:
        attr = attr_for_column.get(col)
        if attr is not None and col.key in cparams:
            d[attr] = cparams[col.key]
    expire = [
        attr_for_column[c]
        for c in compiled.postfetch
        if c in attr_for_column and c not in returning
    ]
    for attr in expire:
        d.pop(attr, None)
    state.expired = frozenset(expire) if expire else None


def apply_update_defaults(
    mapper: Mapper, obj: Any, compiled: Any, cparams: Mapping[str, Any]
) -> bool:
    """Values the UPDATE itself produced: Python ``onupdate`` values land on the object,
    SQL-expression and server-side ones are expired so the next read loads them."""
    d = obj.__dict__
    attr_for_column = mapper.attr_for_column
    for col in compiled.prefetch:
        attr = attr_for_column.get(col)
        if attr is not None and col.key in cparams:
            d[attr] = cparams[col.key]
    expire = [attr_for_column[c] for c in compiled.postfetch if c in attr_for_column]
    if expire:
        state = d[STATE_KEY]
        for attr in expire:
            d.pop(attr, None)
        state.expired = frozenset(expire).union(state.expired or ())
    return bool(expire)


def version_conflict(mapper: Mapper, verb: str, obj: Any, params: dict[str, Any]) -> StaleDataError:
    state = obj.__dict__[STATE_KEY]
    return StaleDataError(
        f"{verb} statement on table {mapper.table.name!r} expected to "
        f"{verb.lower()} 1 row(s); 0 were matched. {type(obj).__name__} with primary key "
        f"{state.key!r} was changed or deleted by another transaction since it was loaded "
        f"(expected {mapper.version_attr}={params[VERSION_PARAM]!r}); this change was not "
        f"saved. Roll back, load the object again (session.refresh / session.get) and "
        f"apply the change to the current version."
    )
