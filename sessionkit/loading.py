"""Loading: statements that return rows, rows into results, expired objects reloaded.

Everything here takes a ``Connection`` and the identity map, never the Session: the
Session decides *when* to load (after its autoflush, inside its transaction), this
module decides *how*. Building objects from rows is ``loader.py``'s job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Enum,
    Executable,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection, Result
from sqlalchemy.engine.result import ChunkedIteratorResult, SimpleResultMetaData
from sqlalchemy.sql.selectable import ForUpdateArg

from .aliasing import ALIAS_KEY, FromStatement
from .exc import InvalidRequestError, ObjectDeletedError
from .loader import load_rows
from .mapping import mapper_of_class
from .state import STATE_KEY, InstanceState, state_str

if TYPE_CHECKING:
    import weakref

    from sqlalchemy.sql.selectable import ForUpdateParameter

    from .identity import IdentityMap
    from .mapping import Mapper

Pair = tuple[Any, InstanceState]
# Per selected element: (its mapper or None, how many result columns, its result key).
Plan = list[tuple["Mapper | None", int, "str | None"]]


def pk_params(mapper: Mapper, key: Any) -> dict[str, Any]:
    if mapper.single_pk:
        return {"pk_1": key}
    return {f"pk_{i}": v for i, v in enumerate(key, 1)}


def select_by_pk(
    mapper: Mapper, keys: tuple[str, ...], lock: ForUpdateArg | None = None
) -> Select[Any]:
    """``SELECT <keys> FROM table WHERE pk = :pk_1``, built once per column set.

    The bind names (``pk_1``, ``pk_2``) are the reference's, so the SQL text is identical.
    ``lock`` adds ``FOR UPDATE`` (or the dialect's variant; SQLite renders nothing) to a
    copy, so the cached statement stays lock-free.
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
    return stmt if lock is None else _locked(stmt, lock)


def select_entity_by_pk(mapper: Mapper, lock: ForUpdateArg | None = None) -> Select[Any]:
    """``select(Entity).where(pk = :pk_1)``: a get() that loads relationships with it."""
    stmt = mapper.statement_cache.get("entity_by_pk")
    if stmt is None:
        where = and_(
            *(c == bindparam(f"pk_{i}", type_=c.type) for i, c in enumerate(mapper.pk_columns, 1))
        )
        stmt = mapper.statement_cache["entity_by_pk"] = select(mapper.selectable).where(where)
    assert isinstance(stmt, Select)
    return stmt if lock is None else _locked(stmt, lock)


def _locked(stmt: Select[Any], lock: ForUpdateArg) -> Select[Any]:
    return stmt.with_for_update(
        nowait=lock.nowait,
        read=lock.read,
        of=cast(Any, lock.of),  # already coerced: a list of columns or tables
        skip_locked=lock.skip_locked,
        key_share=lock.key_share,
    )


_FOR_UPDATE_KEYS = ("nowait", "read", "of", "skip_locked", "key_share")


def for_update_arg(value: ForUpdateParameter, call: str) -> ForUpdateArg | None:
    """``with_for_update=`` of ``get()`` / ``refresh()`` checked, before any SQL runs.

    The reference's reading: ``None`` / ``False`` (and whatever equals them) take no lock,
    ``True`` and ``{}`` a plain ``FOR UPDATE``, a dict the keywords of Core's
    ``Select.with_for_update()``; anything else is a ``TypeError``, as there.
    """
    if isinstance(value, ForUpdateArg):
        return value
    if value in (None, False):
        return None
    if value is True:
        return ForUpdateArg()
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{call}: with_for_update={value!r} is not a locking option. Pass True for "
            f"FOR UPDATE, None or False for no lock, or a dict of Select.with_for_update() "
            f"keywords ({', '.join(_FOR_UPDATE_KEYS)}), e.g. {{'nowait': True}}."
        )
    unknown = [k for k in value if k not in _FOR_UPDATE_KEYS]
    if unknown:
        raise TypeError(
            f"{call}: with_for_update has unknown option(s) {', '.join(map(repr, unknown))}; "
            f"the options are the keywords of Select.with_for_update(): "
            f"{', '.join(_FOR_UPDATE_KEYS)}."
        )
    return ForUpdateArg(**value)


