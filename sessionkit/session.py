"""The Session: the public face of the identity map, the unit of work and the transaction.

Each method here checks its arguments and says in which order things happen (autobegin,
autoflush, then SQL); the work itself lives below: ``tracking.py`` (which objects are in
which state), ``transaction.py`` (connections, commit, rollback, undo), ``flush.py``
(the unit of work), ``loading.py`` (results and reloads) and ``expiry.py``. Objects reach
their Session through a weak reference in their state, for two things only: loading an
expired attribute and reporting a first change.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Literal, TypeVar, overload

from sqlalchemy import Connection, Engine
from sqlalchemy.event import EventTarget
from sqlalchemy.sql.selectable import ForUpdateParameter
from typing_extensions import Self

from .awaiting import implicit_io_error, outside_await
from .exc import ArgumentError, InvalidRequestError, StatementError, UnboundExecutionError
from .expiry import expire_identity_map, expire_state
from .firing import fire, lifecycle, session_objects, snapshot, transitions
from .hooks import SESSION
from .identity import IdentityMap
from .loading import (
    apply_loaded,
    check_unflushed_key,
    expired_key_error,
    expired_keys,
    fetch_by_pk,
    for_update_arg,
    reload_expired,
)
from .mapping import mapper_of, state_of
from .merging import merge
from .reading import SessionReads
from .relsync import cascade_delete, cascade_expunge, cascade_targets, related_along
from .state import MAPPER_ATTR, NO_VALUE, STATE_KEY, Expiry, InstanceState, Loaded, state_str
from .tracking import Tracker
from .transaction import SessionTransaction, SessionTransactionOrigin

_T = TypeVar("_T")
_S = TypeVar("_S", bound="Session")
JoinMode = Literal["conditional_savepoint", "create_savepoint", "rollback_only", "control_fully"]
_JOIN_MODES = ("conditional_savepoint", "create_savepoint", "rollback_only", "control_fully")
_hash_keys = itertools.count(1)


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


class Session(SessionReads, EventTarget):
    """Tracks mapped objects and synchronises them with the database through Core.

    Public behaviour follows the SQLAlchemy 2.1 ORM ``Session``; see docs/behaviour.md
    for the rules and the few deliberate differences. The reading methods (``get``,
    ``execute``, ``scalars``...) are in reading.py.
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
        self._tracker = Tracker(self._ref)
        self.identity_map: IdentityMap = self._tracker.identity_map
        # get()'s fast path reads the identity map's index of loaded objects directly
        # (it is cleared in place, never replaced).
        self._fresh = self.identity_map.fresh
        self._no_autoflush = 0
        self._closed_for_good = False
        # The AsyncSession running this session, if any (weakly): loads must be awaited.
        self._async_owner: weakref.ref[Any] | None = None

    def __repr__(self) -> str:
        return f"<sessionkit.Session {self.hash_key} at {hex(id(self))}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

    def _autobegin(self) -> SessionTransaction:
        txn = self._tracker.transaction
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
            txn = self._tracker.transaction = SessionTransaction(self, self._tracker)
            if SESSION:
                fire(self, "after_transaction_create", txn)
        return txn

    def begin(self) -> SessionTransaction:
        """Begin a transaction explicitly; use as ``with session.begin():``."""
        if self._tracker.transaction is not None:
            raise InvalidRequestError("A transaction is already begun on this Session.")
        if self._closed_for_good:
            self._autobegin()  # raises the "permanently closed" error
        txn = SessionTransaction(
            self, self._tracker, explicit=True, origin=SessionTransactionOrigin.BEGIN
        )
        self._tracker.transaction = txn
        if SESSION:
            fire(self, "after_transaction_create", txn)
        return txn

    def begin_nested(self) -> SessionTransaction:
        """Flush, then open a SAVEPOINT level (emitted with the next SQL statement)."""
        txn = self._autobegin()
        txn._check_active()
        self.flush()
        child = SessionTransaction(
            self,
            self._tracker,
            txn,
            nested=True,
            explicit=True,
            origin=SessionTransactionOrigin.BEGIN_NESTED,
        )
        self._tracker.transaction = child
        if SESSION:
            fire(self, "after_transaction_create", child)
        return child

    def in_transaction(self) -> bool:
        return self._tracker.transaction is not None

    def in_nested_transaction(self) -> bool:
        txn = self._tracker.transaction
        return txn is not None and txn.nested

    @property
    def is_active(self) -> bool:
        txn = self._tracker.transaction
        return txn is None or txn.failed is None

    def get_transaction(self) -> SessionTransaction | None:
        """The root transaction, if one has begun."""
        txn = self._tracker.transaction
        return None if txn is None else txn.root

    def get_nested_transaction(self) -> SessionTransaction | None:
        txn = self._tracker.transaction
        return txn if txn is not None and txn.nested else None

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine | Connection:
        """The Engine or Connection this session runs its statements on."""
        if self.bind is None:
            raise UnboundExecutionError(
                "This session is not bound to a single Engine or Connection, and no context "
                "was provided to locate a binding. Create it as Session(engine) or "
                "sessionmaker(bind=engine)()."
            )
        return self.bind

    def connection(self) -> Connection:
        """The Connection of the current transaction (begins one if needed; no autoflush)."""
        return self._autobegin()._connection()

    def commit(self) -> None:
        """Flush, release open SAVEPOINTs, COMMIT, then expire everything."""
        self._autobegin().root.commit()

    def rollback(self) -> None:
        """ROLLBACK (if a connection is held) and put every object back as it was."""
        txn = self._tracker.transaction
        if txn is not None:
            txn.root.rollback()

    def close(self) -> None:
        """Detach every object, then end the transaction and return the connection."""
        self._close(reset_only=self.close_resets_only)

    def reset(self) -> None:
        """Like ``close()`` but always leaves the Session usable."""
        self._close(reset_only=True)

    def _close(self, reset_only: bool) -> None:
        txn = self._tracker.transaction
        try:
            if SESSION and txn is not None:
                self._detach_flushed_deletes(txn)
            self.expunge_all()
        except BaseException:
            if txn is not None and not txn.closed:
                txn.root.rollback()  # interrupted halfway: what is still attached is undone
            raise
        finally:
            if txn is not None:
                txn._close()  # the connection goes back even if detaching was interrupted
        if not reset_only:
            self._closed_for_good = True

    def _detach_flushed_deletes(self, txn: SessionTransaction) -> None:
        """close() detaches the objects whose DELETE it flushed: said first, as the other
        objects' transitions are, before the ROLLBACK (txn._close() does it otherwise)."""
        tracker = self._tracker
        level: SessionTransaction | None = txn
        objs: list[Any] = []
        while level is not None:
            objs.extend(ref() for ref, state in level.log.deleted if state.deleted)
            level = level.parent
        before = snapshot(tracker, objs)
        for obj in objs:
            if obj is not None:
                state = obj.__dict__[STATE_KEY]
                if state.session_ref is self._ref:
                    state.session_ref = None
                    state.deleted = False
        transitions(self, tracker, before)

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

    def add(self, instance: object) -> None:
        """Attach an object: transient -> pending, detached -> persistent. No SQL."""
        if SESSION:
            self._add_announced(instance)
            return
        self._add(instance)

    def _add_cascaded(self, instance: object, came_from: object) -> None:
        """``add()`` by the save-update cascade of a change to ``came_from``: the cascade
        from ``instance`` does not lead back to it, as the ORM's does not follow the back
        reference the change just set."""
        if SESSION:
            self._add_announced(instance, came_from)
            return
        self._add(instance, came_from)

    def _add_announced(self, instance: object, came_from: object = None) -> None:
        tracker = self._tracker
        if tracker.transaction is None:
            self._autobegin()
        old = lifecycle(tracker, instance)
        if old in ("transient", "detached"):
            state_of(instance)  # an unmapped object fails here, before any event
            fire(self, "before_attach", instance)
        self._add(instance, came_from)
        if old in ("transient", "detached"):
            fire(self, "after_attach", instance)
            transitions(self, tracker, [(instance, old)])

    def _add(self, instance: object, came_from: object = None) -> None:
        tracker = self._tracker
        d = getattr(instance, "__dict__", None)
        if d is not None and STATE_KEY not in d:
            # A new object that no Session has seen: straight to pending.
            mapper = type(instance).__dict__.get(MAPPER_ATTR)
            if mapper is not None:
                if tracker.transaction is None:
                    self._autobegin()
                state = InstanceState(mapper, None, self._ref)
                state.modified = not d.keys().isdisjoint(mapper.attr_index)
                d[STATE_KEY] = state
                tracker.new[state] = instance
                if mapper.relationships:
                    self.add_all(cascade_targets(instance, mapper, self._ref, came_from))
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
                tracker.new[state] = instance
        elif state.session_ref is self._ref:
            tracker.deleted.pop(state, None)
        else:
            tracker.attach_persistent(instance, state)
        if state.mapper.relationships:
            self.add_all(cascade_targets(instance, state.mapper, self._ref, came_from))

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
            self._tracker.attach_persistent(instance, state)
            state.deleted = False
        self._tracker.deleted[state] = instance
        if state.mapper.relationships:
            with self.no_autoflush:  # loading what cascades must not flush the DELETE
                cascade_delete(self, instance, state.mapper)

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
        return self._tracker.contains(instance, state)

    def expunge(self, instance: object) -> None:
        """Remove one object: pending -> transient, persistent -> detached."""
        state = state_of(instance)
        if state.deleted and state.session_ref is self._ref:
            state.deleted = False
            state.session_ref = None
            if SESSION:
                fire(self, "deleted_to_detached", instance)
            return
        if not self._tracker.contains(instance, state):
            raise InvalidRequestError(
                f"Instance {state_str(instance)} is not present in this Session; "
                f"{self._whereabouts(state)}."
            )
        before = snapshot(self._tracker, (instance,)) if SESSION else None
        self._tracker.detach(instance, state)
        transitions(self, self._tracker, before)
        if state.mapper.relationships:
            cascade_expunge(self, instance, state.mapper)

    def expunge_all(self) -> None:
        """Detach everything; the transaction and its connection stay as they are."""
        tracker = self._tracker
        before = snapshot(tracker, session_objects(tracker)) if SESSION else None
        tracker.expunge_all()
        transitions(self, tracker, before)

    def _on_modified(self, obj: object, state: InstanceState) -> None:
        """An attached object changed for the first time since it was loaded or flushed."""
        tracker = self._tracker
        if state.key is not None and not state.deleted:
            tracker.modified[state] = obj
        if tracker.transaction is None:
            self._autobegin()

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

    # -- expiry and refresh --------------------------------------------------------------

    def _persistent_state(self, instance: object) -> InstanceState:
        state = state_of(instance)
        if state.key is None or not self._tracker.contains(instance, state):
            raise InvalidRequestError(
                f"Instance '{state_str(instance)}' is not persistent within this Session; "
                f"{self._whereabouts(state)}."
            )
        return state

    @staticmethod
    def _attr_keys(state: InstanceState, names: Iterable[str] | None) -> list[str] | None:
        if names is None:
            return None
        names = list(names)
        mapper = state.mapper
        for name in names:
            if name not in mapper.attr_index and name not in mapper.relationships:
                raise InvalidRequestError(
                    f"{mapper.class_.__name__} has no mapped attribute {name!r}; mapped "
                    f"attributes are {', '.join(mapper.expire_keys)}"
                )
        return [k for k in mapper.expire_keys if k in names]

    def expire(self, instance: object, attribute_names: Iterable[str] | None = None) -> None:
        """Forget loaded values; the next read loads them again. No SQL now."""
        state = self._persistent_state(instance)
        keys = self._attr_keys(state, attribute_names)
        self.identity_map.unfresh(state)
        related = related_along(instance, state.mapper, "refresh-expire") if keys is None else ()
        expire_state(instance, state, Expiry("expire"), keys)
        if keys is None:
            state.clear_history()
            self._tracker.modified.pop(state, None)
        for item in related:  # the "refresh-expire" cascade
            if item in self:
                self.expire(item)

    def expire_all(self) -> None:
        """Expire every object in the identity map; no SQL now."""
        expire_identity_map(self.identity_map, "expire", self.batch_refresh)
        self._tracker.modified.clear()

    def refresh(
        self,
        instance: object,
        attribute_names: Iterable[str] | None = None,
        with_for_update: ForUpdateParameter = None,
    ) -> None:
        """Expire, autoflush the rest of the session, then SELECT the row again
        (``with_for_update``: locking it). Arguments are checked before anything changes."""
        state = self._persistent_state(instance)
        keys = self._attr_keys(state, attribute_names)
        lock = None
        if with_for_update is not None:
            call = f"refresh({state_str(instance)})"
            if with_for_update == {}:
                raise ArgumentError(
                    "with_for_update should be the boolean value True, or a dictionary with "
                    f"options.  A blank dictionary is ambiguous. ({call}: pass True for a "
                    "plain FOR UPDATE.)"
                )
            lock = for_update_arg(with_for_update, call)
        self.expire(instance, keys)
        expire_state(instance, state, Expiry("refresh"), keys)
        self._autoflush()
        check_unflushed_key(instance, state)
        mapper = state.mapper
        load = mapper.attr_keys
        if keys is not None:
            load = tuple(k for k in keys if k in mapper.attr_index)
        if load or lock is not None:
            conn = self.connection()
            row = fetch_by_pk(conn, mapper, state.key, load or mapper.pk_attr_keys, lock)
            if row is None:
                raise InvalidRequestError(f"Could not refresh instance '{state_str(instance)}'")
            apply_loaded(instance, state, load, row, overwrite=True)
        for key in keys or ():
            if key in mapper.relationships:  # named relationships load now, as the ORM's
                self._load_relationship(instance, mapper.relationships[key])

    def _load_expired_attribute(self, obj: object, state: InstanceState, key: str) -> None:
        """An expired attribute of ``obj`` was read: load it (and, with batch_refresh,
        other objects expired by the same event)."""
        err = expired_key_error(obj, state)
        if err is not None:
            raise err  # before any SQL or autoflush, as the reference
        if self._async_owner is not None and outside_await(self):
            raise implicit_io_error(obj, state, key or min(state.expired or ("?",)), False)
        self._autobegin()._check_active()
        keys = expired_keys(obj, state)  # before the autoflush, which may load some
        self._autoflush()
        if state.key is None or state.session_ref is not self._ref:
            return  # the autoflush failed and reverted the object; nothing to load
        batch = self.refresh_batch_size if self.batch_refresh else 0
        reload_expired(self.connection(), obj, state, keys, batch)

    # -- flush ---------------------------------------------------------------------------

    @property
    def no_autoflush(self) -> AbstractContextManager[Self]:
        """``with session.no_autoflush:`` suspends autoflush inside the block."""
        return self._no_autoflush_cm()

    @contextmanager
    def _no_autoflush_cm(self) -> Iterator[Self]:
        self._no_autoflush += 1
        try:
            yield self
        finally:
            self._no_autoflush -= 1

    def _autoflush(self) -> None:
        tracker = self._tracker
        if not tracker.has_work():
            return
        if not self.autoflush or self._no_autoflush or tracker.flushing:
            return
        try:
            self.flush()
        except StatementError as err:
            err.add_detail(
                "raised as a result of Query-invoked autoflush; consider using a "
                "session.no_autoflush block if this flush is occurring prematurely"
            )
            raise

    def flush(self) -> None:
        """Write pending changes to the database inside the current transaction."""
        tracker = self._tracker
        if tracker.flushing or tracker.has_work():
            self._autobegin()._flush()

    # -- merging -------------------------------------------------------------------------

    def merge(self, instance: _T, *, load: bool = True) -> _T:
        """Copy ``instance``'s loaded state onto this session's object for the same key,
        and along relationships with the ``merge`` cascade, the related objects'.

        Returns the session's own object (found in the identity map, loaded with a
        SELECT, or created pending when no row exists); ``instance`` itself is left as
        it was. ``load=False`` trusts the given values and emits no SQL.
        """
        return merge(self, instance, load)  # type: ignore[no-any-return]

    # -- collections ---------------------------------------------------------------------

    @property
    def new(self) -> _IdentitySet:
        flushed = self._tracker.flushed
        return _IdentitySet(self._tracker.new.values() if flushed is None else flushed[0])

    @property
    def dirty(self) -> _IdentitySet:
        flushed = self._tracker.flushed
        if flushed is not None:
            return _IdentitySet(flushed[1])
        deleted = self._tracker.deleted
        return _IdentitySet(
            o for s, o in self._tracker.modified.items() if s not in deleted and not s.deleted
        )

    @property
    def deleted(self) -> _IdentitySet:
        flushed = self._tracker.flushed
        return _IdentitySet(self._tracker.deleted.values() if flushed is None else flushed[2])

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._tracker.new.values()) + self.identity_map.objects())

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


