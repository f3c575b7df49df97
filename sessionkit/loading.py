"""Rows into objects, and expired objects back from their rows.

The loader is the hottest path of the library: for each row it does one identity-map
lookup and, for a new object, one ``__dict__.update`` plus a small state object. Rows for
objects already in the map never overwrite loaded or modified values; they only fill
attributes that were expired.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, or_, select, tuple_
from sqlalchemy.engine import Connection

from .state import STATE_KEY, Expiry, InstanceState

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper


def load_rows(
    imap: IdentityMap,
    mapper: Mapper,
    rows: Iterable[Sequence[Any]],
    session_ref: weakref.ref[Any],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
) -> list[Any]:
    """Objects for ``rows``, whose columns are exactly ``mapper.columns`` in order."""
    sub = imap.sub(mapper)
    sub_get = sub.get
    on_dead = imap.on_dead
    cls = mapper.class_
    new = object.__new__
    keys = mapper.attr_keys
    row_pk = mapper.row_pk
    single = mapper.single_pk
    make_ref = weakref.ref
    make_state = InstanceState
    out: list[Any] = []
    append = out.append
    for row in rows:
        pk = row_pk(row)
        if pk is None or (not single and None in pk):
            append(None)
            continue
        ref = sub_get(pk)
        if ref is not None:
            obj = ref()
            if obj is not None:
                state = obj.__dict__[STATE_KEY]
                if state.expired or populate_existing:
                    merge_row(obj, state, row, populate_existing, modified)
                append(obj)
                continue
        obj = new(cls)
        d: dict[str, Any] = obj.__dict__
        d.update(zip(keys, row, strict=False))
        d[STATE_KEY] = make_state(mapper, pk, session_ref)
        sub[pk] = make_ref(obj, on_dead)
        append(obj)
    return out


def merge_row(
    obj: Any,
    state: InstanceState,
    row: Sequence[Any],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
) -> None:
    """A row for an object already in the identity map."""
    d = obj.__dict__
    keys = state.mapper.attr_keys
    if populate_existing:
        d.update(zip(keys, row, strict=False))
        state.expired = None
        state.clear_history()
        modified.pop(state, None)
        return
    expired = state.expired
    if expired:
        for k, v in zip(keys, row, strict=False):
            if k in expired and k not in d:
                d[k] = v
        state.expired = None


def pk_params(mapper: Mapper, key: Any) -> dict[str, Any]:
    if mapper.single_pk:
        return {"pk_1": key}
    return {f"pk_{i}": v for i, v in enumerate(key, 1)}


def select_by_pk(mapper: Mapper, keys: tuple[str, ...]) -> Select[Any]:
    """``SELECT <keys> FROM table WHERE pk = :pk_1``, built once per column set.

    The bind names (``pk_1``, ``pk_2``) are the reference's, so the SQL text is identical.
    """
    cache_key = ("select_by_pk", keys)
    stmt = mapper.statement_cache.get(cache_key)
    if stmt is None:
        cols = [mapper.column_for_attr[k] for k in keys]
        where = and_(
            *(c == bindparam(f"pk_{i}", type_=c.type) for i, c in enumerate(mapper.pk_columns, 1))
        )
        stmt = mapper.statement_cache[cache_key] = select(*cols).where(where)
    assert isinstance(stmt, Select)
    return stmt


def fetch_by_pk(
    conn: Connection, mapper: Mapper, key: Any, keys: tuple[str, ...]
) -> Sequence[Any] | None:
    return conn.execute(select_by_pk(mapper, keys), pk_params(mapper, key)).first()


def apply_loaded(
    obj: Any, state: InstanceState, keys: tuple[str, ...], row: Sequence[Any], overwrite: bool
) -> None:
    """Put a refreshed row into ``__dict__``; unflushed changes win unless ``overwrite``."""
    d = obj.__dict__
    if overwrite:
        d.update(zip(keys, row, strict=False))
    else:
        for k, v in zip(keys, row, strict=False):
            if k not in d:
                d[k] = v
    expired = state.expired
    if expired:
        rest = expired.difference(keys)
        state.expired = frozenset(rest) if rest else None


def expire_state(
    obj: Any, state: InstanceState, expiry: Expiry, keys: Iterable[str] | None
) -> None:
    """Forget loaded values (all, or ``keys``) and any unflushed changes to them."""
    d = obj.__dict__
    mapper = state.mapper
    if keys is None:
        if d.keys() <= mapper.dict_keys:
            # Only columns and the state are present: replace the dict wholesale.
            obj.__dict__ = {STATE_KEY: state}
        else:
            for k in mapper.attr_keys:
                d.pop(k, None)
        state.expired = mapper.all_attrs
        state.committed = None
        state.modified = False
    else:
        keys = list(keys)
        for k in keys:
            d.pop(k, None)
        state.expired = frozenset(keys).union(state.expired or ())
        if state.committed:
            for k in keys:
                state.committed.pop(k, None)
    state.expired_by = expiry


def select_by_pks(mapper: Mapper, dialect: Any, keys: list[Any]) -> Select[Any]:
    """``SELECT <all columns> WHERE pk IN (...)`` for a batched refresh.

    Composite keys use a tuple IN where the dialect supports it, OR-ed conditions
    otherwise.
    """
    cols = mapper.columns
    if mapper.single_pk:
        stmt = mapper.statement_cache.get("select_in")
        if stmt is None:
            pk = mapper.pk_columns[0]
            stmt = mapper.statement_cache["select_in"] = select(*cols).where(
                pk.in_(bindparam("pk_values", expanding=True))
            )
        assert isinstance(stmt, Select)
        return stmt
    if getattr(dialect, "tuple_in_values", False):
        return select(*cols).where(tuple_(*mapper.pk_columns).in_(keys))
    return select(*cols).where(
        or_(*(and_(*(c == v for c, v in zip(mapper.pk_columns, k, strict=True))) for k in keys))
    )