def fetch_by_pk(
    conn: Connection,
    mapper: Mapper,
    key: Any,
    keys: tuple[str, ...],
    lock: ForUpdateArg | None = None,
) -> Sequence[Any] | None:
    return conn.execute(select_by_pk(mapper, keys, lock), pk_params(mapper, key)).first()


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


def select_by_pks(
    mapper: Mapper, dialect: Any, keys: list[Any]
) -> tuple[Select[Any], dict[str, Any] | None]:
    """``SELECT <all columns> WHERE pk IN (...)`` for a batched load, with its parameters
    (a single-column key as one parameter where possible, see ``in_values``). Composite
    keys use a tuple IN where the dialect supports it, OR-ed conditions otherwise."""
    cols = mapper.columns
    if mapper.single_pk:
        pk = mapper.pk_columns[0]
        how = _values_as(pk, dialect, keys)
        stmt = mapper.statement_cache.get(("select_in", how))
        if stmt is None:
            where = _in_clause(pk, how, "pk_values")
            stmt = mapper.statement_cache[("select_in", how)] = select(*cols).where(where)
        assert isinstance(stmt, Select)
        return stmt, {"pk_values": _param(how, keys)}
    if getattr(dialect, "tuple_in_values", False):
        return select(*cols).where(tuple_(*mapper.pk_columns).in_(keys)), None
    return select(*cols).where(
        or_(*(and_(*(c == v for c, v in zip(mapper.pk_columns, k, strict=True))) for k in keys))
    ), None


def in_values(
    column: Any, dialect: Any, values: list[Any], name: str
) -> tuple[ColumnElement[bool], Any]:
    """``column IN values`` and the value of its parameter ``name``.

    The values travel as one parameter where the database can take a list that way: an
    array on PostgreSQL, a JSON text read with ``json_each`` on SQLite for integers.
    Then every batch runs one cached statement text and nothing is rendered per value;
    elsewhere the IN list is expanded for each execution.
    """
    how = _values_as(column, dialect, values)
    return _in_clause(column, how, name), _param(how, values)


def _values_as(column: Any, dialect: Any, values: list[Any]) -> str:
    kind = column.type
    if dialect.name == "postgresql" and isinstance(kind, (Integer, String, Uuid)):
        return "in" if isinstance(kind, Enum) else "array"
    if (
        dialect.name == "sqlite"
        and (dialect.server_version_info or ()) >= (3, 38)  # JSON functions built in
        and isinstance(kind, Integer)
        and all(type(v) is int for v in values)
    ):
        return "json"
    return "in"


def _in_clause(column: Any, how: str, name: str) -> ColumnElement[bool]:
    if how == "array":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    if how == "json":
        each = func.json_each(bindparam(name, type_=String())).table_valued("value")
        return column.in_(select(each.c.value))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


def _param(how: str, values: list[Any]) -> Any:
    return json.dumps(values) if how == "json" else values


# -- results of select() statements ---------------------------------------------------


