"""The unit of work: pending objects become INSERTs, changed ones UPDATEs, deleted ones
DELETEs, in an order that respects foreign keys.

Order (the reference's, plus foreign-key ordering it only does through relationships):
for each table parents-first, the UPDATEs then the INSERTs; then for each table
children-first, the DELETEs. Statements with the same shape go out as one executemany;
rows that need a database-generated key use ``INSERT ... RETURNING`` with
``sort_by_parameter_order=True`` so every key lands on the object it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from .exc import ObjectDeletedError, StaleDataError, warn
from .hooks import MAPPER
from .loading import expired_key_error, expired_keys, reload
from .rejected import Candidate, explain
from .relsync import (
    clear_links,
    insert_levels,
    pending_links,
    sync_foreign_keys,
    write_links,
)
from .state import NO_VALUE, STATE_KEY, InstanceState, get_state, state_str
from .statements import (
    VERSION_PARAM,
    apply_update_defaults,
    facts_for,
    postfetch,
    set_pk,
    version_conflict,
)

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper
    from .tracking import Recorder

Pair = tuple[Any, InstanceState]

_table_order_cache: dict[tuple[Table, ...], list[Table]] = {}


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


def _check_expired_keys(pairs: list[Pair]) -> None:
    """Pending objects are refused before the flush INSERTs them, as the reference does."""
    for obj, state in pairs:
        err = expired_key_error(obj, state)
        if err is not None:
            raise err


def _by_mapper(pairs: Sequence[Pair], into: dict[Mapper, list[Pair]]) -> None:
    """Append each pair to its class's list (runs of one class share one lookup)."""
    last = None
    bucket: list[Pair] = []
    for pair in pairs:
        mapper = pair[1].mapper
        if mapper is not last:
            bucket = into.setdefault(mapper, [])
            last = mapper
        bucket.append(pair)


def _batches(
    records: list[tuple[Any, InstanceState, dict[str, Any]]], versioned: bool
) -> Iterator[tuple[list[Pair], list[dict[str, Any]]]]:
    """Consecutive UPDATEs setting the same columns, as one executemany each (versioned
    rows one statement each, so a lost race names its object)."""
    if versioned:
        for obj, state, params in records:
            yield [(obj, state)], [params]
        return
    shapes: dict[tuple[str, ...], frozenset[str]] = {}
    last: frozenset[str] | None = None
    group: list[Pair] = []
    param_sets: list[dict[str, Any]] = []
    for obj, state, params in records:
        names = tuple(params)
        shape = shapes.get(names)
        if shape is None:
            shape = shapes[names] = frozenset(names)
        if shape != last:
            if group:
                yield group, param_sets
            group, param_sets, last = [], [], shape
        group.append((obj, state))
        param_sets.append(params)
    if group:
        yield group, param_sets


