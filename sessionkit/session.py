"""The Session: identity map, unit of work and transaction lifecycle over Core.

Two layers of transaction exist, as in the reference. The *session transaction* is
bookkeeping (which objects were inserted, deleted or re-keyed since it began, so that a
rollback can put them back); it starts as soon as anything is attached or changed. The
*connection transaction* is a Core ``Connection.begin()`` (``BEGIN (implicit)`` in the
log) and starts only when SQL must run.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, Executable, Select
from sqlalchemy.engine import Result
from sqlalchemy.engine.result import ChunkedIteratorResult, SimpleResultMetaData

from .exc import (
    ArgumentError,
    InvalidRequestError,
    ObjectDeletedError,
    PendingRollbackError,
    ResourceClosedError,
    StatementError,
    warn,
)
from .flush import UnitOfWork, expired_key_error
from .gcpause import paused
from .identity import IdentityMap
from .loading import apply_loaded, expire_state, fetch_by_pk, load_rows, select_by_pks
from .mapping import MAPPER_ATTR, Mapper, mapper_of, mapper_of_class, state_of
from .query import Query
from .state import NO_VALUE, STATE_KEY, Expiry, InstanceState, Loaded, get_state, state_str

_T = TypeVar("_T")
JoinMode = Literal["conditional_savepoint", "create_savepoint", "rollback_only", "control_fully"]
_JOIN_MODES = ("conditional_savepoint", "create_savepoint", "rollback_only", "control_fully")
_hash_keys = itertools.count(1)
Pair = tuple[Any, InstanceState]
Record = tuple[weakref.ref[Any], InstanceState]


class _IdentitySet:
    """A read-only set of objects compared by identity (``session.new``, ``dirty``...)."""

    __slots__ = ("_objs",)

    def __init__(self, objs: Iterable[Any]) -> None:
        self._objs = {id(o): o for o in objs}

    def __contains__(self, obj: object) -> bool:
        return id(obj) in self._objs

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._objs.values()))

    def __len__(self) -> int:
        return len(self._objs)

    def __bool__(self) -> bool:
        return bool(self._objs)

    def __repr__(self) -> str:
        return f"IdentitySet({list(self._objs.values())!r})"


class SessionTransaction:
    """One level of the session's transaction tree: the root, or a SAVEPOINT.

    Each level records which objects its flushes inserted, updated, deleted or re-keyed,
    so that rolling it back can restore exactly those. A released SAVEPOINT hands its
    records to its parent. Used as a context manager it commits (or releases) on success
    and rolls back on error, re-raising.
    """

    def __init__(
        self,
        session: Session,
        parent: SessionTransaction | None = None,
        *,
        nested: bool = False,
        explicit: bool = False,
    ) -> None:
        self.session = session
        self.parent = parent
        self.nested = nested
        self.explicit = explicit
        self.root: SessionTransaction = self if parent is None else parent.root
        # Root only: the connection and the Core transaction this session controls.
        self.conn: Connection | None = None
        self.owns_conn = False
        self.trans: Any = None
        self.should_commit = True
        # Nested only: the Core SAVEPOINT, emitted lazily with the next SQL.
        self.savepoint: Any = None
        # Weak references: bookkeeping must not keep objects the application dropped alive.
        self.inserted: list[Record] = []
        self.updated: list[Record] = []
        self.deleted: list[Record] = []
        self.key_switches: list[tuple[weakref.ref[Any], InstanceState, Any]] = []
        self.failed: BaseException | None = None
        self.closed = False

    @property
    def is_active(self) -> bool:
        return not self.closed and self.failed is None

    def hand_to_parent(self) -> None:
        parent = self.parent
        assert parent is not None
        parent.inserted += self.inserted
        parent.updated += self.updated
        parent.deleted += self.deleted
        parent.key_switches += self.key_switches

    def forget(self) -> None:
        self.inserted, self.updated, self.deleted, self.key_switches = [], [], [], []

    def commit(self) -> None:
        self.session._commit_level(self)

    def rollback(self) -> None:
        self.session._rollback_level(self)

    def __enter__(self) -> SessionTransaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __repr__(self) -> str:
        kind = "SAVEPOINT" if self.nested else "root"
        state = "failed" if self.failed else "closed" if self.closed else "active"
        return f"<SessionTransaction {kind} {state}>"


class Session:
    """Tracks mapped objects and synchronises them with the database through Core.

    Public behaviour follows the SQLAlchemy 2.1 ORM ``Session``; see the README for the
    few deliberate differences.
    """

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        autoflush: bool = True,
        expire_on_commit: bool = True,
        autobegin: bool = True,
        close_resets_only: bool = True,
        join_transaction_mode: JoinMode = "conditional_savepoint",
        batch_refresh: bool = False,
        refresh_batch_size: int = 500,
        info: dict[Any, Any] | None = None,
    ) -> None:
        if join_transaction_mode not in _JOIN_MODES:
            raise ArgumentError(
                f"join_transaction_mode={join_transaction_mode!r} is not one of "
                f"{', '.join(_JOIN_MODES)}"
            )
        if bind is not None and not isinstance(bind, (Engine, Connection)):
            raise ArgumentError(
                f"Session(bind=...) takes an Engine or a Connection, got {type(bind).__name__}"
            )
        if refresh_batch_size < 1:
            raise ArgumentError(f"refresh_batch_size must be at least 1, got {refresh_batch_size}")
        self.bind = bind
        self.batch_refresh = batch_refresh
        self.refresh_batch_size = refresh_batch_size
        self.autoflush = autoflush
        self.expire_on_commit = expire_on_commit
        self.autobegin = autobegin
        self.close_resets_only = close_resets_only
        self.join_transaction_mode: JoinMode = join_transaction_mode
        self.info: dict[Any, Any] = info if info is not None else {}
        self.hash_key = next(_hash_keys)
        self._ref = weakref.ref(self)
        self.identity_map = IdentityMap()
        # An index of objects that get() may return without a look at their state: in
        # the identity map, attached, not expired. Built on demand from the identity map,
        # dropped whenever that could stop being true for some object.
        self._fresh: dict[type, dict[Any, Any]] = {}
        self._fresh_built = False
        self._new: dict[InstanceState, Any] = {}
        self._deleted: dict[InstanceState, Any] = {}
        self._modified: dict[InstanceState, Any] = {}
        self._transaction: SessionTransaction | None = None
        self._no_autoflush = 0
        self._flushing = False
        self._closed_for_good = False
        self._markers: dict[Mapper, Loaded] = {}

    def _forget_fresh(self) -> None:
        self._fresh = {}
        self._fresh_built = False

    def _unfresh(self, state: InstanceState) -> None:
        sub = self._fresh.get(state.mapper.class_)
        if sub is not None:
            sub.pop(state.key, None)

    def _build_fresh(self) -> None:
        fresh: dict[type, dict[Any, Any]] = {}
        for mapper, sub in self.identity_map.by_mapper.items():
            index = fresh[mapper.class_] = {}
            for key, obj_ref in sub.items():
                obj = obj_ref()
                if obj is not None and obj.__dict__[STATE_KEY].expired is None:
                    index[key] = obj_ref
        self._fresh = fresh
        self._fresh_built = True

    def _load(self, mapper: Mapper, rows: Iterable[Sequence[Any]], populate: bool) -> list[Any]:
        marker = self._markers.get(mapper) or self._marker(mapper)
        return load_rows(self.identity_map, mapper, rows, marker, populate, self._modified)

    def _marker(self, mapper: Mapper) -> Loaded:
        marker = self._markers.get(mapper)
        if marker is None:
            marker = self._markers[mapper] = Loaded(mapper, self._ref)
        return marker

    def __repr__(self) -> str:
        return f"<sessionkit.Session {self.hash_key} at {hex(id(self))}>"

    # -- context manager -----------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

    def _autobegin(self) -> SessionTransaction:
        txn = self._transaction
        if txn is None:
            if self._closed_for_good:
                raise InvalidRequestError(
                    "This Session has been permanently closed and is unable to handle any "
                    "more transaction requests. It was closed by close() with "
                    "close_resets_only=False; create a new Session, or pass "
                    "close_resets_only=True (the default) to keep using one Session after "
                    "close()."
                )
            if not self.autobegin:
                raise InvalidRequestError(
                    "Autobegin is disabled on this Session; please call session.begin() to "
                    "start a new transaction"
                )
            txn = self._transaction = SessionTransaction(self)
        return txn

    def _check_active(self, txn: SessionTransaction) -> None:
        if txn.failed is not None:
            where = "Session.rollback()"
            if txn.nested:
                where = "rollback() on the transaction returned by begin_nested()"
            raise PendingRollbackError(
                "This Session's transaction has been rolled back due to a previous exception "
                "during flush. To begin a new transaction with this Session, first issue "
                f"Session.rollback(). Original exception was: {txn.failed}"
                + ("" if not txn.nested else f" (inside a SAVEPOINT: call {where})"),
                code="7s2a",
            ) from txn.failed  # the cause stays inspectable (sessionkit.is_retryable reads it)

    def begin(self) -> SessionTransaction:
        """Begin a transaction explicitly; use as ``with session.begin():``."""
        if self._transaction is not None:
            raise InvalidRequestError("A transaction is already begun on this Session.")
        if self._closed_for_good:
            self._autobegin()  # raises the "permanently closed" error
        txn = self._transaction = SessionTransaction(self, explicit=True)
        return txn

    def begin_nested(self) -> SessionTransaction:
        """Flush, then open a SAVEPOINT level (emitted with the next SQL statement)."""
        txn = self._autobegin()
        self._check_active(txn)
        self.flush()
        child = self._transaction = SessionTransaction(self, txn, nested=True, explicit=True)
        return child

    def in_transaction(self) -> bool:
        return self._transaction is not None

    def in_nested_transaction(self) -> bool:
        txn = self._transaction
        return txn is not None and txn.nested

    @property
    def is_active(self) -> bool:
        txn = self._transaction
        return txn is None or txn.failed is None

    def get_transaction(self) -> SessionTransaction | None:
        """The root transaction, if one has begun."""
        txn = self._transaction
        return None if txn is None else txn.root

    def get_nested_transaction(self) -> SessionTransaction | None:
        txn = self._transaction
        return txn if txn is not None and txn.nested else None

    def _levels(self) -> list[SessionTransaction]:
        """Open levels, innermost first."""
        out = []
        txn = self._transaction
        while txn is not None:
            out.append(txn)
            txn = txn.parent
        return out

    def _connection(self) -> Connection:
        txn = self._autobegin()
        self._check_active(txn)
        root = txn.root
        conn = root.conn
        if conn is None:
            conn = self._start_connection(root)
        if txn.nested and txn.savepoint is None:
            unemitted = []
            level: SessionTransaction | None = txn
            while level is not None and level.nested and level.savepoint is None:
                unemitted.append(level)
                level = level.parent
            for level in reversed(unemitted):
                level.savepoint = conn.begin_nested()
        return conn

    def _start_connection(self, root: SessionTransaction) -> Connection:
        bind = self.bind
        if bind is None:
            raise InvalidRequestError(
                "This Session is not bound to an Engine or Connection; create it as "
                "Session(engine) or sessionmaker(bind=engine)()."
            )
        if isinstance(bind, Engine):
            conn = bind.connect()
            try:
                root.trans = conn.begin()
            except BaseException:
                conn.close()
                raise
            root.owns_conn = True
            root.conn = conn
            return conn
        # An application's Connection: join its transaction as join_transaction_mode says.
        if bind.closed:
            raise InvalidRequestError(
                "The Connection this Session is bound to is closed; bind the Session to an "
                "open Connection or to an Engine."
            )
        mode = self.join_transaction_mode
        if not bind.in_transaction():
            root.trans = bind.begin()
        elif mode == "create_savepoint" or (
            mode == "conditional_savepoint" and bind.in_nested_transaction()
        ):
            root.trans = bind.begin_nested()
        elif mode == "control_fully":
            root.trans = bind.get_transaction()
        else:  # rollback_only, or conditional_savepoint outside a savepoint
            root.trans = bind.get_transaction()
            root.should_commit = False
        root.conn = bind
        return bind

    def connection(self) -> Connection:
        """The Connection of the current transaction (begins one if needed; no autoflush)."""
        return self._connection()

    def _end_connection(self, root: SessionTransaction, commit: bool) -> None:
        conn = root.conn
        if conn is None:
            return
        trans = root.trans
        try:
            if trans is not None and trans.is_active:
                if not commit:
                    trans.rollback()
                elif root.should_commit:
                    if _aborted_by_error(conn):
                        # PostgreSQL answers COMMIT of an aborted transaction with a silent
                        # ROLLBACK: report it instead of letting commit() look successful.
                        trans.rollback()
                        raise PendingRollbackError(
                            "This Session's transaction was aborted by an earlier database "
                            "error (PostgreSQL ignores every statement after an error until "
                            "ROLLBACK), so it cannot be committed: it has been rolled back "
                            "and nothing of it was saved. Call Session.rollback() where the "
                            "error is caught, or run statements that may fail inside "
                            "begin_nested()."
                        )
                    trans.commit()
        finally:
            root.conn = None
            root.trans = None
            if root.owns_conn:
                conn.close()

    def commit(self) -> None:
        """Flush, release open SAVEPOINTs, COMMIT, then expire everything."""
        txn = self._transaction
        if txn is None:
            txn = self._autobegin()
        self._check_active(txn)
        self.flush()
        while txn.nested:
            self._release(txn)
            txn = self._transaction
            assert txn is not None
        try:
            self._end_connection(txn, commit=True)
        except BaseException:
            # COMMIT itself failed: the database kept nothing of this transaction (unless
            # the connection was lost during COMMIT; then nobody can know, see retry.py).
            self._discard_all("rollback")
            raise
        self._transaction = None
        txn.closed = True
        for _obj, state in txn.deleted:
            if state.session_ref is self._ref and state.deleted:
                state.deleted = False
                state.session_ref = None
        if self.expire_on_commit:
            self._expire_everything("commit")

    def _release(self, txn: SessionTransaction) -> None:
        """RELEASE SAVEPOINT; the level's records move to its parent, nothing expires."""
        savepoint = txn.savepoint
        if savepoint is not None and savepoint.is_active:
            savepoint.commit()
        txn.hand_to_parent()
        txn.closed = True
        self._transaction = txn.parent

    def _commit_level(self, txn: SessionTransaction) -> None:
        if txn.closed:
            raise ResourceClosedError(f"This transaction is closed: {txn!r}")
        if not txn.nested:
            self.commit()
            return
        self._check_active(self._autobegin())
        self.flush()
        # Committing an outer SAVEPOINT releases the ones opened inside it first.
        while True:
            inner = self._transaction
            assert inner is not None
            self._release(inner)
            if inner is txn:
                return

    def _rollback_level(self, txn: SessionTransaction) -> None:
        if txn.closed:
            raise ResourceClosedError(f"This transaction is closed: {txn!r}")
        if not txn.nested:
            self.rollback()
            return
        while True:
            inner = self._transaction
            assert inner is not None
            self._rollback_savepoint(inner)
            if inner is txn:
                return

    def _rollback_savepoint(self, txn: SessionTransaction) -> None:
        """ROLLBACK TO SAVEPOINT; only what changed inside it is reverted."""
        try:
            savepoint = txn.savepoint
            if txn.failed is None and savepoint is not None and savepoint.is_active:
                savepoint.rollback()
        finally:
            if txn.failed is None:
                self._revert([txn], "rollback", dirty_only=True)
            else:
                self._drop_pending(dirty_only=True)
            txn.closed = True
            self._transaction = txn.parent

    def rollback(self) -> None:
        """ROLLBACK (if a connection is held) and put every object back as it was."""
        txn = self._transaction
        if txn is None:
            return
        discarded = txn.failed is not None and self._has_work()
        self._discard_all("rollback")
        if discarded:
            warn(
                "Session's state has been changed on a non-active transaction - this state "
                "will be discarded.",
            )

    def _discard_all(self, reason: str) -> None:
        levels = self._levels()
        if not levels:
            return
        try:
            self._rollback_savepoints(levels)
            self._end_connection(levels[-1], commit=False)
        finally:
            self._transaction = None
            for level in levels:
                level.closed = True
            self._revert(levels, reason, dirty_only=False)

    @staticmethod
    def _rollback_savepoints(levels: list[SessionTransaction]) -> None:
        """ROLLBACK TO each open SAVEPOINT, innermost first, as the reference does."""
        for level in levels[:-1]:
            savepoint = level.savepoint
            if level.failed is None and savepoint is not None and savepoint.is_active:
                savepoint.rollback()

    def _drop_pending(self, dirty_only: bool) -> None:
        """Pending objects become transient; unflushed delete marks are forgotten."""
        self._forget_fresh()
        for state in self._new:
            state.session_ref = None
        self._new.clear()
        for state in self._deleted:
            # delete() again of an object whose DELETE was flushed: persistent again.
            state.deleted = state.was_deleted = False
        if dirty_only:
            for state, obj in self._deleted.items():
                self.identity_map.add(state.mapper, state.key, obj)
            expiry = Expiry("rollback")
            for state, obj in self._modified.items():
                if state.key is not None and state.session_ref is self._ref:
                    expire_state(obj, state, expiry, None)
        self._deleted.clear()
        self._modified.clear()

    def _revert(self, levels: list[SessionTransaction], reason: str, dirty_only: bool) -> None:
        """Undo these levels in memory: what the database just forgot, we forget too.

        The root (``dirty_only=False``) expires every object; a SAVEPOINT expires only
        the objects changed inside it, as the reference does.
        """
        self._forget_fresh()
        ref = self._ref
        imap = self.identity_map
        inserted = [p for level in levels for p in level.inserted]
        deleted = [p for level in levels for p in level.deleted]
        updated = [p for level in levels for p in level.updated]
        switches = [s for level in levels for s in level.key_switches]
        for level in levels:
            level.forget()
        inserted_ids = {id(s) for _, s in inserted}
        for obj_ref, state, old_key in reversed(switches):
            obj = obj_ref()
            if obj is not None and state.session_ref is ref and id(state) not in inserted_ids:
                imap.discard(state.mapper, state.key, obj)
                state.key = old_key
                imap.add(state.mapper, old_key, obj)
        for obj_ref, state in inserted:
            # Also objects expunged since: their row is gone, so is their identity.
            if state.session_ref is ref or (state.session_ref is None and state.key is not None):
                obj = obj_ref()
                if obj is not None and not state.deleted:
                    imap.discard(state.mapper, state.key, obj)
                state.key = None
                state.session_ref = None
                state.deleted = state.was_deleted = False
                state.clear_history()
        for obj_ref, state in deleted:
            obj = obj_ref()
            if obj is not None and state.session_ref is ref and id(state) not in inserted_ids:
                state.deleted = state.was_deleted = False
                imap.add(state.mapper, state.key, obj)
                if dirty_only and state.modified:
                    # Changed after its DELETE was flushed: those values were never saved.
                    expire_state(obj, state, Expiry(reason), None)
        self._drop_pending(dirty_only)
        if dirty_only:
            expiry = Expiry(reason)
            for obj_ref, state in updated:
                obj = obj_ref()
                if obj is not None and state.session_ref is ref and state.key is not None:
                    expire_state(obj, state, expiry, None)
        else:
            self._expire_everything(reason)

    def _expire_everything(self, reason: str) -> None:
        """Expire every object in the identity map as one event.

        Runs on every commit and rollback, so the per-object work is inlined: the values
        go (the instance dict is emptied in one call when it holds nothing else) and the
        state records what expired them.
        """
        self._forget_fresh()
        expiry = Expiry(reason)
        track = self.batch_refresh
        members: dict[Any, list[weakref.ref[Any]]] = {}
        if track:
            expiry.members = members
        subs = list(self.identity_map.by_mapper.items())
        with paused(sum(len(sub) for _, sub in subs)):
            for mapper, sub in subs:
                refs = list(sub.values())
                if track:
                    members[mapper] = refs
                _expire_refs(mapper, refs, expiry)

    def close(self) -> None:
        """Detach every object, then end the transaction and return the connection."""
        self._close(reset_only=self.close_resets_only)

    def reset(self) -> None:
        """Like ``close()`` but always leaves the Session usable."""
        self._close(reset_only=True)

    def _close(self, reset_only: bool) -> None:
        levels = self._levels()
        self.expunge_all()
        if levels:
            for level in levels:
                level.closed = True
                for _, state in level.deleted:
                    if state.session_ref is self._ref:
                        state.session_ref = None
                        state.deleted = False
            self._transaction = None
            self._rollback_savepoints(levels)
            self._end_connection(levels[-1], commit=False)
        if not reset_only:
            self._closed_for_good = True

    # -- attaching and detaching ---------------------------------------------------------

    def _attached_elsewhere(self, obj: Any, state: InstanceState) -> None:
        ref = state.session_ref
        if ref is None or ref is self._ref:
            return
        other = ref()
        if other is None:
            state.session_ref = None
            return
        raise InvalidRequestError(
            f"Object '{state_str(obj)}' is already attached to session '{other.hash_key}' "
            f"(this is '{self.hash_key}'). Call session.expunge(obj) or close the other "
            f"session first, or use session.merge(obj) to copy its state into this one."
        )

    def _attach_persistent(self, obj: Any, state: InstanceState) -> None:
        existing = self.identity_map.lookup(state.mapper, state.key)
        if existing is not None and existing is not obj:
            raise InvalidRequestError(
                f"Can't attach instance {state_str(obj)}; another instance with key "
                f"{state.identity_key!r} is already present in this session."
            )
        state.session_ref = self._ref
        self.identity_map.add(state.mapper, state.key, obj)
        if state.modified:
            self._modified[state] = obj

    def add(self, instance: object) -> None:
        """Attach an object: transient -> pending, detached -> persistent. No SQL."""
        d = getattr(instance, "__dict__", None)
        if d is not None and STATE_KEY not in d:
            # A new object that no Session has seen: straight to pending.
            mapper = type(instance).__dict__.get(MAPPER_ATTR)
            if mapper is not None:
                if self._transaction is None:
                    self._autobegin()
                state = InstanceState(mapper, None, self._ref)
                state.modified = not d.keys().isdisjoint(mapper.attr_index)
                d[STATE_KEY] = state
                self._new[state] = instance
                return
        state = state_of(instance)
        self._attached_elsewhere(instance, state)
        if state.key is not None and (state.deleted or state.was_deleted):
            raise InvalidRequestError(
                f"Instance '{state_str(instance)}' has been deleted.  Use the make_transient() "
                f"function to send this object back to the transient state."
            )
        self._autobegin()
        if state.key is None:
            if state.session_ref is None:
                state.session_ref = self._ref
                self._new[state] = instance
            return
        if state.session_ref is self._ref:
            self._deleted.pop(state, None)
            return
        self._attach_persistent(instance, state)

    def add_all(self, instances: Iterable[object]) -> None:
        for obj in instances:
            self.add(obj)

    def delete(self, instance: object) -> None:
        """Mark a persistent (or detached) object for DELETE at the next flush."""
        state = state_of(instance)
        if state.key is None:
            raise InvalidRequestError(f"Instance '{state_str(instance)}' is not persisted")
        self._attached_elsewhere(instance, state)
        self._autobegin()
        if state.deleted or state.session_ref is not self._ref:
            # Deleting an object whose DELETE was already flushed re-attaches it and
            # DELETEs it again (matching no row: a warning), as the reference does.
            self._attach_persistent(instance, state)
            state.deleted = False
        self._deleted[state] = instance

    def _contains(self, obj: Any, state: InstanceState) -> bool:
        if state.session_ref is not self._ref:
            return False
        if state.key is None:
            return state in self._new
        return self.identity_map.lookup(state.mapper, state.key) is obj

    def __contains__(self, instance: object) -> bool:
        mapper_of(instance)
        state = instance.__dict__.get(STATE_KEY)
        if state is None:
            return False
        if state.__class__ is Loaded:
            return bool(
                state.session_ref is self._ref
                and self.identity_map.lookup(
                    state.mapper, state.mapper.key_from_dict(instance.__dict__)
                )
                is instance
            )
        return self._contains(instance, state)

    def expunge(self, instance: object) -> None:
        """Remove one object: pending -> transient, persistent -> detached."""
        state = state_of(instance)
        if state.deleted and state.session_ref is self._ref:
            state.deleted = False
            state.session_ref = None
            return
        if not self._contains(instance, state):
            raise InvalidRequestError(
                f"Instance {state_str(instance)} is not present in this Session; "
                f"{self._whereabouts(state)}."
            )
        self._detach(instance, state)

    def _detach(self, obj: Any, state: InstanceState) -> None:
        self._unfresh(state)
        if state.key is None:
            self._new.pop(state, None)
        else:
            self.identity_map.discard(state.mapper, state.key, obj)
            self._modified.pop(state, None)
            self._deleted.pop(state, None)
        state.session_ref = None

    def expunge_all(self) -> None:
        """Detach everything; the transaction and its connection stay as they are."""
        self._forget_fresh()
        for state in self._new:
            state.session_ref = None
        for obj in self.identity_map.objects():
            d = obj.__dict__
            st = d[STATE_KEY]
            if st.__class__ is Loaded:
                d[STATE_KEY] = st.mapper.detached_marker
            else:
                st.session_ref = None
        for state in self._modified:
            state.session_ref = None
        self.identity_map.clear()
        self._new.clear()
        self._deleted.clear()
        self._modified.clear()

    def _on_modified(self, obj: object, state: InstanceState) -> None:
        if state.key is not None and not state.deleted:
            self._modified[state] = obj
        if self._transaction is None:
            self._autobegin()

    # -- expiry and refresh --------------------------------------------------------------

    def _persistent_state(self, instance: object) -> InstanceState:
        state = state_of(instance)
        if state.key is None or not self._contains(instance, state):
            raise InvalidRequestError(
                f"Instance '{state_str(instance)}' is not persistent within this Session; "
                f"{self._whereabouts(state)}."
            )
        return state

    def _whereabouts(self, state: InstanceState) -> str:
        """Where an object this session does not hold is instead, and what to do."""
        ref = state.session_ref
        other = None if ref is None or ref is self._ref else ref()
        if other is not None:
            return (
                f"it is attached to session '{other.hash_key}' (this is '{self.hash_key}'): "
                f"use that session, or copy it into this one with session.merge(obj)"
            )
        if state.key is None:
            if ref is self._ref:
                return "it is pending: call session.flush() first"
            return "it is transient: add it with session.add(obj)"
        if state.deleted or state.was_deleted:
            return "it was deleted: its DELETE was flushed"
        return "it is detached: re-attach it with session.add(obj) first"

    def _attr_keys(self, state: InstanceState, names: Iterable[str] | None) -> list[str] | None:
        if names is None:
            return None
        names = list(names)
        for name in names:
            if name not in state.mapper.attr_index:
                raise InvalidRequestError(
                    f"{state.mapper.class_.__name__} has no mapped attribute {name!r}; mapped "
                    f"attributes are {', '.join(state.mapper.attr_keys)}"
                )
        return [k for k in state.mapper.attr_keys if k in names]

    def expire(self, instance: object, attribute_names: Iterable[str] | None = None) -> None:
        """Forget loaded values; the next read loads them again. No SQL now."""
        state = self._persistent_state(instance)
        keys = self._attr_keys(state, attribute_names)
        self._unfresh(state)
        expire_state(instance, state, Expiry("expire"), keys)
        if keys is None:
            state.clear_history()
            self._modified.pop(state, None)

    def expire_all(self) -> None:
        """Expire every object in the identity map; no SQL now."""
        self._expire_everything("expire")
        self._modified.clear()

    def refresh(self, instance: object, attribute_names: Iterable[str] | None = None) -> None:
        """Expire, autoflush the rest of the session, then SELECT the row again."""
        state = self._persistent_state(instance)
        keys = self._attr_keys(state, attribute_names)
        self.expire(instance, keys)
        expire_state(instance, state, Expiry("refresh"), keys)
        self._autoflush()
        self._check_unflushed_key(instance, state)
        load = tuple(keys) if keys is not None else state.mapper.attr_keys
        row = fetch_by_pk(self._connection(), state.mapper, state.key, load)
        if row is None:
            raise InvalidRequestError(f"Could not refresh instance '{state_str(instance)}'")
        apply_loaded(instance, state, load, row, overwrite=True)

    @staticmethod
    def _check_unflushed_key(obj: Any, state: InstanceState) -> None:
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

    def _expired_keys(self, obj: Any, state: InstanceState) -> tuple[str, ...]:
        expired = state.expired or ()
        d = obj.__dict__
        return tuple(k for k in state.mapper.attr_keys if k in expired and k not in d)

    def _load_expired_attribute(self, obj: object, state: InstanceState, key: str) -> None:
        err = expired_key_error(obj, state)
        if err is not None:
            raise err  # before any SQL or autoflush, as the reference
        txn = self._autobegin()
        self._check_active(txn)
        keys = self._expired_keys(obj, state)
        self._autoflush()
        if state.key is None or state.session_ref is not self._ref:
            return  # the autoflush failed and reverted the object; nothing to load
        if self.batch_refresh and len(keys) == len(state.mapper.attr_keys):
            batch = self._refresh_batch(obj, state)
            if len(batch) > 1:
                self._load_batch(obj, state, batch)
                return
        self._reload(obj, state, keys)

    def _reload(self, obj: Any, state: InstanceState, keys: tuple[str, ...]) -> None:
        """SELECT ``keys`` of one object by its identity; unflushed changes are kept."""
        row = fetch_by_pk(self._connection(), state.mapper, state.key, keys)
        if row is None:
            raise _object_deleted(obj)
        apply_loaded(obj, state, keys, row, overwrite=False)

    def _refresh_batch(self, obj: Any, state: InstanceState) -> list[Pair]:
        """``obj`` plus fully expired objects of its class expired by the same event."""
        batch: list[Pair] = [(obj, state)]
        expiry = state.expired_by
        if expiry is None or expiry.members is None:
            return batch
        refs = expiry.members.get(state.mapper)
        if not refs:
            return batch
        ref = self._ref
        attrs = state.mapper.attr_keys
        limit = self.refresh_batch_size
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

    def _load_batch(self, obj: Any, state: InstanceState, batch: list[Pair]) -> None:
        mapper = state.mapper
        conn = self._connection()
        keys = [st.key for _, st in batch]
        stmt = select_by_pks(mapper, conn.dialect, keys)
        params = {"pk_values": keys} if mapper.single_pk else None
        rows = _fetch_plain(conn.execute(stmt, params))
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
            raise _object_deleted(obj)

    # -- flush ---------------------------------------------------------------------------

    @property
    def no_autoflush(self) -> Any:
        """``with session.no_autoflush:`` suspends autoflush inside the block."""
        return self._no_autoflush_cm()

    @contextmanager
    def _no_autoflush_cm(self) -> Iterator[Session]:
        self._no_autoflush += 1
        try:
            yield self
        finally:
            self._no_autoflush -= 1

    def _autoflush(self) -> None:
        if not (self._new or self._deleted or self._modified):
            return
        if not self.autoflush or self._no_autoflush or self._flushing:
            return
        try:
            self.flush()
        except StatementError as err:
            err.add_detail(
                "raised as a result of Query-invoked autoflush; consider using a "
                "session.no_autoflush block if this flush is occurring prematurely"
            )
            raise

    def _has_work(self) -> bool:
        return bool(self._new or self._deleted or self._modified)

    def flush(self) -> None:
        """Write pending changes to the database inside the current transaction."""
        if self._flushing:
            raise InvalidRequestError("Session is already flushing")
        if not self._has_work():
            return
        txn = self._autobegin()
        self._check_active(txn)
        deleted_marked = self._deleted
        pending = list(self._new.items())
        deleted = [(o, s) for s, o in deleted_marked.items()]
        modified = [
            (o, s)
            for s, o in self._modified.items()
            if s not in deleted_marked and s.key is not None and not s.deleted
        ]
        self._flushing = True
        try:
            conn = self._connection()
            uow = UnitOfWork(self, conn)
            uow.register([(o, s) for s, o in pending], modified, deleted)
            with paused(len(pending) + len(modified) + len(deleted)):
                uow.execute()
            if uow.expired_some:
                self._forget_fresh()
        except BaseException as err:
            self._flush_failed(txn, err)
            raise
        finally:
            self._flushing = False
        self._modified.clear()

    def _flush_failed(self, txn: SessionTransaction, err: BaseException) -> None:
        """The database error propagates; the transaction (or SAVEPOINT) rolls back at once."""
        self._forget_fresh()
        if self._transaction is not txn:
            return
        try:
            if txn.nested:
                if txn.savepoint is not None and txn.savepoint.is_active:
                    txn.savepoint.rollback()
            else:
                trans = txn.trans
                if trans is not None and trans.is_active:
                    trans.rollback()
        finally:
            levels = [txn] if txn.nested else self._levels()
            self._revert(levels, "failed flush", dirty_only=txn.nested)
            txn.failed = err

    def _flush_load_expired(self, obj: Any, state: InstanceState) -> None:
        self._reload(obj, state, self._expired_keys(obj, state))

    def _flush_inserted(self, obj: Any, state: InstanceState, key: Any) -> None:
        if key is None:
            raise InvalidRequestError(
                f"Instance {state_str(obj)} has a NULL identity key after its INSERT; check "
                f"that the primary key of table {state.mapper.table.name!r} is generated by "
                f"the database or assigned before flush."
            )
        existing = self.identity_map.lookup(state.mapper, key)
        if existing is not None and existing is not obj:
            self._forget_fresh()
            existing_state = get_state(existing)
            existing_state.session_ref = None
        self._new.pop(state, None)
        state.key = key
        state.clear_history()
        self.identity_map.add(state.mapper, key, obj)
        txn = self._transaction
        assert txn is not None
        txn.inserted.append((weakref.ref(obj), state))

    def _flush_inserted_batch(self, mapper: Mapper, pairs: list[Pair]) -> None:
        """Pending -> persistent for one INSERT's objects: key, identity map, records."""
        txn = self._transaction
        assert txn is not None
        imap = self.identity_map
        sub = imap.sub(mapper)
        on_dead = imap.on_dead
        new_pop = self._new.pop
        record = txn.inserted.append
        key_from_dict = mapper.key_from_dict
        make_ref = weakref.ref
        for obj, state in pairs:
            key = key_from_dict(obj.__dict__)
            if key is None:
                raise InvalidRequestError(
                    f"Instance {state_str(obj)} has a NULL identity key after its INSERT; "
                    f"check that the primary key of table {mapper.table.name!r} is generated "
                    f"by the database or assigned before flush."
                )
            old = sub.get(key)
            if old is not None:
                other = old()
                if other is not None and other is not obj:
                    self._forget_fresh()
                    get_state(other).session_ref = None
            new_pop(state, None)
            state.key = key
            state.committed = None
            state.modified = False
            ref = sub[key] = make_ref(obj, on_dead)
            record((ref, state))

    def _flush_updated(self, obj: Any, state: InstanceState, new_key: Any) -> None:
        state.clear_history()
        txn = self._transaction
        assert txn is not None
        txn.updated.append((weakref.ref(obj), state))
        if new_key is not None and new_key != state.key:
            txn.key_switches.append((weakref.ref(obj), state, state.key))
            self._forget_fresh()
            self.identity_map.discard(state.mapper, state.key, obj)
            state.key = new_key
            self.identity_map.add(state.mapper, new_key, obj)

    def _flush_lookup(self, mapper: Mapper, key: Any) -> Any:
        return self.identity_map.lookup(mapper, key)

    def _flush_was_deleted(self, obj: Any) -> bool:
        """Whether an expired object's row is gone (then a new object may take its key).

        Like the reference, the flush loads the expired object to find out.
        """
        state = get_state(obj)
        if state.expired is not state.mapper.all_attrs:  # only after a full expiry
            return False
        try:
            self._flush_load_expired(obj, state)
        except ObjectDeletedError:
            self._mark_row_gone(obj, state)
            return True
        return False

    def _mark_row_gone(self, obj: Any, state: InstanceState) -> None:
        """A persistent object whose row is gone (DELETEd, or found missing) is *deleted*;
        recorded in the transaction, so that commit() detaches it and rollback() brings
        it back."""
        self._unfresh(state)
        self.identity_map.discard(state.mapper, state.key, obj)
        self._modified.pop(state, None)
        self._deleted.pop(state, None)
        state.deleted = state.was_deleted = True
        txn = self._transaction
        if txn is not None:
            txn.deleted.append((weakref.ref(obj), state))

    def _flush_deleted(self, obj: Any, state: InstanceState) -> None:
        self._mark_row_gone(obj, state)
        state.clear_history()

    # -- reading -------------------------------------------------------------------------

    def get(
        self,
        entity: type[_T],
        ident: Any,
        *,
        populate_existing: bool = False,
    ) -> _T | None:
        """The object with this primary key: from the identity map, else one SELECT."""
        # Fast path: one lookup in the index of loaded, unexpired objects; no SQL.
        try:
            obj = self._fresh[entity][ident]()
        except (KeyError, TypeError):  # not indexed (yet), or an unhashable identifier
            obj = None
        if obj is not None and not populate_existing:
            return obj  # type: ignore[no-any-return]
        mapper = mapper_of_class(entity)
        key = mapper.normalize_key(ident)
        if key is None or (not mapper.single_pk and key.count(None) == len(key)):
            warn(
                "fully NULL primary key identity cannot load any object.  This condition may "
                f"raise an error in a future release. (get({mapper.class_.__name__}, "
                f"{ident!r}): pass the primary-key value to load.)"
            )
        if self._transaction is not None:
            self._check_active(self._transaction)
        obj = self.identity_map.lookup(mapper, key)
        if obj is not None and not populate_existing:
            state = obj.__dict__[STATE_KEY]
            if state.expired is not mapper.all_attrs:  # only fully expired objects reload
                if not self._fresh_built:
                    self._build_fresh()
                else:
                    ref = self.identity_map.by_mapper[mapper].get(key)
                    self._fresh.setdefault(mapper.class_, {})[key] = ref
                return obj  # type: ignore[no-any-return]
            try:
                self._load_expired_attribute(obj, state, "")
                return obj  # type: ignore[no-any-return]
            except ObjectDeletedError:
                pass
            row = fetch_by_pk(self._connection(), mapper, key, mapper.attr_keys)
            if row is None:
                self._mark_row_gone(obj, state)
                return None
            apply_loaded(obj, state, mapper.attr_keys, row, overwrite=False)
            return obj  # type: ignore[no-any-return]
        self._autoflush()
        row = fetch_by_pk(self._connection(), mapper, key, mapper.attr_keys)
        if row is None:
            return None
        objs = load_rows(
            self.identity_map,
            mapper,
            (row,),
            self._marker(mapper),
            populate_existing,
            self._modified,
        )
        return objs[0]  # type: ignore[no-any-return]

    def execute(
        self,
        statement: Executable,
        params: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Any]:
        """Run a Core statement; selects of mapped classes yield identity-mapped objects."""
        self._autoflush()
        conn = self._connection()
        opts = execution_options or {}
        plan = _entity_plan(statement) if isinstance(statement, Select) else None
        if plan is None:
            return conn.execute(statement, params, execution_options=opts)
        populate = bool(
            opts.get("populate_existing")
            or statement.get_execution_options().get("populate_existing")
        )
        cursor = conn.execute(statement, params, execution_options=opts)
        rows = _fetch_plain(cursor)
        if len(plan) == 1:
            mapper = plan[0][0]
            assert mapper is not None
            objs = load_rows(
                self.identity_map, mapper, rows, self._marker(mapper), populate, self._modified
            )
            return ChunkedIteratorResult(
                SimpleResultMetaData([mapper.class_.__name__]),
                lambda size: iter([objs]),
                source_supports_scalars=True,
            )
        names = list(cursor.keys())
        assert isinstance(statement, Select)
        for i, raw in enumerate(statement._raw_columns):
            key = getattr(raw, "key", None)
            if plan[i] == (None, 1) and isinstance(key, str):
                names[_plan_position(plan, i)] = key
        return self._multi_entity_result(plan, names, rows, populate)

    def _multi_entity_result(
        self,
        plan: list[tuple[Mapper | None, int]],
        names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        populate: bool,
    ) -> Result[Any]:
        columns: list[list[Any]] = []
        keys: list[str] = []
        pos = 0
        for mapper, width in plan:
            part = [row[pos : pos + width] for row in rows]
            if mapper is not None:
                columns.append(
                    load_rows(
                        self.identity_map,
                        mapper,
                        part,
                        self._marker(mapper),
                        populate,
                        self._modified,
                    )
                )
                keys.append(mapper.class_.__name__)
            else:
                columns.extend([p[i] for p in part] for i in range(width))
                keys.extend(names[pos : pos + width])
            pos += width
        tuples = list(zip(*columns, strict=True)) if columns else []
        return ChunkedIteratorResult(SimpleResultMetaData(keys), lambda size: iter([tuples]))

    def scalars(
        self,
        statement: Executable,
        params: dict[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any:
        return self.execute(statement, params, execution_options=execution_options).scalars()

    def scalar(
        self,
        statement: Executable,
        params: dict[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any:
        return self.execute(statement, params, execution_options=execution_options).scalar()

    def query(self, entity: type[_T]) -> Query[_T]:
        """The small legacy facade: ``session.query(User).filter(...).all()``."""
        return Query(self, mapper_of_class(entity))

    def merge(self, instance: _T, *, load: bool = True) -> _T:
        """Copy ``instance``'s loaded state onto this session's object for the same key.

        Returns the session's own object (found in the identity map, loaded with a
        SELECT, or created pending when no row exists); ``instance`` itself is left as
        it was. ``load=False`` trusts the given values and emits no SQL.
        """
        state = state_of(instance)
        mapper = state.mapper
        src = instance.__dict__
        if self._contains(instance, state):
            return instance
        if load:
            self._autoflush()
        elif state.key is None:
            raise InvalidRequestError(
                f"merge() with load=False option does not support objects transient (i.e. "
                f"unpersisted) objects: {state_str(instance)} has never been flushed. flush() "
                f"all changes on mapped instances before merging with load=False."
            )
        elif state.modified:
            raise InvalidRequestError(
                f"merge() with load=False option does not support objects marked as 'dirty': "
                f"{state_str(instance)} has unflushed changes. Flush them in its own session "
                f"first, or merge with load=True."
            )
        key = state.key if state.key is not None else mapper.key_from_dict(src)
        merged: Any = None
        if key is not None:
            merged = self.identity_map.lookup(mapper, key)
            if merged is None and load:
                merged = self.get(mapper.class_, key)
        self._autobegin()
        values = [(k, src[k]) for k in mapper.attr_keys if k in src]
        if not load:
            # Trusted values: copied as loaded state, without history and without SQL.
            if merged is None:
                merged = object.__new__(mapper.class_)
                merged_state = InstanceState(mapper, key, self._ref)
                merged.__dict__.update(values)
                merged.__dict__[STATE_KEY] = merged_state
                missing = frozenset(k for k in mapper.attr_keys if k not in src)
                merged_state.expired = missing or None
                self.identity_map.add(mapper, key, merged)
            else:
                merged_state = get_state(merged)
                merged.__dict__.update(values)
                if merged_state.expired:
                    rest = merged_state.expired.difference(k for k, _ in values)
                    merged_state.expired = frozenset(rest) or None
            return merged  # type: ignore[no-any-return]
        if merged is None:
            merged = object.__new__(mapper.class_)
            self.add(merged)
        for k, v in values:
            setattr(merged, k, v)
        return merged  # type: ignore[no-any-return]

    # -- collections ---------------------------------------------------------------------

    @property
    def new(self) -> _IdentitySet:
        return _IdentitySet(self._new.values())

    @property
    def dirty(self) -> _IdentitySet:
        return _IdentitySet(
            o for s, o in self._modified.items() if s not in self._deleted and not s.deleted
        )

    @property
    def deleted(self) -> _IdentitySet:
        return _IdentitySet(self._deleted.values())

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._new.values()) + self.identity_map.objects())

    def is_modified(self, instance: object) -> bool:
        """True if flushing would change the row (pending objects always would)."""
        state = state_of(instance)
        if state.key is None:
            return state.session_ref is not None
        committed = state.committed
        if not committed:
            return False
        d = instance.__dict__
        compare = state.mapper.compare
        for key, old in committed.items():
            if old is NO_VALUE or not compare[key](old, d.get(key)):
                return True
        return False


def _aborted_by_error(conn: Connection) -> bool:
    """libpq reports the transaction as failed (PQTRANS_INERROR): COMMIT would roll back."""
    if conn.invalidated:
        return False  # Core refuses the COMMIT itself (code 8s2b)
    info = getattr(conn.connection.dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)  # psycopg 3, psycopg2 >= 2.8
    return status is not None and int(status) == 3


def _object_deleted(obj: Any) -> ObjectDeletedError:
    return ObjectDeletedError(
        f"Instance '{state_str(obj)}' has been deleted, or its row is otherwise not present. "
        f"Another transaction deleted it (or changed its primary key); call "
        f"session.expunge(obj) to stop tracking it."
    )


def _expire_refs(mapper: Mapper, refs: list[weakref.ref[Any]], expiry: Expiry) -> None:
    """The body of ``_expire_everything`` for one class, with the per-object work inlined."""
    all_attrs = mapper.all_attrs
    dict_keys = mapper.dict_keys
    attr_keys = mapper.attr_keys
    fast = not mapper.has_extras
    for obj_ref in refs:
        obj = obj_ref()
        if obj is None:
            continue
        d = obj.__dict__
        state = d[STATE_KEY]
        if state.__class__ is Loaded:
            state = InstanceState(mapper, mapper.key_from_dict(d), state.session_ref)
        if fast or d.keys() <= dict_keys:
            d.clear()
        else:
            for k in attr_keys:
                d.pop(k, None)
        d[STATE_KEY] = state
        state.expired = all_attrs
        state.committed = None
        state.modified = False
        state.expired_by = expiry


def _fetch_plain(result: Any) -> Sequence[Sequence[Any]]:
    """All rows, as the driver's tuples when Core has no per-column processing to do.

    Building Core ``Row`` objects only to unpack them again is the single largest cost
    of loading objects once the rest is tight; when no column of the result needs a
    result processor the driver's own tuples carry exactly the same values.
    """
    metadata = getattr(result, "_metadata", None)
    processors = getattr(metadata, "_processors", None)
    if (
        processors is not None
        and getattr(metadata, "_tuplefilter", None) is None
        and not any(processors)
        and hasattr(result, "_fetchall_impl")
    ):
        rows: Sequence[Sequence[Any]] = result._fetchall_impl()
        return rows
    return result.fetchall()  # type: ignore[no-any-return]


def _plan_position(plan: list[tuple[Mapper | None, int]], index: int) -> int:
    return sum(width for _, width in plan[:index])


def _entity_plan(statement: Select[Any]) -> list[tuple[Mapper | None, int]] | None:
    """Which result columns belong to which mapped class, or None if there are none."""
    plan: list[tuple[Mapper | None, int]] = []
    found = False
    for raw in statement._raw_columns:
        mapper = raw._annotations.get("sessionkit_mapper")
        if mapper is not None:
            found = True
            plan.append((mapper, len(mapper.columns)))
        elif hasattr(raw, "c") and not hasattr(raw, "type"):
            plan.append((None, len(raw.c)))
        else:
            plan.append((None, 1))
    return plan if found else None


class sessionmaker:
    """A configured Session factory: ``Session = sessionmaker(bind=engine)``."""

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        class_: type[Session] = Session,
        **options: Any,
    ) -> None:
        self.bind = bind
        self.class_ = class_
        self.kw = options

    def __call__(self, **local_kw: Any) -> Session:
        kw = {"bind": self.bind, **self.kw, **local_kw}
        return self.class_(**kw)

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A new Session in a transaction: commits at the end, rolls back on error, closes."""
        with self() as session, session.begin():
            yield session

    def configure(self, **new_kw: Any) -> None:
        if "bind" in new_kw:
            self.bind = new_kw.pop("bind")
        self.kw.update(new_kw)

    def __repr__(self) -> str:
        return f"sessionmaker(class_={self.class_.__name__}, bind={self.bind!r}, {self.kw})"


def make_transient(instance: object) -> None:
    """Forget the object's identity and session; its ``__dict__`` values stay."""
    state = state_of(instance)
    ref = state.session_ref
    session = None if ref is None else ref()
    if session is not None:
        session._forget_fresh()
        session._new.pop(state, None)
        session._modified.pop(state, None)
        session._deleted.pop(state, None)
        if state.key is not None:
            session.identity_map.discard(state.mapper, state.key, instance)
    state.session_ref = None
    state.key = None
    state.deleted = state.was_deleted = False
    state.expired = None
    state.clear_history()


def make_transient_to_detached(instance: object) -> None:
    """Give a transient object with a primary key an identity, as if loaded then detached."""
    state = state_of(instance)
    if state.key is not None or state.session_ref is not None:
        raise InvalidRequestError(f"Given object {state_str(instance)} must be transient")
    key = state.mapper.key_from_dict(instance.__dict__)
    if key is None:
        raise InvalidRequestError(
            f"Instance {state_str(instance)} has no complete primary key "
            f"({', '.join(state.mapper.pk_attr_keys)}); set it before "
            f"make_transient_to_detached()."
        )
    state.key = key
    d = instance.__dict__
    missing = frozenset(k for k in state.mapper.attr_keys if k not in d)
    state.expired = missing or None
    state.expired_by = Expiry("detach")
    state.clear_history()