def execute(
    conn: Connection,
    statement: Executable,
    params: Any,
    opts: dict[str, Any],
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    relations: Callable[..., Any] | None = None,
) -> Result[Any]:
    """Run ``statement``; a select of mapped classes yields identity-mapped objects.
    ``relations`` (relloading.prepare) adds what relationships load with the query.

    Objects are built as rows are read, not here, so that ``yield_per`` (also when called
    on the result) bounds memory by one batch; without it the first read builds them all
    in one loader call, the fast path.
    """
    plan = _entity_plan(statement) if isinstance(statement, Select) else None
    if plan is not None:
        assert isinstance(statement, Select)
        select_ = statement
    elif isinstance(statement, FromStatement):
        # The statement's rows, their columns picked in the order of the select's plan.
        select_ = statement.select
        plan = _entity_plan(select_)
        assert plan is not None  # FromStatement refuses a select without an entity
    else:
        return conn.execute(statement, params, execution_options=opts)
    own = statement.get_execution_options()
    populate = bool(opts.get("populate_existing") or own.get("populate_existing"))
    yield_per = opts.get("yield_per", own.get("yield_per"))
    # Checked before any SQL: a loader option that fits no entity is an error.
    prepared = (
        None
        if relations is None
        else relations(conn, imap, modified, plan, select_, populate, select_ is statement)
    )
    trees, after, joins = (None, None, None) if prepared is None else prepared
    if joins is not None and joins.collections and yield_per:
        raise InvalidRequestError(
            "Can't use yield_per with eager loaders that require uniquing or row "
            "buffering, including joinedload() against collections: a parent's rows "
            "could span two batches. Use selectinload() for the collection(s)."
        )
    if select_ is statement:
        run = statement if joins is None else joins.statement
        cursor = conn.execute(run, params, execution_options=opts)
    else:
        assert isinstance(statement, FromStatement)
        cursor = statement.columns_of(conn.execute(statement, params, execution_options=opts))
    keys, build = _builder(plan, select_, cursor, imap, populate, modified, trees)
    plain = driver_rows_suffice(cursor)
    generation = imap.generation
    width = None if joins is None else joins.width

    def checked(rows: Sequence[Sequence[Any]]) -> list[Any]:
        if imap.generation != generation:
            raise _map_gone(plan)
        out = build(rows if width is None else [r[:width] for r in rows])
        if after is not None:
            after(out, rows)
        return out

    # Called by the result with its yield_per (None for everything), as the ORM's is.
    def chunks(size: int | None) -> Iterator[list[Any]]:
        if size is None or size < 1:
            yield checked(cursor._fetchall_impl() if plain else cursor.fetchall())
            return
        while True:
            rows = cursor._fetchmany_impl(size) if plain else cursor.fetchmany(size)
            if not rows:
                return
            yield checked(rows)

    # unique() tells objects apart by identity, as the ORM's results do: a mapped
    # class's own __eq__ / __hash__ (or lack of one) plays no part.
    filters = [id] if len(plan) == 1 else _unique_filters(plan)
    if opts.get("prebuffer_rows") or own.get("prebuffer_rows"):
        # AsyncSession.execute(): every row read and built now, inside the awaited call.
        ready = list(chunks(None))

        def chunks(size: int | None) -> Iterator[list[Any]]:
            return iter(ready)

    result: Result[Any] = ChunkedIteratorResult(
        SimpleResultMetaData(keys, _create_unique_filters=lambda _result: filters),
        chunks,
        source_supports_scalars=len(plan) == 1,
        raw=cursor,
        dynamic_yield_per=cursor.context._is_server_side,
    )
    if joins is not None and joins.collections:
        result._unique_filter_state = (set(), require_unique)
    if yield_per:
        result = result.yield_per(yield_per)
    return result


def _unique_filters(plan: Plan) -> list[Any]:
    out: list[Any] = []
    for mapper, width, _ in plan:
        out.extend([id] if mapper is not None else [None] * width)
    return out


def require_unique(_row: Any) -> Any:
    """The result's unique filter until ``unique()`` replaces it, as the ORM's."""
    raise InvalidRequestError(
        "The unique() method must be invoked on this Result, as it contains results that "
        "include joined eager loads against collections: each parent comes once per "
        "member of its joined collection. Call result.unique() (or use selectinload())."
    )


def _map_gone(plan: Plan) -> InvalidRequestError:
    names = ", ".join(m.class_.__name__ for m, _, _ in plan if m is not None)
    return InvalidRequestError(
        f"Object of class {names} cannot be converted to 'persistent' state, as this "
        f"identity map is no longer valid.  Has the owning Session been closed? The result "
        f"was read after session.close(), reset() or expunge_all(): read it before, or run "
        f"the statement again.",
        code="lkrp",
    )