class UnitOfWork:
    """One flush: collects the work by table, then emits it on ``conn``."""

    def __init__(
        self, imap: IdentityMap, recorder: Recorder, conn: Connection, hold: bool = False
    ) -> None:
        self.imap = imap
        self.recorder = recorder
        self.conn = conn
        self.inserts: dict[Mapper, list[Pair]] = {}
        self.updates: dict[Mapper, list[Pair]] = {}
        self.deletes: dict[Mapper, list[Pair]] = {}
        # Set when a statement's server-side values expired attributes of some object.
        self.expired_some = False
        # Objects with an expired primary key and nothing to UPDATE: loaded at the end.
        self.late_loads: list[Pair] = []
        # While after_insert / after_delete listeners (or, with ``hold``, the session's
        # after_flush listeners) are due, the objects' move to persistent / deleted waits
        # for them: listeners see the objects in the states the ORM's see.
        self.hold_all = hold
        self.held: list[tuple[bool, Mapper, list[Pair]]] | None = [] if hold else None

    def register(
        self, pending: Sequence[Pair], modified: Sequence[Pair], deleted: Sequence[Pair]
    ) -> None:
        _by_mapper(pending, self.inserts)
        _by_mapper(modified, self.updates)
        _by_mapper(deleted, self.deletes)

    def execute(self) -> None:
        try:
            self._execute()
        except Exception as err:
            # A value the database refused: say which object and attribute, and the fix.
            better = explain(err, self.conn, self._unflushed_values())
            if better is None:
                raise
            raise better from err

    def _unflushed_values(self) -> Iterator[Candidate]:
        """The column values of each INSERT and UPDATE that has not succeeded yet."""
        for mapper, pairs in self.inserts.items():
            build = facts_for(mapper, self.conn).build_params
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
        linked = [m for m in by_table.values() if m.relationships or m.synced_by_parents]
        links = pending_links(self._flushed(linked)) if linked else None
        announce = bool(MAPPER)
        for table in order:
            mapper = by_table[table]
            switches: list[tuple[Pair, Pair]] = []
            updates = _sort_persistent(self.updates.get(mapper, []))
            if announce:
                self._announce(mapper, "before", updates, self.inserts.get(mapper, []))
            if self.inserts.get(mapper):
                _check_expired_keys(self.inserts[mapper])
                switches = self._resolve_conflicts(mapper)
            related = mapper.relationships or mapper.synced_by_parents
            if related:
                sync_foreign_keys(mapper, updates)
            if mapper in self.updates or switches:
                self._emit_updates(mapper, updates, switches)
            if self.inserts.get(mapper):
                self._hold(announce and "after_insert" in MAPPER)
                if related:
                    for level in insert_levels(mapper, self.inserts[mapper]):
                        sync_foreign_keys(mapper, level)
                        self._emit_inserts(mapper, level)
                else:
                    self._emit_inserts(mapper, self.inserts[mapper])
            if announce:
                self._announce(mapper, "after", updates, self.inserts.get(mapper, []))
                self._release_held(all_=False)
        if links:
            # Many-to-many rows once both sides have theirs, before any DELETE.
            write_links(self.conn, links)
        for table in reversed(order):
            mapper = by_table[table]
            if self.deletes.get(mapper):
                deletes = _sort_persistent(self.deletes[mapper])
                if announce:
                    self._announce(mapper, "before", deletes=deletes)
                    self._hold("after_delete" in MAPPER)
                self._emit_deletes(mapper, deletes)
                if announce:
                    self._announce(mapper, "after", deletes=deletes)
                    self._release_held(all_=False)
        for obj, state in self.late_loads:
            self._load_expired(obj, state)
        if linked:
            clear_links(self._flushed(linked))

    def _flushed(self, mappers: list[Mapper]) -> Iterator[Pair]:
        for mapper in mappers:
            yield from self.inserts.get(mapper, ())
            yield from self.updates.get(mapper, ())

    def _announce(
        self,
        mapper: Mapper,
        when: str,
        updates: Sequence[Pair] = (),
        inserts: Sequence[Pair] = (),
        deletes: Sequence[Pair] = (),
    ) -> None:
        """Call ``mapper``'s persistence listeners, one call per object, in the ORM's
        order: new objects (in add order), then changed ones (by key); statements stay
        batched."""
        dispatch = mapper.dispatch
        conn = self.conn
        for verb, pairs in (("insert", inserts), ("update", updates), ("delete", deletes)):
            if pairs and f"{when}_{verb}" in MAPPER:
                listeners = getattr(dispatch, f"{when}_{verb}")
                if listeners:
                    for obj, _state in list(pairs):
                        listeners(mapper, conn, obj)

    def _hold(self, needed: bool) -> None:
        if not self.hold_all:
            self.held = [] if needed else None

    def _inserted(self, mapper: Mapper, pairs: list[Pair]) -> None:
        if self.held is not None:
            self.held.append((True, mapper, pairs))
        else:
            self.recorder.inserted_batch(mapper, pairs)

    def _deleted(self, mapper: Mapper, pairs: list[Pair]) -> None:
        if self.held is not None:
            self.held.append((False, mapper, pairs))
        else:
            for obj, state in pairs:
                self.recorder.deleted(obj, state)

    def release_held(self, all_: bool = True) -> None:
        """Move the held objects to their new states (the deleted ones first, as the ORM
        announces them). ``all_=False``: only a class's own hold, not a flush-wide one."""
        if self.hold_all and not all_:
            return
        held, self.held = self.held, None
        for inserted, mapper, pairs in sorted(held or (), key=lambda h: h[0]):
            if inserted:
                self.recorder.inserted_batch(mapper, pairs)
            else:
                for obj, state in pairs:
                    self.recorder.deleted(obj, state)

    _release_held = release_held

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
        lookup = self.imap.lookup
        found: list[tuple[Pair, Pair]] = []
        keep: list[Pair] = []
        gone: set[int] = set()
        for obj, state in inserts:
            key = mapper.key_from_dict(obj.__dict__)
            existing = None if key is None else lookup(mapper, key)
            if existing is None or existing is obj:
                keep.append((obj, state))
                continue
            # A marked (delete()d) object has a real state; a shared Loaded marker, which
            # _row_gone() may replace, is never in ``marked``.
            old_state = existing.__dict__[STATE_KEY]
            if old_state.was_deleted or self._row_gone(existing):
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

    def _load_expired(self, obj: Any, state: InstanceState) -> None:
        """Load what a statement needs of an expired object (its key or its version)."""
        reload(self.conn, obj, state, expired_keys(obj, state))

    def _row_gone(self, obj: Any) -> bool:
        """Whether an expired object's row is gone (then a new object may take its key).

        Like the reference, the flush loads the expired object to find out.
        """
        state = get_state(obj)
        if state.expired is not state.mapper.all_attrs:  # only after a full expiry
            return False
        try:
            self._load_expired(obj, state)
        except ObjectDeletedError:
            self.recorder.row_gone(obj, state)
            return True
        return False

    # -- INSERT -------------------------------------------------------------------------

    def _emit_inserts(self, mapper: Mapper, pairs: list[Pair]) -> None:
        facts = facts_for(mapper, self.conn)
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
                        postfetch(mapper, rec[0], rec[1], compiled, cparams, None)
                done = [(r[0], r[1]) for r in group]
                self._inserted(mapper, done)
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
                    set_pk(mapper, rec[0].__dict__, pk)
                    postfetch(mapper, rec[0], rec[1], compiled, cparams, defaults)
            else:
                for rec in group:
                    result = conn.execute(stmt, rec[2])
                    compiled = result.context.compiled
                    set_pk(mapper, rec[0].__dict__, result.inserted_primary_key)
                    postfetch(
                        mapper,
                        rec[0],
                        rec[1],
                        compiled,
                        result.context.compiled_parameters[0],
                        result.returned_defaults,
                    )
            self._inserted(mapper, [(r[0], r[1]) for r in group])

    # -- UPDATE -------------------------------------------------------------------------

    def _emit_updates(
        self, mapper: Mapper, pairs: list[Pair], switches: Sequence[tuple[Pair, Pair]] = ()
    ) -> None:
        facts = facts_for(mapper, self.conn)
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
            self.recorder.deleted(old_obj, old_state)
            self.recorder.inserted(obj, state, old_state.key)
            if sw_params:
                pk_values = (old_state.key,) if mapper.single_pk else old_state.key
                for col, value in zip(mapper.pk_columns, pk_values, strict=True):
                    sw_params[str(col._label)] = value
                records.append((obj, state, sw_params))
        custom = mapper.custom_compare
        pk_labels = facts.pk_labels
        pk_label = pk_labels[0] if mapper.single_pk else None
        pk_attr_keys = mapper.pk_attr_keys
        versioned = mapper.version_attr is not None
        unchanged: list[Pair] = []
        for obj, state in pairs:
            d = obj.__dict__
            params: dict[str, Any] = {}
            committed = state.committed
            if committed:
                for attr, old in committed.items():
                    new = d.get(attr)
                    # ``not ==`` is what TypeEngine.compare_values amounts to.
                    if old is NO_VALUE or (
                        not compare[attr](old, new) if attr in custom else not old == new  # noqa: SIM201
                    ):
                        params[column_for_attr[attr].key] = new
            expired = state.expired
            key_expired = expired is not None and any(
                k in expired and k not in d for k in pk_attr_keys
            )
            if not params:
                if key_expired:
                    # No statement needs the key; like the reference, it is loaded once
                    # the flush's statements have succeeded.
                    self.late_loads.append((obj, state))
                unchanged.append((obj, state))
                continue
            if key_expired:
                self._load_expired(obj, state)
            if versioned:
                self._version_params(mapper, obj, state, params, d)
            if pk_label is not None:
                params[pk_label] = state.key
            else:
                params.update(zip(pk_labels, state.key, strict=True))
            records.append((obj, state, params))
        if unchanged:
            self.recorder.updated_batch(mapper, unchanged)
        for group, param_sets in _batches(records, versioned):
            self._execute_update(mapper, facts.update, group, param_sets, versioned)

    def _execute_update(
        self,
        mapper: Mapper,
        stmt: Any,
        group: list[Pair],
        param_sets: list[dict[str, Any]],
        versioned: bool,
    ) -> None:
        """One executemany UPDATE; its row count checked, its objects recorded."""
        conn = self.conn
        dialect = conn.dialect
        result = conn.execute(stmt, param_sets)
        check = dialect.supports_sane_rowcount and (
            len(group) == 1 or dialect.supports_sane_multi_rowcount
        )
        if check and versioned and result.rowcount != 1:
            raise version_conflict(mapper, "UPDATE", group[0][0], param_sets[0])
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
            for (obj, _state), cparams in zip(
                group, result.context.compiled_parameters, strict=True
            ):
                self.expired_some |= apply_update_defaults(mapper, obj, compiled, cparams)
        self.recorder.updated_batch(mapper, group)

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
            self._load_expired(obj, state)
        return d.get(attr), False

    # -- DELETE -------------------------------------------------------------------------

    def _emit_deletes(self, mapper: Mapper, pairs: list[Pair]) -> None:
        facts = facts_for(mapper, self.conn)
        params_list = []
        for obj, state in pairs:
            d = obj.__dict__
            if state.expired and any(
                k in state.expired and k not in d for k in mapper.pk_attr_keys
            ):
                self._load_expired(obj, state)
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
                    raise version_conflict(mapper, "DELETE", obj, params)
            self._deleted(mapper, pairs)
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
        self._deleted(mapper, pairs)
