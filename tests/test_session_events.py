"""Session events through ``sqlalchemy.event``, on sessionkit and on the ORM.

Each scenario listens with an ``EventLog`` (tests/support.py), which records every event
as plain values (the session, transactions, connections and flush contexts by number of
first appearance; objects by class, label and state at that moment) in order with the SQL
the engine saw, and the two libraries must record the same. The outlines asserted after
each comparison pin the order the ORM uses, one word per event or statement.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc as sa_exc
from models import empty_users, setup_items, setup_users
from reference import SK, Api, Obs, compare, run
from sqlalchemy import Column, Engine, Integer, event, select

import sessionkit
from support import EventLog, event_outline

# -- helpers ---------------------------------------------------------------------------------


def facts(obs: Obs, label: str) -> list[Any]:
    """Every observation with ``label``, in order."""
    return [o for o in obs if o[0] == label]


def first(obs: Obs, label: str) -> Any:
    return facts(obs, label)[0]


def outline(obs: Obs) -> list[str]:
    """The scenario's events and statements, one word each, after its ``start`` note."""
    out = event_outline(obs)
    return out[out.index("start") + 1 :] if "start" in out else out


# The events and statements of a flush that inserts one row, in a transaction that already
# has its connection.
INSERT_FLUSH = [
    "before_flush",
    "after_transaction_create",
    "before_insert",
    "INSERT",
    "after_insert",
    "after_flush",
    "pending_to_persistent",
    "after_flush_postexec",
    "after_transaction_end",
]
# The same flush as the first use of the session's connection: BEGIN, then after_begin,
# after the flush's own transaction was created and before the first statement.
FIRST_INSERT_FLUSH = [
    *INSERT_FLUSH[:2],
    "BEGIN",
    "after_begin",
    *INSERT_FLUSH[2:],
]
ADD = ["before_attach", "after_attach", "transient_to_pending"]


# -- a session's transactions -----------------------------------------------------------------


def fresh_commit_and_rollback(api: Api, engine: Engine, obs: Obs) -> None:
    empty_users(api, engine)
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.note("start")
        s = api.Session(engine)
        s.commit()
        log.note("committed", s.in_transaction())
        s2 = api.Session(engine)
        s2.rollback()
        log.note("rolled back", s2.in_transaction())
        s2.close()
        s.close()
        log.note("closed")


def test_fresh_session_commit_and_rollback(engine: Engine, ref_engine: Engine) -> None:
    """commit() of a session that did nothing begins and commits a session transaction
    with no connection (no after_begin, no SQL); rollback() of one that did nothing, and
    close(), fire nothing at all."""
    obs = compare(fresh_commit_and_rollback, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        "before_commit",
        "after_commit",
        "after_transaction_end",
        "committed",
        "rolled back",
        "closed",
    ]
    tx = ("tx", 0, False, None, "AUTOBEGIN")
    assert first(obs, "after_transaction_create") == ("after_transaction_create", "session 0", tx)
    assert first(obs, "after_transaction_end") == ("after_transaction_end", "session 0", tx)
    assert first(obs, "before_commit") == ("before_commit", "session 0")


def add_and_commit(api: Api, engine: Engine, obs: Obs) -> None:
    User = empty_users(api, engine)
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(User)
        log.note("start")
        s = api.Session(engine)
        sandy = User(name="sandy")
        s.add(sandy)
        log.note("added")
        s.commit()
        log.note("committed", api.state(sandy))
        s.close()
        log.note("closed", api.state(sandy))