def _builder(
    plan: Plan,
    statement: Select[Any],
    cursor: Any,
    imap: IdentityMap,
    populate: bool,
    modified: dict[InstanceState, Any],
    trees: dict[Any, Any] | None,
) -> tuple[list[Any], Callable[[Sequence[Sequence[Any]]], list[Any]]]:
    """The result's keys (None for an alias without a name, as in the ORM), and how to
    turn a batch of rows into objects or tuples."""
    if len(plan) == 1:
        entity, _, key = plan[0]
        assert entity is not None

        tree = None if trees is None else trees.get(entity)

        def build_objects(rows: Sequence[Sequence[Any]]) -> list[Any]:
            return load_rows(imap, entity, rows, populate, modified, tree)

        return [key], build_objects
    names = list(cursor.keys())
    for i, raw in enumerate(statement._raw_columns):
        key = getattr(raw, "key", None)
        if plan[i] == (None, 1, None) and isinstance(key, str):
            names[sum(width for _, width, _ in plan[:i])] = key
    keys: list[Any] = []
    pos = 0
    for mapper, width, entity_key in plan:
        if mapper is not None:
            keys.append(entity_key)
        else:
            keys.extend(names[pos : pos + width])
        pos += width

    def build_tuples(rows: Sequence[Sequence[Any]]) -> list[Any]:
        columns: list[list[Any]] = []
        pos = 0
        for mapper, width, _ in plan:
            part = [row[pos : pos + width] for row in rows]
            if mapper is not None:
                tree = None if trees is None else trees.get(mapper)
                columns.append(load_rows(imap, mapper, part, populate, modified, tree))
            else:
                columns.extend([p[i] for p in part] for i in range(width))
            pos += width
        return list(zip(*columns, strict=True)) if columns else []

    return keys, build_tuples


def _entity_plan(statement: Select[Any]) -> Plan | None:
    """Which result columns belong to which mapped class (and the result key of each),
    or None if there are none."""
    plan: Plan = []
    found = False
    for raw in statement._raw_columns:
        mapper = raw._annotations.get("sessionkit_mapper")
        entity = raw._annotations.get("parententity")
        if mapper is None and entity is not None and hasattr(raw, "c"):
            mapper_of_class(entity.class_)  # an entity of the ORM's: raises, saying so
        if mapper is not None:
            found = True
            plan.append((mapper, len(mapper.columns), mapper.class_.__name__))
        elif (alias := raw._annotations.get(ALIAS_KEY)) is not None:
            found = True
            plan.append(alias.plan_entry(statement))
        elif hasattr(raw, "c") and not hasattr(raw, "type"):
            plan.append((None, len(raw.c), None))
        else:
            plan.append((None, 1, None))
    return plan if found else None


def driver_rows_suffice(result: Any) -> bool:
    """True when the driver's own tuples carry exactly the values Core's rows would.

    Building Core ``Row`` objects only to unpack them again is the single largest cost
    of loading objects once the rest is tight; when no column of the result needs a
    result processor the driver's own tuples carry exactly the same values.
    """
    metadata = getattr(result, "_metadata", None)
    processors = getattr(metadata, "_processors", None)
    return (
        processors is not None
        and getattr(metadata, "_tuplefilter", None) is None
        and not any(processors)
        and hasattr(result, "_fetchall_impl")
    )


def fetch_plain(result: Any) -> Sequence[Sequence[Any]]:
    """All rows, as the driver's tuples when that loses nothing (``driver_rows_suffice``)."""
    if driver_rows_suffice(result):
        rows: Sequence[Sequence[Any]] = result._fetchall_impl()
        return rows
    return result.fetchall()  # type: ignore[no-any-return]


# -- expired objects --------------------------------------------------------------------


def expired_key_error(obj: Any, state: InstanceState) -> InvalidRequestError | None:
    """The error for an object without identity whose primary key expired (a rollback
    undid its INSERT): it has no key to INSERT or load by, and no row; None otherwise."""
    expired = state.expired
    if not expired or state.key is not None:
        return None
    d = obj.__dict__
    missing = [attr for attr in state.mapper.pk_attr_keys if attr in expired and attr not in d]
    if not missing:
        return None
    return InvalidRequestError(
        f"Instance {state_str(obj)} cannot be refreshed - it's not persistent and does not "
        f"contain a full primary key: its attribute(s) {missing} were expired before a "
        f"rollback made it transient. Call make_transient(obj) (it also leaves the "
        f"session), then assign {', '.join(f'{type(obj).__name__}.{a}' for a in missing)} "
        f"again before adding it back."
    )


