"""The unit of work: pending objects become INSERTs, changed ones UPDATEs, deleted ones
DELETEs, in an order that respects foreign keys.

Order (the reference's, plus foreign-key ordering it only does through relationships):
for each table parents-first, the UPDATEs then the INSERTs; then for each table
children-first, the DELETEs. Statements with the same shape go out as one executemany;
rows that need a database-generated key use ``INSERT ... RETURNING`` with
``sort_by_parameter_order=True`` so every key lands on the object it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table, and_, bindparam
from sqlalchemy.engine import Connection

from .exc import InvalidRequestError, StaleDataError, warn
from .rejected import Candidate, explain
from .state import NO_VALUE, STATE_KEY, InstanceState, state_str

if TYPE_CHECKING:
    from .mapping import Mapper

Pair = tuple[Any, InstanceState]

# The bind parameter holding the version an UPDATE or DELETE expects to find.
VERSION_PARAM = "sk_expected_version"

_table_order_cache: dict[tuple[Table, ...], list[Table]] = {}


class FlushHost(Protocol):
    """What the unit of work reports back to the Session as each statement succeeds."""

    def _flush_load_expired(self, obj: Any, state: InstanceState) -> None: ...

    def _flush_inserted(self, obj: Any, state: InstanceState, key: Any) -> None: ...

    def _flush_inserted_batch(self, mapper: Mapper, pairs: list[Pair]) -> None: ...

    def _flush_updated(self, obj: Any, state: InstanceState, new_key: Any) -> None: ...

    def _flush_deleted(self, obj: Any, state: InstanceState) -> None: ...

    def _flush_lookup(self, mapper: Mapper, key: Any) -> Any: ...

    def _flush_was_deleted(self, obj: Any) -> bool: ...


def table_order(tables: Sequence[Table]) -> list[Table]:
    """Parents before the tables whose foreign keys refer to them; otherwise first-seen order.

    The reference orders tables only through relationship(); with bare ForeignKey columns
    it can INSERT a child before its parent, which PostgreSQL rejects.
    """
    cache_key = tuple(tables)
    order = _table_order_cache.get(cache_key)
    if order is None:
        members = set(tables)
        deps = {
            t: {fk.column.table for fk in t.foreign_keys if fk.column.table in members} - {t}
            for t in tables
        }
        order = []
        done: set[Table] = set()
        while len(order) < len(tables):
            ready = [t for t in tables if t not in done and deps[t] <= done]
            if not ready:  # a cycle: fall back to the given order for the rest
                ready = [t for t in tables if t not in done]
            order.append(ready[0])
            done.add(ready[0])
        _table_order_cache[cache_key] = order
    return order


def _sort_persistent(pairs: list[Pair]) -> list[Pair]:
    """Persistent objects go out in primary-key order, as in the reference."""
    try:
        return sorted(pairs, key=lambda p: p[1].key)
    except TypeError:
        return pairs


class _Facts:
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
    mapper: Mapper, facts: _Facts
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


def _facts(mapper: Mapper, conn: Connection) -> _Facts:
    key = ("flush_facts", conn.dialect.name, conn.dialect.driver)
    facts = mapper.statement_cache.get(key)
    if facts is None:
        facts = mapper.statement_cache[key] = _Facts(mapper, conn.dialect)
    assert isinstance(facts, _Facts)
    return facts


def _set_pk(mapper: Mapper, d: dict[str, Any], pk: Sequence[Any] | None) -> None:
    if pk is None:
        return
    for attr, value in zip(mapper.pk_attr_keys, pk, strict=True):
        if d.get(attr) is None:
            d[attr] = value


def _postfetch(
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


def _apply_update_defaults(
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


def _check_expired_keys(pairs: list[Pair]) -> None:
    """Pending objects are refused before the flush INSERTs them, as the reference does."""
    for obj, state in pairs:
        err = expired_key_error(obj, state)
        if err is not None:
            raise err


def _version_conflict(
    mapper: Mapper, verb: str, obj: Any, params: dict[str, Any]
) -> StaleDataError:
    state = obj.__dict__[STATE_KEY]
    return StaleDataError(
        f"{verb} statement on table {mapper.table.name!r} expected to "
        f"{verb.lower()} 1 row(s); 0 were matched. {type(obj).__name__} with primary key "
        f"{state.key!r} was changed or deleted by another transaction since it was loaded "
        f"(expected {mapper.version_attr}={params[VERSION_PARAM]!r}); this change was not "
        f"saved. Roll back, load the object again (session.refresh / session.get) and "
        f"apply the change to the current version."
    )


class UnitOfWork:
    """One flush: collects the work by table, then emits it on ``conn``."""

    def __init__(self, host: FlushHost, conn: Connection) -> None:
        self.host = host
        self.conn = conn
        self.inserts: dict[Mapper, list[Pair]] = {}
        self.updates: dict[Mapper, list[Pair]] = {}
        self.deletes: dict[Mapper, list[Pair]] = {}
        # Set when a statement's server-side values expired attributes of some object.
        self.expired_some = False
        # Objects with an expired primary key and nothing to UPDATE: loaded at the end.
        self.late_loads: list[Pair] = []

    def register(
        self, pending: Sequence[Pair], modified: Sequence[Pair], deleted: Sequence[Pair]
    ) -> None:
        for obj, state in pending:
            self.inserts.setdefault(state.mapper, []).append((obj, state))
        for obj, state in modified:
            self.updates.setdefault(state.mapper, []).append((obj, state))
        for obj, state in deleted:
            self.deletes.setdefault(state.mapper, []).append((obj, state))

    def execute(self) -> None:
        try:
            self._execute()
        except Exception as err:
            # A value the database refused: say which object and attribute, and the fix.
            better = explain(err, self.conn.dialect, self._unflushed_values())
            if better is None:
                raise
            raise better from err

    def _unflushed_values(self) -> Iterator[Candidate]:
        """The column values of each INSERT and UPDATE that has not succeeded yet."""
        for mapper, pairs in self.inserts.items():
            build = _facts(mapper, self.conn).build_params
            for obj, state in pairs:
                if state.key is None:
                    yield obj, mapper, build(obj.__dict__)[0]
        for mapper, pairs in self.updates.items():
            column_for_attr = mapper.column_for_attr
            for obj, state in pairs:
                if state.committed:
                    d = obj.__dict__
                    yield obj, mapper, {column_for_attr[a].key: d.get(a) for a in state.committed}

    def _execute(self) -> None:
        mappers = {**dict.fromkeys(self.updates), **dict.fromkeys(self.inserts)}
        mappers.update(dict.fromkeys(self.deletes))
        by_table = {m.table: m for m in mappers}
        order = table_order(list(by_table))
        for table in order:
            mapper = by_table[table]
            switches: list[tuple[Pair, Pair]] = []
            if self.inserts.get(mapper):
                _check_expired_keys(self.inserts[mapper])
                switches = self._resolve_conflicts(mapper)
            if mapper in self.updates or switches:
                self._emit_updates(mapper, _sort_persistent(self.updates.get(mapper, [])), switches)
            if self.inserts.get(mapper):
                self._emit_inserts(mapper, self.inserts[mapper])
        for table in reversed(order):
            mapper = by_table[table]
            if self.deletes.get(mapper):
                self._emit_deletes(mapper, _sort_persistent(self.deletes[mapper]))
        for obj, state in self.late_loads:
            self.host._flush_load_expired(obj, state)

    def _resolve_conflicts(self, mapper: Mapper) -> list[tuple[Pair, Pair]]:
        """Pending objects whose key an object of the identity map already has.

        ``delete(old)`` + ``add(new)`` with the same key is a row switch: one UPDATE. If
        ``old`` is fully expired it is loaded first, as the reference does. When its row
        is known to be gone (that load found nothing, or its DELETE was flushed before a
        second delete()), the new object is simply INSERTed: the reference would UPDATE
        a row that does not exist, or DELETE by that key after the INSERT, removing the
        new row. Any other conflict warns, unless the old object's row turns out to be
        gone.
        """
        inserts = self.inserts[mapper]
        deletes = self.deletes.get(mapper, [])
        marked = {id(state): (obj, state) for obj, state in deletes}
        host = self.host
        found: list[tuple[Pair, Pair]] = []
        keep: list[Pair] = []
        gone: set[int] = set()
        for obj, state in inserts:
            key = mapper.key_from_dict(obj.__dict__)
            existing = None if key is None else host._flush_lookup(mapper, key)
            if existing is None or existing is obj:
                keep.append((obj, state))
                continue
            # A marked (delete()d) object has a real state; a shared Loaded marker, which
            # _flush_was_deleted may replace, is never in ``marked``.
            old_state = existing.__dict__[STATE_KEY]
            if old_state.was_deleted or host._flush_was_deleted(existing):
                # Its DELETE was flushed already (delete() again), or its row is gone.
                gone.add(id(old_state))
                keep.append((obj, state))
            elif id(old_state) in marked:
                found.append((marked.pop(id(old_state)), (obj, state)))
            else:
                keep.append((obj, state))
                warn(
                    f"New instance {state_str(obj)} with identity key "
                    f"{mapper.identity_key_for(key)!r} conflicts with persistent instance "
                    f"{state_str(existing)}",
                )
        if found or gone:
            switched = {id(old[1]) for old, _ in found} | gone
            self.inserts[mapper] = keep
            self.deletes[mapper] = [p for p in deletes if id(p[1]) not in switched]
        return found

    # -- INSERT -------------------------------------------------------------------------

    def _emit_inserts(self, mapper: Mapper, pairs: list[Pair]) -> None:
        facts = _facts(mapper, self.conn)
        build = facts.build_params
        version_attr = mapper.version_attr
        if version_attr is not None:
            for obj, _state in pairs:
                d = obj.__dict__
                if d.get(version_attr) is None:
                    d[version_attr] = mapper.version_generator(None)
        records = [(obj, state, *build(obj.__dict__)) for obj, state in pairs]
        conn = self.conn
        pk_mask, default_mask = facts.pk_mask, facts.server_default_mask
        for mask, grp in groupby(records, itemgetter(3)):
            group = list(grp)
            has_all_pks = mask & pk_mask == pk_mask
            has_all_defaults = not facts.prefer_eager or mask & default_mask == default_mask
            stmt = facts.insert
            done: list[Pair] = []
            if has_all_pks and has_all_defaults:
                result = conn.execute(stmt, [r[2] for r in group])
                compiled: Any = result.context.compiled
                if compiled.prefetch or compiled.postfetch:
                    cparams_list = result.context.compiled_parameters
                    for rec, cparams in zip(group, cparams_list, strict=True):
                        _postfetch(mapper, rec[0], rec[1], compiled, cparams, None)
                done = [(r[0], r[1]) for r in group]
                self.host._flush_inserted_batch(mapper, done)
                continue
            do_many = (
                len(group) > 1
                and mapper.table.implicit_returning
                and conn.dialect.insert_executemany_returning_sort_by_parameter_order
            )
            if not has_all_defaults:
                stmt = stmt.return_defaults(
                    *facts.server_default_cols, sort_by_parameter_order=True
                )
            if do_many:
                stmt = stmt.return_defaults(*mapper.pk_columns, sort_by_parameter_order=True)
                result = conn.execute(stmt, [r[2] for r in group])
                compiled = result.context.compiled
                pk_rows = result.inserted_primary_key_rows
                default_rows: Sequence[Any] = result.returned_defaults_rows or [None] * len(group)
                cparams_list = result.context.compiled_parameters
                for rec, cparams, pk, defaults in zip(
                    group, cparams_list, pk_rows, default_rows, strict=True
                ):
                    _set_pk(mapper, rec[0].__dict__, pk)
                    _postfetch(mapper, rec[0], rec[1], compiled, cparams, defaults)
            else:
                for rec in group:
                    result = conn.execute(stmt, rec[2])
                    compiled = result.context.compiled
                    _set_pk(mapper, rec[0].__dict__, result.inserted_primary_key)
                    _postfetch(
                        mapper,
                        rec[0],
                        rec[1],
                        compiled,
                        result.context.compiled_parameters[0],
                        result.returned_defaults,
                    )
            self.host._flush_inserted_batch(mapper, [(r[0], r[1]) for r in group])

    # -- UPDATE -------------------------------------------------------------------------

    def _emit_updates(
        self, mapper: Mapper, pairs: list[Pair], switches: Sequence[tuple[Pair, Pair]] = ()
    ) -> None:
        facts = _facts(mapper, self.conn)
        compare = mapper.compare
        column_for_attr = mapper.column_for_attr
        records = []
        for (old_obj, old_state), (obj, state) in switches:
            # Every attribute set on the new object is written: comparing with the old
            # object's loaded values could skip a column another transaction changed.
            d = obj.__dict__
            sw_params: dict[str, Any] = {
                column_for_attr[attr].key: d[attr]
                for attr in mapper.attr_keys
                if attr in d and attr not in mapper.pk_attr_keys
            }
            if mapper.version_attr is not None:
                # The old row's version is checked and bumped, as for any UPDATE.
                self._version_params(mapper, old_obj, old_state, sw_params, d)
            self.host._flush_deleted(old_obj, old_state)
            self.host._flush_inserted(obj, state, old_state.key)
            if sw_params:
                pk_values = (old_state.key,) if mapper.single_pk else old_state.key
                for col, value in zip(mapper.pk_columns, pk_values, strict=True):
                    sw_params[str(col._label)] = value
                records.append((obj, state, sw_params))
        for obj, state in pairs:
            d = obj.__dict__
            params: dict[str, Any] = {}
            for attr, old in (state.committed or {}).items():
                new = d.get(attr)
                if old is NO_VALUE or not compare[attr](old, new):
                    params[column_for_attr[attr].key] = new
            key_expired = state.expired and any(
                k in state.expired and k not in d for k in mapper.pk_attr_keys
            )
            if not params:
                if key_expired:
                    # No statement needs the key; like the reference, it is loaded once
                    # the flush's statements have succeeded.
                    self.late_loads.append((obj, state))
                self.host._flush_updated(obj, state, state.key)
                continue
            if key_expired:
                self.host._flush_load_expired(obj, state)
            if mapper.version_attr is not None:
                self._version_params(mapper, obj, state, params, d)
            old_key = state.key
            pk_values = (old_key,) if mapper.single_pk else old_key
            for col, value in zip(mapper.pk_columns, pk_values, strict=True):
                params[str(col._label)] = value
            records.append((obj, state, params))

        conn = self.conn
        dialect = conn.dialect
        stmt = facts.update
        versioned = mapper.version_attr is not None
        # Versioned rows go one statement each, so a lost race names its object.
        shape: Callable[[Any], Any] = (
            (lambda r: (frozenset(r[2]), id(r[0]))) if versioned else (lambda r: frozenset(r[2]))
        )
        for _, grp in groupby(records, shape):
            group = list(grp)
            result = conn.execute(stmt, [r[2] for r in group])
            check = dialect.supports_sane_rowcount and (
                len(group) == 1 or dialect.supports_sane_multi_rowcount
            )
            if check and versioned and result.rowcount != 1:
                raise _version_conflict(mapper, "UPDATE", group[0][0], group[0][2])
            if check and result.rowcount != len(group):
                raise StaleDataError(
                    f"UPDATE statement on table {mapper.table.name!r} expected to update "
                    f"{len(group)} row(s); {result.rowcount} were matched. The row of "
                    f"{'an object' if len(group) > 1 else type(group[0][0]).__name__} was "
                    f"deleted or its primary key changed by another transaction; reload the "
                    f"object (session.refresh / session.get) and apply the change again."
                )
            compiled: Any = result.context.compiled
            if compiled.prefetch or compiled.postfetch:
                for (obj, _state, _), cparams in zip(
                    group, result.context.compiled_parameters, strict=True
                ):
                    self.expired_some |= _apply_update_defaults(mapper, obj, compiled, cparams)
            for obj, state, _ in group:
                self.host._flush_updated(obj, state, mapper.key_from_dict(obj.__dict__))

    def _version_params(
        self,
        mapper: Mapper,
        obj: Any,
        state: InstanceState,
        params: dict[str, Any],
        target: dict[str, Any],
    ) -> None:
        """Add the expected and the next version of ``obj``'s row to ``params``.

        The next version goes into ``target`` (the dict of the object that will own the
        row). A version the application assigned itself is written as given.
        """
        attr = mapper.version_attr
        column = mapper.version_column
        assert attr is not None and column is not None
        expected, assigned = self._expected_version(mapper, obj, state)
        if assigned:
            new = obj.__dict__[attr]
        else:
            new = target[attr] = mapper.version_generator(expected)
        params[column.key] = new
        params[VERSION_PARAM] = expected

    def _expected_version(self, mapper: Mapper, obj: Any, state: InstanceState) -> tuple[Any, bool]:
        """The version ``obj``'s row should have, and whether the application assigned a
        new one (then the expected one is the value it replaced). Loads an expired one."""
        attr = mapper.version_attr
        assert attr is not None
        old = (state.committed or {}).get(attr, NO_VALUE)
        if old is not NO_VALUE:
            return old, True
        d = obj.__dict__
        if attr not in d:
            self.host._flush_load_expired(obj, state)
        return d.get(attr), False

    # -- DELETE -------------------------------------------------------------------------

    def _emit_deletes(self, mapper: Mapper, pairs: list[Pair]) -> None:
        facts = _facts(mapper, self.conn)
        params_list = []
        for obj, state in pairs:
            d = obj.__dict__
            if state.expired and any(
                k in state.expired and k not in d for k in mapper.pk_attr_keys
            ):
                self.host._flush_load_expired(obj, state)
            pk_values = (state.key,) if mapper.single_pk else state.key
            params = {c.key: v for c, v in zip(mapper.pk_columns, pk_values, strict=True)}
            if mapper.version_attr is not None:
                params[VERSION_PARAM] = self._expected_version(mapper, obj, state)[0]
            params_list.append(params)
        conn = self.conn
        dialect = conn.dialect
        if mapper.version_attr is not None and dialect.supports_sane_rowcount:
            # One statement per row: a row changed or deleted since it was loaded is an
            # error naming its object, not a warning.
            for (obj, _state), params in zip(pairs, params_list, strict=True):
                if conn.execute(facts.delete, params).rowcount != 1:
                    raise _version_conflict(mapper, "DELETE", obj, params)
            for obj, state in pairs:
                self.host._flush_deleted(obj, state)
            return
        result = conn.execute(facts.delete, params_list)
        expected = len(params_list)
        if (
            result.rowcount > -1
            and result.rowcount != expected
            and dialect.supports_sane_rowcount
            and (dialect.supports_sane_multi_rowcount or expected == 1)
        ):
            warn(
                f"DELETE statement on table {mapper.table.name!r} expected to delete "
                f"{expected} row(s); {result.rowcount} were matched. Another transaction "
                f"deleted the row(s) first; the objects are treated as deleted.",
            )
        for obj, state in pairs:
            self.host._flush_deleted(obj, state)