def test_add_and_commit(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(add_and_commit, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",  # add() begins the session transaction
        *ADD,
        "added",
        "before_commit",
        *FIRST_INSERT_FLUSH,
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "committed",
        "persistent_to_detached",  # close(): the committed object is expired, not gone
        "closed",
    ]
    assert first(obs, "before_attach")[2] == ("User", None, "sandy", "transient")
    assert first(obs, "after_attach")[2] == ("User", None, "sandy", "pending")
    assert first(obs, "pending_to_persistent")[2] == ("User", 1, "sandy", "persistent")
    assert first(obs, "after_begin")[2:] == (("tx", 0, False, None, "AUTOBEGIN"), ("connection", 0))
    assert first(obs, "before_flush")[2:] == (("flush", 0), None)
    # The flush's own transaction: a child of the session's, ended before COMMIT.
    flush_tx = ("tx", 1, False, 0, "SUBTRANSACTION")
    assert facts(obs, "after_transaction_create")[1][2] == flush_tx
    assert facts(obs, "after_transaction_end")[0][2] == flush_tx
    assert facts(obs, "after_transaction_end")[1][2] == ("tx", 0, False, None, "AUTOBEGIN")
    # Expired by the commit: its values are gone when close() detaches it.
    assert first(obs, "persistent_to_detached")[2] == ("User", None, None, "detached")


def add_flush_rollback(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy",))
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(User)
        log.note("start")
        s = api.Session(engine)
        sandy = s.get(User, 1)
        patrick = User(name="patrick")
        s.add(patrick)
        s.flush()
        log.note("flushed")
        s.delete(sandy)
        log.note("deleted")
        s.rollback()
        log.note("rolled back", api.state(sandy), api.state(patrick))
        s.close()


def test_add_flush_rollback(engine: Engine, ref_engine: Engine) -> None:
    """A rollback puts back what the transaction's flushes did: the inserted object
    becomes transient (persistent_to_transient). An object marked by delete() but not
    flushed, which stayed persistent all along, still gets deleted_to_persistent."""
    obs = compare(add_flush_rollback, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "SELECT",
        "loaded_as_persistent",
        *ADD,
        *INSERT_FLUSH,
        "flushed",
        "deleted",
        "ROLLBACK",
        "after_rollback",
        "persistent_to_transient",
        "deleted_to_persistent",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back",
        "persistent_to_detached",
    ]
    assert first(obs, "loaded_as_persistent")[2] == ("User", 1, "sandy", "persistent")
    assert first(obs, "deleted_to_persistent")[2] == ("User", 1, "sandy", "persistent")
    # Transient again, it keeps the key value the INSERT gave it.
    assert first(obs, "persistent_to_transient")[2] == ("User", 2, "patrick", "transient")
    assert first(obs, "after_soft_rollback")[2] == ("tx", 0, False, None, "AUTOBEGIN")


def modify_and_commit(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(User)
        log.note("start")
        s = api.Session(engine)
        sandy = s.get(User, 1)
        sandy.name = "sandy cheeks"
        log.note("modified")
        s.commit()
        log.note("committed")
        log.note("reloaded", sandy.name)  # a refresh is not a load: no loaded_as_persistent
        users = s.scalars(select(User).order_by(User.id)).all()
        log.note("queried", [u.name for u in users])
        s.close()


def test_modify_and_commit(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(modify_and_commit, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "SELECT",
        "loaded_as_persistent",
        "modified",
        "before_commit",
        "before_flush",
        "after_transaction_create",
        "before_update",
        "UPDATE",
        "after_update",
        "after_flush",
        "after_flush_postexec",
        "after_transaction_end",
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "committed",
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "SELECT",
        "reloaded",
        "SELECT",
        "loaded_as_persistent",  # patrick only: sandy was already in the identity map
        "queried",
        "persistent_to_detached",
        "persistent_to_detached",
        "ROLLBACK",
        "after_transaction_end",
    ]
    assert [f[2][1] for f in facts(obs, "loaded_as_persistent")] == [1, 2]
    assert [f[2][1] for f in facts(obs, "persistent_to_detached")] == [1, 2]


def delete_and_commit(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy",))
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(User)
        s = api.Session(engine)
        sandy = s.get(User, 1)
        log.note("start")
        s.delete(sandy)
        log.note("deleted", api.state(sandy))
        s.commit()
        log.note("committed", api.state(sandy))
        s.close()
        log.note("closed")


def test_delete_and_commit(engine: Engine, ref_engine: Engine) -> None:
    """delete() itself fires nothing: persistent_to_deleted comes with the flush,
    deleted_to_detached after COMMIT."""
    obs = compare(delete_and_commit, engine, ref_engine)
    assert outline(obs) == [
        "deleted",
        "before_commit",
        "before_flush",
        "after_transaction_create",
        "before_delete",
        "DELETE",
        "after_delete",
        "after_flush",
        "persistent_to_deleted",
        "after_flush_postexec",
        "after_transaction_end",
        "COMMIT",
        "after_commit",
        "deleted_to_detached",
        "after_transaction_end",
        "committed",
        "closed",
    ]
    assert first(obs, "persistent_to_deleted")[2] == ("User", 1, "sandy", "deleted")
    assert first(obs, "deleted_to_detached")[2] == ("User", 1, "sandy", "detached")


def delete_flush_rollback(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy",))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy = s.get(User, 1)
        log.note("start")
        s.delete(sandy)
        s.flush()
        log.note("flushed", api.state(sandy))
        s.rollback()
        log.note("rolled back", api.state(sandy))
        s.close()


def test_delete_flush_rollback(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(delete_flush_rollback, engine, ref_engine)
    assert outline(obs) == [
        "before_flush",
        "after_transaction_create",
        "DELETE",
        "after_flush",
        "persistent_to_deleted",
        "after_flush_postexec",
        "after_transaction_end",
        "flushed",
        "ROLLBACK",
        "after_rollback",
        "deleted_to_persistent",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back",
        "persistent_to_detached",
    ]


def failed_flush(api: Api, engine: Engine, obs: Obs) -> None:
    Item = setup_items(api, engine, (("a", "first"),))
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(Item)
        log.note("start")
        s = api.Session(engine)
        dup = Item(id="a", name="again")
        s.add(dup)
        err = obs.error("flush", s.flush)
        log.note("caught", isinstance(err, sa_exc.IntegrityError), api.state(dup))
        obs.error("flush again", s.flush)
        log.note("flushed again")
        s.rollback()
        log.note("rolled back", api.state(dup))
        s.close()


def test_failed_flush_then_rollback(engine: Engine, ref_engine: Engine) -> None:
    """A failed flush rolls the session transaction back before the error reaches the
    caller (after_rollback, the pending object back to transient, after_soft_rollback
    of the flush's own transaction); the caller's rollback() then ends the session
    transaction and fires after_soft_rollback again, not after_rollback."""
    obs = compare(failed_flush, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        *ADD,
        "before_flush",
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "before_insert",
        "INSERT",
        "ROLLBACK",
        "after_rollback",
        "pending_to_transient",
        "after_transaction_end",
        "after_soft_rollback",
        "flush",
        "caught",
        "flush again",
        "flushed again",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back",
    ]
    flush_tx, root = ("tx", 1, False, 0, "SUBTRANSACTION"), ("tx", 0, False, None, "AUTOBEGIN")
    assert [f[2] for f in facts(obs, "after_soft_rollback")] == [flush_tx, root]
    assert first(obs, "caught")[1:] == (True, "transient")
    # Nothing left to flush: no error although the transaction is inactive.
    assert first(obs, "flush again")[1:] == ("ok",)


def close_with_objects(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick", "squidward"))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy, patrick, squidward = (s.get(User, i) for i in (1, 2, 3))
        sandy.name = "changed"
        s.delete(squidward)  # marked, not flushed: still persistent
        gary = User(name="gary")
        s.add(gary)
        log.note("start", api.state(squidward))
        s.close()
        log.note("closed", [api.state(o) for o in (sandy, patrick, squidward, gary)])


def test_close(engine: Engine, ref_engine: Engine) -> None:
    """close() fires persistent_to_detached for each object of the identity map (in the
    order they came in, one marked for deletion too), pending_to_transient for each
    pending one, then sends ROLLBACK and ends the transaction: neither after_rollback nor
    after_soft_rollback."""
    obs = compare(close_with_objects, engine, ref_engine)
    assert outline(obs) == [
        *["persistent_to_detached"] * 3,
        "pending_to_transient",
        "ROLLBACK",
        "after_transaction_end",
        "closed",
    ]
    assert [f[2][1] for f in facts(obs, "persistent_to_detached")] == [1, 2, 3]
    assert first(obs, "persistent_to_detached")[2] == ("User", 1, "changed", "detached")
    assert first(obs, "closed")[1] == ["detached", "detached", "detached", "transient"]


def deleted_objects_leaving(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        log.listen(api.Session, "deleted_to_detached", "persistent_to_detached")
        s = api.Session(engine)
        sandy = s.get(User, 1)  # held: events name objects that are still alive
        s.delete(sandy)
        s.flush()
        log.note("start")
        s.close()
        log.note("closed")
        s2 = api.Session(engine, expire_on_commit=False)
        patrick = s2.get(User, 2)
        s2.delete(patrick)
        s2.commit()
        log.note("committed")
        s2.close()


def test_deleted_objects_leaving_the_session(engine: Engine) -> None:
    """sessionkit only (docs/behaviour.md#states-8): a flushed-deleted object that close(),
    or commit() with expire_on_commit=False, makes detached fires deleted_to_detached, as
    every change of state fires its event. (The ORM leaves such an object deleted, so it
    fires nothing.)"""
    obs = run(SK, engine, deleted_objects_leaving)
    assert outline(obs) == [
        "deleted_to_detached",
        "ROLLBACK",
        "closed",
        "BEGIN",
        "SELECT",
        "DELETE",
        "COMMIT",
        "deleted_to_detached",
        "committed",
    ]
    assert [f[2] for f in facts(obs, "deleted_to_detached")] == [
        ("User", 1, "sandy", "detached"),
        ("User", 2, "patrick", "detached"),
    ]


def expunge(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy, patrick = s.get(User, 1), s.get(User, 2)
        gary = User(name="gary")
        s.add(gary)
        log.note("start")
        s.expunge(sandy)
        log.note("expunged persistent")
        s.expunge(gary)
        log.note("expunged pending")
        s.add(sandy)
        log.note("re-added", api.state(sandy))
        s.expunge_all()
        log.note("expunged all")
        s.add(patrick)
        log.note("patrick re-added")
        s.close()


def test_expunge(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(expunge, engine, ref_engine)
    assert outline(obs) == [
        "persistent_to_detached",
        "expunged persistent",
        "pending_to_transient",
        "expunged pending",
        "before_attach",
        "after_attach",
        "detached_to_persistent",
        "re-added",
        "persistent_to_detached",
        "persistent_to_detached",
        "expunged all",
        "before_attach",
        "after_attach",
        "detached_to_persistent",
        "patrick re-added",
        "persistent_to_detached",
        "ROLLBACK",
        "after_transaction_end",
    ]


def deleted_expunged(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy, patrick = s.get(User, 1), s.get(User, 2)
        s.delete(sandy)
        s.flush()
        log.note("start", api.state(sandy))
        s.expunge(sandy)
        log.note("expunged", api.state(sandy))
        s.delete(patrick)
        s.expunge(patrick)  # marked for deletion, not flushed: still persistent
        log.note("expunged marked", api.state(patrick))
        s.rollback()
        log.note("rolled back", api.state(sandy), api.state(patrick))
        s.close()


def test_expunge_deleted(engine: Engine, ref_engine: Engine) -> None:
    """expunge() of a flushed-deleted object fires deleted_to_detached; of one only marked
    for deletion, persistent_to_detached; the rollback then moves neither back."""
    obs = compare(deleted_expunged, engine, ref_engine)
    assert outline(obs) == [
        "deleted_to_detached",
        "expunged",
        "persistent_to_detached",
        "expunged marked",
        "ROLLBACK",
        "after_rollback",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back",
    ]
    assert first(obs, "rolled back")[1:] == ("detached", "detached")


def rollback_without_connection(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy",))
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.note("start")
        s = api.Session(engine)
        gary = User(name="gary")
        s.add(gary)
        s.rollback()
        log.note("rolled back", api.state(gary))
        s.close()


def test_rollback_without_connection(engine: Engine, ref_engine: Engine) -> None:
    """A transaction that never used a connection: after_rollback still fires (no
    ROLLBACK is sent), the pending object goes back to transient."""
    obs = compare(rollback_without_connection, engine, ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        *ADD,
        "after_rollback",
        "pending_to_transient",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back",
    ]


def make_transient_and_merge(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy, patrick = s.get(User, 1), s.get(User, 2)
        log.note("start")
        api.make_transient(sandy)
        log.note("made transient", api.state(sandy))
        s.close()
        s2 = api.Session(engine)
        merged = s2.merge(patrick)
        log.note("merged", merged is patrick, api.state(merged), api.state(patrick))
        s2.close()


def test_make_transient_and_merge(engine: Engine, ref_engine: Engine) -> None:
    """make_transient() of a persistent object fires persistent_to_detached (the object
    is detached when the listener runs, transient after); merge() loads its copy
    (loaded_as_persistent) and fires no attach event."""
    obs = compare(make_transient_and_merge, engine, ref_engine)
    assert outline(obs) == [
        "persistent_to_detached",
        "made transient",
        "persistent_to_detached",
        "ROLLBACK",
        "after_transaction_end",
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "SELECT",
        "loaded_as_persistent",
        "merged",
        "persistent_to_detached",
        "ROLLBACK",
        "after_transaction_end",
    ]
    assert first(obs, "persistent_to_detached")[2] == ("User", 1, "sandy", "detached")
    assert first(obs, "merged")[1:] == (False, "persistent", "detached")


# -- savepoints and begin() blocks ------------------------------------------------------------


def savepoints(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy",))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        sandy = s.get(User, 1)
        log.note("start")
        sp = s.begin_nested()
        patrick = User(name="patrick")
        s.add(patrick)
        sp.commit()
        log.note("released", api.state(patrick))
        sp2 = s.begin_nested()
        gary = User(name="gary")
        s.add(gary)
        s.flush()
        sandy.name = "changed"
        s.delete(patrick)
        s.flush()
        log.note("flushed in savepoint")
        sp2.rollback()
        log.note("rolled back to savepoint", *(api.state(o) for o in (sandy, patrick, gary)))
        with s.begin_nested():
            larry = User(name="larry")
            s.add(larry)
        log.note("block released", api.state(larry))
        s.commit()
        log.note("committed")
        s.close()


def test_begin_nested_commit_and_rollback(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    """begin_nested() announces a nested transaction at once but sends SAVEPOINT (then
    after_begin, for the nested transaction) only when a flush needs the connection;
    its commit releases (after_commit), its rollback fires after_rollback and puts back
    what its flushes did, before ending it."""
    obs = compare(savepoints, sp_engine, sp_ref_engine)
    flush = [
        "before_flush",
        "after_transaction_create",
        "SAVEPOINT",
        "after_begin",
        "INSERT",
        "after_flush",
        "pending_to_persistent",
        "after_flush_postexec",
        "after_transaction_end",
    ]
    assert outline(obs) == [
        "after_transaction_create",
        *ADD,
        "before_commit",
        *flush,
        "RELEASE SAVEPOINT",
        "RELEASE",
        "after_commit",
        "after_transaction_end",
        "released",
        "after_transaction_create",
        *ADD,
        *flush,
        "before_flush",
        "after_transaction_create",
        "UPDATE",
        "DELETE",
        "after_flush",
        "persistent_to_deleted",
        "after_flush_postexec",
        "after_transaction_end",
        "flushed in savepoint",
        "ROLLBACK TO SAVEPOINT",
        "ROLLBACK",
        "after_rollback",
        "persistent_to_transient",
        "deleted_to_persistent",
        "after_transaction_end",
        "after_soft_rollback",
        "rolled back to savepoint",
        "after_transaction_create",
        *ADD,
        "before_commit",
        *flush,
        "RELEASE SAVEPOINT",
        "RELEASE",
        "after_commit",
        "after_transaction_end",
        "block released",
        "before_commit",
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "committed",
        "persistent_to_detached",
        "persistent_to_detached",
        "persistent_to_detached",
    ]
    creates = [f[2] for f in facts(obs, "after_transaction_create")]
    assert creates[1:3] == [
        ("tx", 1, True, 0, "BEGIN_NESTED"),
        ("tx", 2, False, 1, "SUBTRANSACTION"),
    ]
    # after_begin: the root transaction (when the first get() began it), then each
    # savepoint when its SAVEPOINT was sent, all on the one connection.
    assert [f[2:] for f in facts(obs, "after_begin")] == [
        (("tx", 0, False, None, "AUTOBEGIN"), ("connection", 0)),
        (("tx", 1, True, 0, "BEGIN_NESTED"), ("connection", 0)),
        (("tx", 3, True, 0, "BEGIN_NESTED"), ("connection", 0)),
        (("tx", 6, True, 0, "BEGIN_NESTED"), ("connection", 0)),
    ]
    assert first(obs, "rolled back to savepoint")[1:] == ("persistent", "persistent", "transient")


def failed_flush_in_savepoint(api: Api, engine: Engine, obs: Obs) -> None:
    Item = setup_items(api, engine, (("a", "first"),))
    with EventLog(obs) as log:
        log.listen(api.Session)
        s = api.Session(engine)
        b = Item(id="b", name="bee")
        s.add(b)
        s.flush()
        log.note("start")
        sp = s.begin_nested()
        dup = Item(id="a", name="again")
        s.add(dup)
        obs.error("flush", s.flush)
        log.note("caught", api.state(dup), sp.is_active)
        sp.rollback()
        log.note("savepoint rolled back", s.in_nested_transaction())
        s.commit()
        log.note("committed", api.state(b))
        s.close()


def test_failed_flush_in_savepoint(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    """A failed flush inside a savepoint rolls back to the savepoint itself (after_rollback,
    the new object back to transient); the caller's rollback() of the savepoint then only
    ends it (after_soft_rollback); the outer transaction commits."""
    obs = compare(failed_flush_in_savepoint, sp_engine, sp_ref_engine)
    assert outline(obs) == [
        "after_transaction_create",
        *ADD,
        "before_flush",
        "after_transaction_create",
        "SAVEPOINT",
        "after_begin",
        "INSERT",
        "ROLLBACK TO SAVEPOINT",
        "ROLLBACK",
        "after_rollback",
        "pending_to_transient",
        "after_transaction_end",
        "after_soft_rollback",
        "flush",
        "caught",
        "after_transaction_end",
        "after_soft_rollback",
        "savepoint rolled back",
        "before_commit",
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "committed",
        "persistent_to_detached",
    ]
    nested, flush_tx = ("tx", 2, True, 0, "BEGIN_NESTED"), ("tx", 3, False, 2, "SUBTRANSACTION")
    assert [f[2] for f in facts(obs, "after_soft_rollback")] == [flush_tx, nested]
    assert first(obs, "caught")[1:] == ("transient", False)


def begin_blocks(api: Api, engine: Engine, obs: Obs) -> None:
    User = empty_users(api, engine)
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.note("start")
        s = api.Session(engine)
        with s.begin():
            sandy = User(name="sandy")
            s.add(sandy)
        log.note("block committed", api.state(sandy))

        def failing() -> None:
            with s.begin():
                s.add(User(name="patrick"))
                s.flush()
                raise ValueError("inside the block")

        obs.error("failing block", failing)
        log.note("block rolled back", s.in_transaction())
        s.close()


def test_session_begin_block(engine: Engine, ref_engine: Engine) -> None:
    """``with session.begin():`` announces a transaction of origin BEGIN, commits it at
    the end of the block, rolls it back (after_rollback, after_soft_rollback) when the
    block raises."""
    obs = compare(begin_blocks, engine, ref_engine)
    flush = [
        "before_flush",
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "INSERT",
        "after_flush",
        "pending_to_persistent",
        "after_flush_postexec",
        "after_transaction_end",
    ]
    assert outline(obs) == [
        "after_transaction_create",
        *ADD,
        "before_commit",
        *flush,
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "block committed",
        "after_transaction_create",
        *ADD,
        *flush,
        "ROLLBACK",
        "after_rollback",
        "after_transaction_end",
        "after_soft_rollback",
        "failing block",
        "block rolled back",
        "persistent_to_detached",
    ]
    assert first(obs, "after_transaction_create")[2] == ("tx", 0, False, None, "BEGIN")
    assert first(obs, "failing block")[1:] == ("raises", "ValueError")


# -- listeners that act ------------------------------------------------------------------------


def before_flush_adds_and_modifies(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    audit: list[Any] = []
    with EventLog(obs) as log:
        log.listen(api.Session)
        log.listen_mapper(User)

        def add_audit(session: Any, flush_context: Any, instances: Any) -> None:
            for obj in list(session.new):
                if not obj.name.startswith("audit"):
                    audit.append(User(name=f"audit {obj.name}"))
                    session.add(audit[-1])
            for obj in list(session.dirty):
                obj.fullname = obj.name.upper()
            patrick = session.get(User, 2)  # in the identity map: no SQL
            if patrick.fullname == "Patrick":
                patrick.fullname = "touched by before_flush"
            flush_context.attributes["seen"] = len(session.new)

        def after_flush(session: Any, flush_context: Any) -> None:
            log.note(
                "after_flush sees",
                flush_context.attributes.get("seen"),
                flush_context.session is session,
                sorted(repr(log.instance(o)) for o in session.new),
                sorted(repr(log.instance(o)) for o in session.dirty),
            )

        def postexec(session: Any, flush_context: Any) -> None:
            log.note("postexec sees", len(session.new), len(session.dirty))

        log.add(api.Session, "before_flush", add_audit)
        log.add(api.Session, "after_flush", after_flush)
        log.add(api.Session, "after_flush_postexec", postexec)
        s = api.Session(engine)
        sandy, patrick = s.get(User, 1), s.get(User, 2)
        gary = User(name="gary")
        s.add(gary)
        sandy.name = "sandy cheeks"
        log.note("start")
        s.commit()
        log.note("committed", api.state(patrick))
        log.note(
            "rows",
            [tuple(r) for r in s.execute(select(User.name, User.fullname).order_by(User.id))],
        )
        s.close()


def test_before_flush_adds_and_modifies(engine: Engine, ref_engine: Engine) -> None:
    """Objects added in before_flush are inserted by the same flush, changes made there are
    in the same UPDATEs; after_flush still sees the pre-flush new/dirty collections,
    after_flush_postexec the post-flush ones; flush_context.attributes is shared."""
    obs = compare(before_flush_adds_and_modifies, engine, ref_engine)
    assert outline(obs) == [
        "before_commit",
        "before_flush",
        *ADD,  # the audit object, added by the listener
        "after_transaction_create",
        "before_insert",
        "before_insert",
        "before_update",
        "before_update",
        "UPDATE",
        "INSERT",
        "after_insert",
        "after_insert",
        "after_update",
        "after_update",
        "after_flush",
        "after_flush sees",
        "pending_to_persistent",  # two: in any order for the ORM, recorded sorted
        "pending_to_persistent",
        "after_flush_postexec",
        "postexec sees",
        "after_transaction_end",
        "COMMIT",
        "after_commit",
        "after_transaction_end",
        "committed",
        "after_transaction_create",
        "BEGIN",
        "after_begin",
        "SELECT",
        "rows",
        *["persistent_to_detached"] * 4,
        "ROLLBACK",
        "after_transaction_end",
    ]
    assert first(obs, "after_flush sees")[1:] == (
        2,
        True,
        ["('User', 3, 'gary', 'pending')", "('User', 4, 'audit gary', 'pending')"],
        ["('User', 1, 'sandy cheeks', 'persistent')", "('User', 2, 'patrick', 'persistent')"],
    )
    assert first(obs, "postexec sees")[1:] == (0, 0)
    assert first(obs, "rows")[1] == [
        ("sandy cheeks", "SANDY CHEEKS"),
        ("patrick", "touched by before_flush"),
        ("gary", None),
        ("audit gary", None),
    ]


def cache_invalidation(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    cache: dict[int, str] = {}
    changed: set[int] = set()
    with EventLog(obs) as log:

        def remember_load(session: Any, obj: Any) -> None:
            cache[obj.id] = obj.name

        def remember_changes(session: Any, flush_context: Any) -> None:
            changed.update(o.id for o in session.dirty)
            changed.update(o.id for o in session.deleted)

        def invalidate(session: Any) -> None:
            for key in changed:
                cache.pop(key, None)
            changed.clear()
            log.note("after_commit: cache", sorted(cache.items()), session.in_transaction())

        def forget(session: Any, previous: Any) -> None:
            changed.clear()

        maker = api.sessionmaker(engine)
        log.add(maker, "loaded_as_persistent", remember_load)
        log.add(maker, "after_flush", remember_changes)
        log.add(maker, "after_commit", invalidate)
        log.add(maker, "after_soft_rollback", forget)
        s = maker()
        users = s.scalars(select(User).order_by(User.id)).all()
        log.note("loaded", sorted(cache.items()))
        users[0].name = "sandy cheeks"
        s.flush()
        s.rollback()
        log.note("rolled back", sorted(cache.items()), sorted(changed))
        users[1].name = "patrick star"
        s.commit()
        log.note("committed", sorted(cache.items()))
        s.close()


def test_after_commit_cache_invalidation(engine: Engine, ref_engine: Engine) -> None:
    """A cache filled by loaded_as_persistent, its changed keys collected in after_flush
    (which still sees the pre-flush dirty objects), forgotten on after_soft_rollback and
    evicted on after_commit. The session is still in its (committed) transaction while
    after_commit runs."""
    obs = compare(cache_invalidation, engine, ref_engine)
    assert outline(obs) == [
        "BEGIN",
        "SELECT",
        "loaded",
        "UPDATE",
        "ROLLBACK",
        "rolled back",
        "BEGIN",
        "SELECT",
        "UPDATE",
        "COMMIT",
        "after_commit: cache",
        "committed",
    ]
    assert first(obs, "loaded")[1] == [(1, "sandy"), (2, "patrick")]
    assert first(obs, "rolled back")[1:] == ([(1, "sandy"), (2, "patrick")], [])
    assert first(obs, "after_commit: cache")[1:] == ([(1, "sandy")], True)


# -- where a listener listens -------------------------------------------------------------------


def listener_targets(api: Api, engine: Engine, obs: Obs) -> None:
    empty_users(api, engine)
    maker_a, maker_b = api.sessionmaker(engine), api.sessionmaker(engine)
    early_a = maker_a()
    plain, from_a, from_b, other = api.Session(engine), maker_a(), maker_b(), api.Session(engine)
    sessions = {"plain": plain, "maker a": from_a, "early maker a": early_a, "maker b": from_b}
    with EventLog(obs) as log:

        def heard(where: str) -> Any:
            return lambda session: log.note(where, [k for k, v in sessions.items() if v is session])

        log.add(maker_a, "before_commit", heard("on maker a"))
        log.add(plain, "before_commit", heard("on one session"))
        log.note("start")
        for name, session in sessions.items():
            log.note("commit", name)
            session.commit()
        other.commit()
        log.note("other session committed")
        log.add(api.Session, "before_commit", heard("on the class"))
        for name, session in sessions.items():
            log.note("commit", name)
            session.commit()
    log.note("class listener removed")
    for session in (*sessions.values(), other):
        session.commit()
        session.close()
    log.note("end")


def test_listener_targets(engine: Engine, ref_engine: Engine) -> None:
    """A listener on a sessionmaker hears only that maker's sessions (those made before
    it was added too); one on a session only that session; one on the class every
    session, until removed."""
    obs = compare(listener_targets, engine, ref_engine)
    heard = [(o[0], o[1]) for o in obs if o[0].startswith("on ")]
    # Listeners on a class (Session, a sessionmaker's) run before those on the instance.
    assert heard == [
        ("on one session", ["plain"]),
        ("on maker a", ["maker a"]),
        ("on maker a", ["early maker a"]),
        ("on the class", ["plain"]),
        ("on one session", ["plain"]),
        ("on maker a", ["maker a"]),
        ("on the class", ["maker a"]),
        ("on maker a", ["early maker a"]),
        ("on the class", ["early maker a"]),
        ("on the class", ["maker b"]),
    ]
    assert outline(obs)[-2:] == ["class listener removed", "end"]


def listener_api(api: Api, engine: Engine, obs: Obs) -> None:
    User = empty_users(api, engine)
    s = api.Session(engine)
    heard: list[Any] = []
    with EventLog(obs) as log:

        def once(session: Any) -> None:
            heard.append("once")

        def returns_false(session: Any, flush_context: Any, instances: Any) -> bool:
            heard.append("before_flush returned False")
            return False  # no retval=True: the return value means nothing

        def commit_returns_false(session: Any) -> bool:
            heard.append("before_commit returned False")
            return False

        log.add(s, "after_commit", once, once=True)
        log.add(s, "before_flush", returns_false)
        log.add(s, "before_commit", commit_returns_false)

        @event.listens_for(s, "after_begin")
        def decorated(session: Any, transaction: Any, connection: Any) -> None:
            heard.append("listens_for")

        obs.append(("contains", event.contains(s, "after_begin", decorated)))
        s.add(User(name="sandy"))
        s.commit()
        obs.append(("first commit", list(heard)))
        heard.clear()
        event.remove(s, "after_begin", decorated)
        obs.append(("removed", event.contains(s, "after_begin", decorated)))
        s.add(User(name="patrick"))
        s.commit()
        obs.append(("second commit", list(heard)))
        obs.append(("rows", [tuple(r) for r in s.execute(select(User.id, User.name))]))
        obs.error("remove again", lambda: event.remove(s, "after_begin", decorated))
    s.close()


def test_listener_api(engine: Engine, ref_engine: Engine) -> None:
    """``once=True``, ``@event.listens_for``, ``event.contains`` and ``event.remove``
    work as for any Core event; a listener's return value is ignored (no ``retval``)."""
    obs = compare(listener_api, engine, ref_engine)
    facts_ = {o[0]: o[1:] for o in obs}
    assert facts_["first commit"] == (
        ["before_commit returned False", "before_flush returned False", "listens_for", "once"],
    )
    assert facts_["second commit"] == (
        ["before_commit returned False", "before_flush returned False"],
    )
    assert facts_["rows"] == ([(1, "sandy"), (2, "patrick")],)
    assert facts_["remove again"] == ("raises", "InvalidRequestError")


def unknown_names(api: Api, engine: Engine, obs: Obs) -> None:
    User = empty_users(api, engine)
    s = api.Session(engine)

    def fn(*args: Any) -> None:
        pass

    cases = [
        ("typo on the class", api.Session, "before_flsh"),
        ("typo on a session", s, "after_comit"),
        ("mapper event on a session", api.Session, "before_insert"),
        ("session event on a mapped class", User, "before_flush"),
        ("typo on a mapped class", User, "before_insrt"),
    ]
    for label, target, name in cases:
        err = obs.error(label, lambda t=target, n=name: event.listen(t, n, fn))  # type: ignore[misc]
        message = "" if err is None else str(err).replace(repr(target), "<target>")
        obs.append((f"{label}: message", message))
        listening = err is None and event.contains(target, name, fn)
        obs.append((f"{label}: listening", listening))
        if listening:
            event.remove(target, name, fn)
    s.close()


def test_unknown_event_names(engine: Engine, ref_engine: Engine) -> None:
    """An event name the target does not have is refused by ``event.listen`` with
    InvalidRequestError naming the event and the target."""
    obs = compare(unknown_names, engine, ref_engine)
    facts_ = {o[0]: o[1:] for o in obs}
    assert facts_["typo on the class"] == ("raises", "InvalidRequestError")
    assert facts_["typo on the class: message"] == (
        "No such event 'before_flsh' for target '<target>'",
    )
    assert facts_["session event on a mapped class"] == ("raises", "InvalidRequestError")
    # The ORM's mapper events accept any class that is not (yet) mapped and hold the
    # listener for the day it is: a Session class included, silently.
    assert facts_["mapper event on a session"] == ("ok",)


def states_during_flush(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick"))
    with EventLog(obs) as log:
        s = api.Session(engine)
        sandy, patrick = s.get(User, 1), s.get(User, 2)
        gary = User(name="gary")
        s.add(gary)
        sandy.name = "sandy cheeks"
        s.delete(patrick)

        def states(label: str) -> Any:
            def listener(session: Any, *args: Any) -> None:
                log.note(label, *(api.state(o) for o in (gary, sandy, patrick)))
                log.note(f"{label}: collections", len(s.new), len(s.dirty), len(s.deleted))

            return listener

        for name in ("before_flush", "after_flush", "after_flush_postexec"):
            log.add(s, name, states(name))
        log.listen_mapper(User, "after_insert", "after_delete")
        log.note("start")
        s.flush()
        log.note("flushed", *(api.state(o) for o in (gary, sandy, patrick)))
        s.rollback()
        s.close()


def test_states_during_flush(engine: Engine, ref_engine: Engine) -> None:
    """In after_flush the session is still in its pre-flush state: a new object is still
    pending (its key value already set), a deleted one still persistent, and new, dirty
    and deleted still hold them; only then do they move (pending_to_persistent,
    persistent_to_deleted) and after_flush_postexec sees the result."""
    obs = compare(states_during_flush, engine, ref_engine)
    facts_ = {o[0]: o[1:] for o in obs}
    assert facts_["before_flush"] == ("pending", "persistent", "persistent")
    assert facts_["after_flush"] == ("pending", "persistent", "persistent")
    assert facts_["after_flush: collections"] == (1, 1, 1)
    assert facts_["after_flush_postexec"] == ("persistent", "persistent", "deleted")
    assert facts_["after_flush_postexec: collections"] == (0, 0, 0)
    assert first(obs, "after_insert")[3] == ("User", 3, "gary", "pending")
    assert first(obs, "after_delete")[3] == ("User", 2, "patrick", "persistent")


def test_events_sessionkit_does_not_have() -> None:
    """sessionkit only (docs/behaviour.md events-1): events the ORM has and sessionkit
    does not, ``raw=True``, and a persistence event on an unmapped base without
    ``propagate=True`` are refused with InvalidRequestError naming the event and the
    target, never accepted and left silent."""
    Base = sessionkit.declarative_base()

    class Note(Base):  # type: ignore[misc, valid-type]
        __tablename__ = "notes"
        id = Column(Integer, primary_key=True)

    def fn(*args: Any) -> None:
        pass

    cases = [
        (sessionkit.Session, "do_orm_execute", {}, "Session"),
        (sessionkit.Session, "after_bulk_update", {}, "Session"),
        (sessionkit.Session, "before_commit", {"raw": True}, "before_commit"),
        (Note, "load", {}, "Note"),
        (Note, "before_insert", {"raw": True}, "before_insert"),
        (Base, "before_insert", {}, "Base"),
    ]
    for target, name, kw, word in cases:
        try:
            event.listen(target, name, fn, **kw)
        except sa_exc.InvalidRequestError as err:
            assert name in str(err) and word in str(err), str(err)
        else:
            event.remove(target, name, fn)
            raise AssertionError(f"event.listen({target!r}, {name!r}, **{kw}) was accepted")