def check_unflushed_key(obj: Any, state: InstanceState) -> None:
    """refresh() SELECTs by the identity key; an unflushed new key would be ignored."""
    mapper = state.mapper
    if state.key is None:
        return
    d = obj.__dict__
    pk_values = (state.key,) if mapper.single_pk else state.key
    changed = {
        attr
        for attr, old in zip(mapper.pk_attr_keys, pk_values, strict=True)
        if attr in d and d[attr] != old
    }
    if changed:
        raise InvalidRequestError(
            f"Please flush pending primary key changes on attributes {changed!r} for "
            f"mapper {mapper!r} before proceeding with a refresh: instance "
            f"'{state_str(obj)}' would be refreshed from its old key {state.key!r}. "
            f"Call session.flush() first, or include the key in attribute_names to "
            f"discard the change."
        )


def expired_keys(obj: Any, state: InstanceState) -> tuple[str, ...]:
    """The attributes of ``obj`` that are expired and not assigned since."""
    expired = state.expired or ()
    d = obj.__dict__
    return tuple(k for k in state.mapper.attr_keys if k in expired and k not in d)


def object_deleted(obj: Any) -> ObjectDeletedError:
    return ObjectDeletedError(
        f"Instance '{state_str(obj)}' has been deleted, or its row is otherwise not present. "
        f"Another transaction deleted it (or changed its primary key); call "
        f"session.expunge(obj) to stop tracking it."
    )


def reload(conn: Connection, obj: Any, state: InstanceState, keys: tuple[str, ...]) -> None:
    """SELECT ``keys`` of one object by its identity; unflushed changes are kept."""
    row = fetch_by_pk(conn, state.mapper, state.key, keys)
    if row is None:
        raise object_deleted(obj)
    apply_loaded(obj, state, keys, row, overwrite=False)


def reload_expired(
    conn: Connection, obj: Any, state: InstanceState, keys: tuple[str, ...], batch_size: int
) -> None:
    """Load ``keys`` of ``obj`` (its expired attributes); with ``batch_size`` > 1, a fully
    expired object is loaded with up to that many others expired by the same event."""
    if batch_size > 1 and len(keys) == len(state.mapper.attr_keys):
        batch = _refresh_batch(obj, state, batch_size)
        if len(batch) > 1:
            _load_batch(conn, obj, state, batch)
            return
    reload(conn, obj, state, keys)


def _refresh_batch(obj: Any, state: InstanceState, limit: int) -> list[Pair]:
    """``obj`` plus fully expired objects of its class expired by the same event."""
    batch: list[Pair] = [(obj, state)]
    expiry = state.expired_by
    if expiry is None or expiry.members is None:
        return batch
    refs = expiry.members.get(state.mapper)
    if not refs:
        return batch
    ref: weakref.ref[Any] | None = state.session_ref
    attrs = state.mapper.attr_keys
    scanned = 0
    for scanned, obj_ref in enumerate(refs, 1):
        if len(batch) >= limit:
            scanned -= 1
            break
        other = obj_ref()
        if other is None or other is obj:
            continue
        d = other.__dict__
        st = d.get(STATE_KEY)
        if (
            st is None
            or st.expired_by is not expiry
            or st.session_ref is not ref
            or st.key is None
            or st.deleted
            or (len(d) != 1 and not d.keys().isdisjoint(attrs))
        ):
            continue
        batch.append((other, st))
    # Everything scanned is now loaded or can never join a batch of this event.
    del refs[:scanned]
    return batch


def _load_batch(conn: Connection, obj: Any, state: InstanceState, batch: list[Pair]) -> None:
    mapper = state.mapper
    keys = [st.key for _, st in batch]
    stmt, params = select_by_pks(mapper, conn.dialect, keys)
    rows = fetch_plain(conn.execute(stmt, params))
    by_key = dict(zip(map(mapper.row_pk, rows), rows, strict=True))
    attrs = mapper.attr_keys
    # Every member was chosen fully expired with nothing in its __dict__, so the
    # row can go in whole; no unflushed change can be overwritten.
    for other, st in batch:
        row = by_key.get(st.key)
        if row is not None:
            other.__dict__.update(zip(attrs, row, strict=True))
            st.expired = None
    if state.expired:
        raise object_deleted(obj)
