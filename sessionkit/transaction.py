"""The session's transaction tree: connections, commit and rollback per level, and undo.

Two layers of transaction exist, as in the reference. The *session transaction* is
bookkeeping: which objects its flushes inserted, deleted or re-keyed since it began, so
that a rollback can put them back; it starts as soon as anything is attached or changed.
The *connection transaction* is a Core ``Connection.begin()`` (``BEGIN (implicit)`` in
the log) and starts only when SQL must run.

The root level owns the connection (or joins an application's Connection); each
``begin_nested()`` adds a SAVEPOINT level, emitted lazily with the next statement. Every
level keeps an ``UndoLog``; a released SAVEPOINT hands its log to its parent, a rolled
back one reverts it, and the root reverts everything.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .awaiting import note_unknown_commit
from .exc import InvalidRequestError, PendingRollbackError, ResourceClosedError, warn
from .expiry import expire_identity_map, expire_state
from .firing import (
    Snapshot,
    fire,
    log_objects,
    snapshot,
    transitions,
    watching_states,
)
from .flush import UnitOfWork
from .gcpause import paused
from .hooks import SESSION
from .relsync import prepare_flush, warn_strays
from .state import Expiry, get_state
from .tracking import Recorder, Tracker, UndoLog

if TYPE_CHECKING:
    from .session import Session


class SessionTransactionOrigin(enum.Enum):
    """How a session transaction began (the ORM's names and values)."""

    AUTOBEGIN = 0
    BEGIN = 1
    BEGIN_NESTED = 2
    SUBTRANSACTION = 3


class FlushContext:
    """What flush event listeners get as ``flush_context``: the session, the flush's
    own transaction, and an ``attributes`` dict for listeners to share data in."""

    __slots__ = ("attributes", "session", "transaction")

    def __init__(self, session: Session, transaction: SessionTransaction) -> None:
        self.session = session
        self.transaction = transaction
        self.attributes: dict[Any, Any] = {}


class SessionTransaction:
    """One level of the session's transaction tree: the root, or a SAVEPOINT.

    Used as a context manager it commits (or releases) on success and rolls back on
    error, re-raising. (A flush's own level, reported to event listeners only, is one
    too: origin ``SUBTRANSACTION``.)
    """

    def __init__(
        self,
        session: Session,
        tracker: Tracker,
        parent: SessionTransaction | None = None,
        *,
        nested: bool = False,
        explicit: bool = False,
        origin: SessionTransactionOrigin = SessionTransactionOrigin.AUTOBEGIN,
    ) -> None:
        self.origin = origin
        self.session = session
        self.tracker = tracker
        self.parent = parent
        self.nested = nested
        self.explicit = explicit
        # Root only: the connection and the Core transaction this session controls.
        self.conn: Connection | None = None
        self.owns_conn = False
        self.trans: Any = None
        self.should_commit = True
        # Nested only: the Core SAVEPOINT, emitted lazily with the next SQL.
        self.savepoint: Any = None
        self.log = UndoLog(keeps_updated=parent is not None)
        self.failed: BaseException | None = None
        self.closed = False
        # Root only: the COMMIT went through (set the moment that is known), so that an
        # interrupt before the bookkeeping after it cannot turn it into a rollback.
        self.committed = False

    @property
    def root(self) -> SessionTransaction:
        txn = self
        while txn.parent is not None:
            txn = txn.parent
        return txn

    @property
    def is_active(self) -> bool:
        return not self.closed and self.failed is None

    def _levels(self) -> list[SessionTransaction]:
        """This level and those around it, innermost first."""
        out = []
        txn: SessionTransaction | None = self
        while txn is not None:
            out.append(txn)
            txn = txn.parent
        return out

    def _check_active(self) -> None:
        if self.failed is not None:
            where = "Session.rollback()"
            if self.nested:
                where = "rollback() on the transaction returned by begin_nested()"
            raise PendingRollbackError(
                "This Session's transaction has been rolled back due to a previous exception "
                "during flush. To begin a new transaction with this Session, first issue "
                f"Session.rollback(). Original exception was: {self.failed}"
                + ("" if not self.nested else f" (inside a SAVEPOINT: call {where})"),
                code="7s2a",
            ) from self.failed  # the cause stays inspectable (sessionkit.is_retryable reads it)

    # -- the connection -----------------------------------------------------------------

    def _connection(self) -> Connection:
        """The root's connection (begun on first use), with this level's SAVEPOINTs."""
        self._check_active()
        root = self.root
        conn = root.conn
        if conn is None:
            conn = root._start_connection()
        if self.nested and self.savepoint is None:
            unemitted = []
            level: SessionTransaction | None = self
            while level is not None and level.nested and level.savepoint is None:
                unemitted.append(level)
                level = level.parent
            for level in reversed(unemitted):
                level.savepoint = conn.begin_nested()
                if SESSION:
                    fire(self.session, "after_begin", level, conn)
        return conn

    def _start_connection(self) -> Connection:
        bind = self.session.bind
        if bind is None:
            raise InvalidRequestError(
                "This Session is not bound to an Engine or Connection; create it as "
                "Session(engine) or sessionmaker(bind=engine)()."
            )
        if isinstance(bind, Engine):
            conn = bind.connect()
            try:
                self.trans = conn.begin()
            except BaseException:
                conn.close()
                raise
            self.owns_conn = True
            self.conn = conn
            if SESSION:
                fire(self.session, "after_begin", self, conn)
            return conn
        # An application's Connection: join its transaction as join_transaction_mode says.
        if bind.closed:
            raise InvalidRequestError(
                "The Connection this Session is bound to is closed; bind the Session to an "
                "open Connection or to an Engine."
            )
        mode = self.session.join_transaction_mode
        if not bind.in_transaction():
            self.trans = bind.begin()
        elif mode == "create_savepoint" or (
            mode == "conditional_savepoint" and bind.in_nested_transaction()
        ):
            self.trans = bind.begin_nested()
        elif mode == "control_fully":
            self.trans = bind.get_transaction()
        else:  # rollback_only, or conditional_savepoint outside a savepoint
            self.trans = bind.get_transaction()
            self.should_commit = False
        self.conn = bind
        if SESSION:
            fire(self.session, "after_begin", self, bind)
        return bind

    def _end_connection(self, commit: bool) -> None:
        """COMMIT or ROLLBACK the root's Core transaction and give the connection back."""
        conn = self.conn
        if conn is None:
            return
        trans = self.trans
        try:
            if trans is not None and trans.is_active:
                if not commit:
                    trans.rollback()
                elif self.should_commit:
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
                    try:
                        trans.commit()
                        self.committed = True
                    except BaseException as err:
                        # An interrupt once the DBAPI COMMIT returned (the Core transaction
                        # is over, and no database error is involved): it did commit.
                        self.committed = not trans.is_active and not _database_error(err)
                        if self.committed:
                            note_unknown_commit(err)  # or cancelled while waiting for it
                        raise
            self.committed = commit
        finally:
            self.conn = None
            self.trans = None
            if self.owns_conn:
                conn.close()

    # -- flush --------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the tracker's pending changes inside this (the innermost) level.

        A failure rolls this level back at once, in the database and in memory, and
        leaves it failed until the application calls rollback().
        """
        tracker = self.tracker
        if tracker.flushing:
            raise InvalidRequestError("Session is already flushing")
        if tracker.strays:
            warn_strays(self.session, tracker)
        if not tracker.has_work():
            return
        self._check_active()
        if SESSION:
            self._flush_with_events()
            return
        self._flush_work(None)

    def _flush_with_events(self) -> None:
        """The flush, announced: before_flush, a flush transaction, after_flush..."""
        session = self.session
        tracker = self.tracker
        sub = SessionTransaction(
            session, tracker, self, origin=SessionTransactionOrigin.SUBTRANSACTION
        )
        ctx = FlushContext(session, sub)
        fire(session, "before_flush", ctx, None)
        if not tracker.has_work():
            return  # the listener undid the work
        fire(session, "after_transaction_create", sub)
        try:
            self._flush_work(ctx)
        except BaseException:
            sub.closed = True
            fire(session, "after_transaction_end", sub)
            fire(session, "after_soft_rollback", sub)
            raise
        sub.closed = True
        fire(session, "after_transaction_end", sub)

    def _flush_work(self, ctx: FlushContext | None) -> None:
        tracker = self.tracker
        if tracker.orphans or tracker.deleted:
            self._prepare_relationships()
        deleted_marked = tracker.deleted
        pending = [(o, s) for s, o in tracker.new.items()]
        deleted = [(o, s) for s, o in deleted_marked.items()]
        modified = [
            (o, s)
            for s, o in tracker.modified.items()
            if s not in deleted_marked and s.key is not None and not s.deleted
        ]
        try:
            tracker.flushing = True
            conn = self._connection()
            recorder = Recorder(tracker, self.log)
            uow = UnitOfWork(tracker.identity_map, recorder, conn, hold=ctx is not None)
            uow.register(pending, modified, deleted)
            with paused(len(pending) + len(modified) + len(deleted)):
                uow.execute()
            if uow.expired_some:
                tracker.identity_map.forget_fresh()
            if ctx is not None:
                self._after_flush(ctx, uow, pending, modified, deleted)
            else:
                tracker.modified.clear()
        except BaseException as err:
            self._flush_failed(err)
            raise
        finally:
            tracker.flushing = False

    def _prepare_relationships(self) -> None:
        """Cascades a flush settles first (relsync.prepare_flush); what they load or
        delete is part of this flush, so a failure rolls it back the same way."""
        tracker = self.tracker
        if not tracker.orphans and not any(s.mapper.relationships for s in tracker.deleted):
            return
        tracker.flushing = True
        try:
            prepare_flush(self.session, tracker, self._connection())
        except BaseException as err:
            self._flush_failed(err)
            raise
        finally:
            tracker.flushing = False

    def _after_flush(
        self,
        ctx: FlushContext,
        uow: UnitOfWork,
        pending: list[Any],
        modified: list[Any],
        deleted: list[Any],
    ) -> None:
        """after_flush sees the objects as they were (new, dirty, deleted, pending...);
        then they change state, announced, and after_flush_postexec sees them after."""
        session = self.session
        tracker = self.tracker
        tracker.flushed = (
            [o for o, _ in pending],
            [o for o, _ in modified],
            [o for o, _ in deleted],
        )
        try:
            fire(session, "after_flush", ctx)
        finally:
            tracker.flushed = None
        uow.release_held()
        tracker.modified.clear()
        if watching_states():
            # The deleted first, then the inserted, as the ORM.
            before = [(o, "persistent") for o, _ in deleted]
            before += [(o, "pending") for o, _ in pending]
            transitions(session, tracker, before)
        fire(session, "after_flush_postexec", ctx)

    def _flush_failed(self, err: BaseException) -> None:
        """The database error propagates; the transaction (or SAVEPOINT) rolls back at once."""
        tracker = self.tracker
        tracker.identity_map.forget_fresh()
        if tracker.transaction is not self:
            return
        # Failed first: should the undo below be interrupted, the session still refuses
        # work until rollback(), which undoes again.
        self.failed = err
        levels = [self] if self.nested else self._levels()
        before = snapshot(tracker, log_objects(tracker, levels), True) if SESSION else None
        try:
            if self.nested:
                if self.savepoint is not None and self.savepoint.is_active:
                    self.savepoint.rollback()
            else:
                trans = self.trans
                if trans is not None and trans.is_active:
                    trans.rollback()
        finally:
            if SESSION:
                fire(self.session, "after_rollback")
            self._revert(levels, "failed flush", dirty_only=self.nested, before=before)

    # -- commit -------------------------------------------------------------------------

    def commit(self) -> None:
        """Root: flush, release open SAVEPOINTs, COMMIT, then expire everything.
        SAVEPOINT: flush, then RELEASE it (and the ones opened inside it)."""
        if self.closed:
            raise ResourceClosedError(f"This transaction is closed: {self!r}")
        inner = self.tracker.transaction
        assert inner is not None
        inner._check_active()
        if SESSION:
            fire(self.session, "before_commit")
        inner._flush()
        while self.tracker.transaction is not self:
            released = self._release_innermost()
            if SESSION:  # each SAVEPOINT inside commits on its own, as in the ORM
                fire(self.session, "after_commit")
                fire(self.session, "after_transaction_end", released)
                fire(self.session, "before_commit")
        if self.nested:
            self._release_innermost()
            if SESSION:
                fire(self.session, "after_commit")
                fire(self.session, "after_transaction_end", self)
            return
        try:
            self._end_connection(commit=True)
        except BaseException:
            if self.committed:
                self._after_commit()
            else:
                # COMMIT itself failed: the database kept nothing of this transaction
                # (unless the connection was lost during COMMIT; see retry.py).
                self._discard_all("rollback")
            raise
        self._after_commit()

    def _after_commit(self) -> None:
        """The root committed: detach the objects it deleted, close it, expire.

        Safe to run again: until the root is closed, rollback() runs it instead of undoing
        (an interrupt stopped it halfway). Expiry comes last; values it has not reached yet
        are the committed ones anyway.
        """
        tracker = self.tracker
        ref = tracker.ref
        before = None
        if SESSION and not self.closed:
            fire(self.session, "after_commit")
            before = snapshot(tracker, (r() for r, _ in self.log.deleted))
        for _obj, state in self.log.deleted:
            if state.session_ref is ref and state.deleted:
                state.session_ref = None  # first: interrupted here, it is already detached
                state.deleted = False
        transitions(self.session, tracker, before)
        was_closed, self.closed = self.closed, True
        tracker.transaction = None
        if self.session.expire_on_commit:
            expire_identity_map(tracker.identity_map, "commit", self.session.batch_refresh)
        if SESSION and not was_closed:
            fire(self.session, "after_transaction_end", self)

    def _release_innermost(self) -> SessionTransaction:
        """RELEASE SAVEPOINT; the level's log moves to its parent, nothing expires."""
        txn = self.tracker.transaction
        assert txn is not None and txn.parent is not None
        savepoint = txn.savepoint
        if savepoint is not None and savepoint.is_active:
            savepoint.commit()
        txn.log.hand_to(txn.parent.log)
        txn.closed = True
        self.tracker.transaction = txn.parent
        return txn

    # -- rollback -----------------------------------------------------------------------

    def rollback(self) -> None:
        """Root: ROLLBACK everything. SAVEPOINT: ROLLBACK TO it (and the ones inside it);
        only what changed inside it is reverted."""
        if self.closed:
            inner = self.tracker.transaction
            if inner is not None and inner.root is self:
                self.tracker.transaction = None  # a rollback interrupted at its very end
                return
            raise ResourceClosedError(f"This transaction is closed: {self!r}")
        if not self.nested:
            inner = self.tracker.transaction
            assert inner is not None
            discarded = inner.failed is not None and self.tracker.has_work()
            inner._discard_all("rollback", announce=bool(SESSION))
            if discarded:
                warn(
                    "Session's state has been changed on a non-active transaction - this "
                    "state will be discarded.",
                )
            return
        while True:
            inner = self.tracker.transaction
            assert inner is not None
            inner._rollback_savepoint()
            if inner is self:
                return

    def _rollback_savepoint(self) -> None:
        tracker = self.tracker
        before = snapshot(tracker, log_objects(tracker, [self]), True) if SESSION else None
        failed = self.failed is not None
        try:
            savepoint = self.savepoint
            if not failed and savepoint is not None and savepoint.is_active:
                savepoint.rollback()
        finally:
            if SESSION and not failed:
                fire(self.session, "after_rollback")
            if not failed:
                self._revert([self], "rollback", dirty_only=True, before=before)
            else:
                tracker.drop_pending(dirty_only=True)
                transitions(self.session, tracker, before)
            self.closed = True
            self.failed = None
            tracker.transaction = self.parent
            if SESSION:
                fire(self.session, "after_transaction_end", self)
                fire(self.session, "after_soft_rollback", self)

    def _discard_all(self, reason: str, announce: bool = False) -> None:
        """ROLLBACK the whole tree (from the innermost level) and revert it in memory.

        The levels stay open until the undo is complete, so that a rollback() stopped
        halfway by an interrupt is finished by the next one (undoing is idempotent).
        ``announce``: tell event listeners (rollback(), not a failed COMMIT).
        """
        root = self.root
        if root.committed:
            root._after_commit()  # an interrupt came after COMMIT: finish that instead
            return
        levels = self._levels()
        tracker = self.tracker
        before = snapshot(tracker, log_objects(tracker, levels), True) if announce else None
        try:
            _rollback_savepoints(levels)
            levels[-1]._end_connection(commit=False)
        finally:
            if announce:
                # Level by level, innermost first, as the ORM; a level whose flush failed
                # has already rolled back and said so.
                for level in levels[:-1]:
                    if level.failed is None:
                        fire(self.session, "after_rollback")
                    fire(self.session, "after_transaction_end", level)
                    fire(self.session, "after_soft_rollback", level)
                if root.failed is None:
                    fire(self.session, "after_rollback")
            self._revert(levels, reason, dirty_only=False, before=before)
            self.tracker.flushing = False  # no flush survives a rollback, even an interrupted one
            if levels[-1].conn is None:  # the connection is back: the tree is done
                for level in levels:
                    level.closed = True
                    level.failed = None  # its traceback holds the flush's frames: a cycle
                self.tracker.transaction = None
                if announce:
                    fire(self.session, "after_transaction_end", root)
                    fire(self.session, "after_soft_rollback", root)

    def _close(self) -> None:
        """Session.close(): called on the innermost level after its objects were detached.

        Objects whose DELETE was flushed are detached too; the Core transaction rolls back
        and the connection goes back to the pool (first, so that an interrupt here cannot
        keep it checked out).
        """
        levels = self._levels()
        tracker = self.tracker
        try:
            _rollback_savepoints(levels)
            levels[-1]._end_connection(commit=False)
        finally:
            ref = tracker.ref
            for level in levels:
                level.closed = True
                for _, state in level.log.deleted:
                    if state.session_ref is ref:
                        state.session_ref = None
                        state.deleted = False
            tracker.transaction = None
            tracker.flushing = False
            if SESSION:
                for level in levels:
                    fire(self.session, "after_transaction_end", level)

    def _revert(
        self,
        levels: list[SessionTransaction],
        reason: str,
        dirty_only: bool,
        before: Snapshot | None = None,
    ) -> None:
        """Undo these levels in memory: what the database just forgot, we forget too.

        The root (``dirty_only=False``) expires every object; a SAVEPOINT expires only
        the objects changed inside it, as the reference does. Listeners hear of the
        objects that changed state (``before``) ahead of the expiry, as in the ORM.
        """
        tracker = self.tracker
        imap = tracker.identity_map
        imap.forget_fresh()
        ref = tracker.ref
        logs = [level.log for level in levels]
        inserted = [p for log in logs for p in log.inserted]
        deleted = [p for log in logs for p in log.deleted]
        updated = [p for log in logs for p in log.updated]
        switches = [s for log in logs for s in log.key_switches]
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
                other = imap.lookup(state.mapper, state.key)
                if other is not None and other is not obj:
                    # Another object took the key since (a bulk INSERT ... RETURNING does
                    # not log its objects): it is pushed out and detached, as an INSERT
                    # pushes one out. Left attached, a delete() of it would DELETE the
                    # row that belongs to this object.
                    get_state(other).session_ref = None
                imap.add(state.mapper, state.key, obj)
                if dirty_only and state.modified:
                    # Changed after its DELETE was flushed: those values were never saved.
                    expire_state(obj, state, Expiry(reason), None)
        tracker.drop_pending(dirty_only)
        transitions(self.session, tracker, before)
        if dirty_only:
            expiry = Expiry(reason)
            for obj_ref, state in updated:
                obj = obj_ref()
                if obj is not None and state.session_ref is ref and state.key is not None:
                    expire_state(obj, state, expiry, None)
        else:
            expire_identity_map(imap, reason, self.session.batch_refresh)
        for log in logs:
            log.forget()

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


def _rollback_savepoints(levels: list[SessionTransaction]) -> None:
    """ROLLBACK TO each open SAVEPOINT, innermost first, as the reference does."""
    for level in levels[:-1]:
        savepoint = level.savepoint
        if level.failed is None and savepoint is not None and savepoint.is_active:
            savepoint.rollback()


def _database_error(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised while handling) came from the database."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return True
        seen = seen.__context__
    return False


def _aborted_by_error(conn: Connection) -> bool:
    """libpq reports the transaction as failed (PQTRANS_INERROR): COMMIT would roll back."""
    if conn.invalidated:
        return False  # Core refuses the COMMIT itself (code 8s2b)
    info = getattr(conn.connection.dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)  # psycopg 3, psycopg2 >= 2.8
    return status is not None and int(status) == 3
