"""What a Session tracks, and the state changes more than one operation needs.

The ``Tracker`` holds the identity map, the pending objects, the delete marks and the
objects with unflushed changes, plus the innermost open transaction level. Everything
that changes an object's state as a side effect of several operations (attach, detach,
"its row is gone", pending -> persistent) is written once here, so that the Session, the
transaction and the flush share one definition. Nothing here emits SQL.

``UndoLog`` is what one transaction level changed in the database; the flush writes to
it through a ``Recorder``, and a rollback reads it back (see ``transaction.py``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from .exc import InvalidRequestError
from .expiry import expire_state
from .identity import IdentityMap
from .state import STATE_KEY, Expiry, InstanceState, Loaded, get_state, state_str

if TYPE_CHECKING:
    from .mapping import Mapper
    from .transaction import SessionTransaction

Pair = tuple[Any, InstanceState]
Record = tuple[weakref.ref[Any], InstanceState]


class UndoLog:
    """The objects one transaction level's flushes inserted, updated, deleted or re-keyed.

    Weak references: bookkeeping must not keep objects the application dropped alive.
    """

    __slots__ = ("deleted", "inserted", "keeps_updated", "key_switches", "updated")

    def __init__(self, keeps_updated: bool = True) -> None:
        # Undoing the outermost level expires every object, so it has no use for the
        # list of updated ones: not keeping it saves an entry per UPDATE.
        self.keeps_updated = keeps_updated
        self.inserted: list[Record] = []
        self.updated: list[Record] = []
        self.deleted: list[Record] = []
        self.key_switches: list[tuple[weakref.ref[Any], InstanceState, Any]] = []

    def hand_to(self, parent: UndoLog) -> None:
        """A released SAVEPOINT's changes now belong to the level around it."""
        parent.inserted += self.inserted
        parent.updated += self.updated
        parent.deleted += self.deleted
        parent.key_switches += self.key_switches

    def forget(self) -> None:
        self.inserted, self.updated, self.deleted, self.key_switches = [], [], [], []


class Tracker:
    """The objects of one Session, by lifecycle state."""

    def __init__(self, session_ref: weakref.ref[Any]) -> None:
        self.ref = session_ref
        self.identity_map = IdentityMap(session_ref)
        self.new: dict[InstanceState, Any] = {}
        self.deleted: dict[InstanceState, Any] = {}
        self.modified: dict[InstanceState, Any] = {}
        # (object, relationship) pairs removed from a delete-orphan collection: the next
        # flush deletes those that are still without a parent (relsync.prepare_flush).
        self.orphans: list[tuple[Any, Any]] = []
        # (child, collection, parent, many-to-one key): an object outside the session
        # that a back reference puts into a collection of the session's (warn_strays).
        self.strays: list[tuple[Any, Any, Any, str]] = []
        # The innermost open level of the session's transaction tree, or None.
        self.transaction: SessionTransaction | None = None
        self.flushing = False
        # During after_flush listeners: what session.new / dirty / deleted were before
        # the flush (the ORM's listeners see them so).
        self.flushed: tuple[list[Any], list[Any], list[Any]] | None = None

    def has_work(self) -> bool:
        return bool(self.new or self.deleted or self.modified)

    def contains(self, obj: Any, state: InstanceState) -> bool:
        if state.session_ref is not self.ref:
            return False
        if state.key is None:
            return state in self.new
        return self.identity_map.lookup(state.mapper, state.key) is obj

    # -- attaching and detaching ------------------------------------------------------

    def attach_persistent(self, obj: Any, state: InstanceState) -> None:
        existing = self.identity_map.lookup(state.mapper, state.key)
        if existing is not None and existing is not obj:
            raise InvalidRequestError(
                f"Can't attach instance {state_str(obj)}; another instance with key "
                f"{state.identity_key!r} is already present in this session."
            )
        state.session_ref = self.ref
        self.identity_map.add(state.mapper, state.key, obj)
        if state.modified:
            self.modified[state] = obj

    def detach(self, obj: Any, state: InstanceState) -> None:
        self.identity_map.unfresh(state)
        if state.key is None:
            self.new.pop(state, None)
        else:
            self.identity_map.discard(state.mapper, state.key, obj)
            self.modified.pop(state, None)
            self.deleted.pop(state, None)
        state.session_ref = None

    def forget(self, obj: Any, state: InstanceState) -> None:
        """Drop every trace of ``obj`` (make_transient); its state is left to the caller."""
        self.identity_map.forget_fresh()
        self.new.pop(state, None)
        self.modified.pop(state, None)
        self.deleted.pop(state, None)
        if state.key is not None:
            self.identity_map.discard(state.mapper, state.key, obj)

    def expunge_all(self) -> None:
        for state in self.new:
            state.session_ref = None
        for obj in self.identity_map.objects():
            d = obj.__dict__
            st = d[STATE_KEY]
            if st.__class__ is Loaded:
                d[STATE_KEY] = st.mapper.detached_marker
            else:
                st.session_ref = None
        for state in self.modified:
            state.session_ref = None
        self.identity_map.clear()
        self.new.clear()
        self.deleted.clear()
        self.modified.clear()
        self.orphans.clear()
        self.strays.clear()

    def merge_loaded(
        self, mapper: Mapper, key: Any, merged: Any, values: list[tuple[str, Any]]
    ) -> Any:
        """merge(load=False): trusted values become loaded state of the object for
        ``key`` (``merged``, or a new persistent one), without history and without SQL."""
        if merged is None:
            merged = object.__new__(mapper.class_)
            state = InstanceState(mapper, key, self.ref)
            merged.__dict__.update(values)
            merged.__dict__[STATE_KEY] = state
            missing = mapper.all_attrs.difference(k for k, _ in values)
            state.expired = frozenset(missing) or None
            self.identity_map.add(mapper, key, merged)
            return merged
        state = get_state(merged)
        merged.__dict__.update(values)
        if state.expired:
            rest = state.expired.difference(k for k, _ in values)
            state.expired = frozenset(rest) or None
        return merged

    def mark_row_gone(self, obj: Any, state: InstanceState, log: UndoLog | None) -> None:
        """A persistent object whose row is gone (DELETEd, or found missing) is *deleted*;
        recorded in ``log`` first, so that commit() detaches it and rollback() brings it
        back even if an interrupt stops the rest of this."""
        if log is not None:
            log.deleted.append((weakref.ref(obj), state))
        self.identity_map.unfresh(state)
        self.identity_map.discard(state.mapper, state.key, obj)
        self.modified.pop(state, None)
        self.deleted.pop(state, None)
        state.deleted = state.was_deleted = True

    def drop_pending(self, dirty_only: bool) -> None:
        """Pending objects become transient; unflushed delete marks are forgotten.

        With ``dirty_only`` (a SAVEPOINT rollback) marked objects go back into the map
        and changed ones expire; otherwise everything expires afterwards anyway.
        """
        self.strays.clear()  # the assignments are undone with the rest
        if not dirty_only:
            self.orphans.clear()  # removals of a rolled back transaction orphan nothing
        self.identity_map.forget_fresh()
        for state in self.new:
            state.session_ref = None
        self.new.clear()
        for state in self.deleted:
            # delete() again of an object whose DELETE was flushed: persistent again.
            state.deleted = state.was_deleted = False
        if dirty_only:
            for state, obj in self.deleted.items():
                self.identity_map.add(state.mapper, state.key, obj)
            expiry = Expiry("rollback")
            for state, obj in self.modified.items():
                if state.key is not None and state.session_ref is self.ref:
                    expire_state(obj, state, expiry, None)
        self.deleted.clear()
        self.modified.clear()