class sessionmaker(Generic[_S]):
    """A configured Session factory: ``Session = sessionmaker(bind=engine)``."""

    class_: type[_S]

    # Typed as the ORM's: sessionmaker(engine) makes Sessions, class_=X makes X's.
    @overload
    def __init__(
        self, bind: Engine | Connection | None = ..., *, class_: type[_S], **options: Any
    ) -> None: ...

    @overload
    def __init__(
        self: sessionmaker[Session], bind: Engine | Connection | None = ..., **options: Any
    ) -> None: ...

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        class_: type[Any] = Session,
        **options: Any,
    ) -> None:
        self.bind = bind
        # A subclass of its own, as the ORM's: event listeners on this sessionmaker
        # apply to its sessions only.
        self.class_ = type(class_.__name__, (class_,), {"__module__": class_.__module__})
        self.kw = options

    def __call__(self, **local_kw: Any) -> _S:
        kw = {"bind": self.bind, **self.kw, **local_kw}
        return self.class_(**kw)

    @contextmanager
    def begin(self) -> Iterator[_S]:
        """A new Session in a transaction: commits at the end, rolls back on error, closes."""
        with self() as session, session.begin():
            yield session

    def configure(self, **new_kw: Any) -> None:
        if "bind" in new_kw:
            self.bind = new_kw.pop("bind")
        self.kw.update(new_kw)

    def __repr__(self) -> str:
        return f"sessionmaker(class_={self.class_.__name__}, bind={self.bind!r}, {self.kw})"