class Recorder:
    """What the flush reports each object's statement to once it has succeeded: the
    object's new state in the tracker, and an entry in the level's undo log."""

    __slots__ = ("log", "tracker")

    def __init__(self, tracker: Tracker, log: UndoLog) -> None:
        self.tracker = tracker
        self.log = log

    def inserted(self, obj: Any, state: InstanceState, key: Any) -> None:
        """Pending -> persistent for one object (a row switch)."""
        self.inserted_batch(state.mapper, [(obj, state)], key)

    def inserted_batch(self, mapper: Mapper, pairs: list[Pair], key: Any = None) -> None:
        """Pending -> persistent for one INSERT's objects: key, identity map, undo log.

        ``key`` is given for a single object that takes over another's row; otherwise
        each object's key is read from its primary-key attributes.
        """
        tracker = self.tracker
        imap = tracker.identity_map
        sub = imap.sub(mapper)
        on_dead = imap.on_dead
        new_pop = tracker.new.pop
        record = self.log.inserted.append
        key_from_dict = mapper.key_from_dict
        make_ref = weakref.ref
        for obj, state in pairs:
            obj_key = key_from_dict(obj.__dict__) if key is None else key
            if obj_key is None:
                raise InvalidRequestError(
                    f"Instance {state_str(obj)} has a NULL identity key after its INSERT; "
                    f"check that the primary key of table {mapper.table.name!r} is generated "
                    f"by the database or assigned before flush."
                )
            # The undo log first: from here on a rollback undoes this INSERT, whatever
            # else an interrupt leaves undone. The key before the identity map, so that
            # undoing finds the entry to remove.
            ref = make_ref(obj, on_dead)
            record((ref, state))
            old = sub.get(obj_key)
            if old is not None:
                other = old()
                if other is not None and other is not obj:
                    imap.forget_fresh()
                    get_state(other).session_ref = None
            new_pop(state, None)
            state.committed = None
            state.modified = False
            state.key = obj_key
            sub[obj_key] = ref

    def updated_batch(self, mapper: Mapper, pairs: list[Pair]) -> None:
        """Objects of one class whose UPDATE succeeded (or that had nothing to write):
        their changes are saved. Inlined, as it runs once per object of every UPDATE.
        The key is read back from the attributes, which a changed primary key moves."""
        log = self.log
        if log.keeps_updated:
            log.updated += [(weakref.ref(obj), state) for obj, state in pairs]
        single = mapper.pk_attr_keys[0] if mapper.single_pk else None
        key_from_dict = mapper.key_from_dict
        for obj, state in pairs:
            state.committed = None
            state.rel_changes = None
            state.modified = False
            d = obj.__dict__
            new_key = d.get(single) if single is not None else key_from_dict(d)
            if new_key is not None and new_key != state.key:
                self._rekey(obj, state, new_key)

    def _rekey(self, obj: Any, state: InstanceState, new_key: Any) -> None:
        imap = self.tracker.identity_map
        self.log.key_switches.append((weakref.ref(obj), state, state.key))
        imap.forget_fresh()
        imap.discard(state.mapper, state.key, obj)
        state.key = new_key
        imap.add(state.mapper, new_key, obj)

    def deleted(self, obj: Any, state: InstanceState) -> None:
        self.tracker.mark_row_gone(obj, state, self.log)
        state.clear_history()

    def row_gone(self, obj: Any, state: InstanceState) -> None:
        """An object the flush found without a row (another transaction deleted it)."""
        self.tracker.mark_row_gone(obj, state, self.log)
