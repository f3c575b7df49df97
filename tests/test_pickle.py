"""Mapped objects travel: pickle, ``copy.deepcopy`` and ``copy.copy``.

Pickling and ``deepcopy`` run on sessionkit and on the SQLAlchemy ORM through
``compare()``: the copy is detached (a pending or transient object comes back transient),
keeps its identity key, its loaded values, its unflushed changes and its expired keys,
and goes into another Session with ``add()`` (no SQL; the flush sends the changes) or
beside its original with ``merge()``. ``add()`` beside the original fails at ``add()``.

``copy.copy`` is where sessionkit differs on purpose: the ORM's copy shares the original's
state (a change made to the copy alone is silently lost), sessionkit's copy is what
pickling gives. Those tests run on sessionkit only and need ``map_imperatively`` to call
``portable.class_mapped``.

The models are module-level classes, so that pickle can find them by name; their
namespaces keep the class name ``User`` that messages show.
"""

from __future__ import annotations

import copy
import io
import pickle
from typing import Any

import pytest
import sqlalchemy.orm as orm
from reference import SK, Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select
from sqlalchemy import inspect as sa_inspect

import sessionkit
from sessionkit.exc import InvalidRequestError, UnmappedClassError
from sessionkit.state import STATE_KEY
from support import (
    by_label,
    event_kinds,
    hexid,
    message_starts,
    named_key,
    record_message,
    sql_statements,
)


class SkModels:
    Base = sessionkit.declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column(String(60))


class OrmModels:
    Base = orm.declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column(String(60))


class Plain:
    """Never mapped: what an unpickled object's class is when its mapping was not run."""


class OwnCopy:
    """Mapped imperatively; its own ``__copy__`` is kept."""

    def __copy__(self) -> str:
        return "own copy"


sessionkit.map_imperatively(
    OwnCopy, Table("own_copy", MetaData(), Column("id", Integer, primary_key=True))
)


def setup(api: Api, engine: Engine) -> Any:
    """The ``user_account`` table with sandy, patrick, squidward (ids 1..3)."""
    models = SkModels if api.name == "sessionkit" else OrmModels
    models.Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([models.User(name=n, fullname=n.title()) for n in ("sandy", "patrick", "sq")])
        s.commit()
    return models.User


def travel(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj))


def facts(api: Api, obj: Any) -> tuple[Any, ...]:
    """State, loaded values, identity key, modified flag and expired keys of ``obj``."""
    insp = api.inspect(obj)
    return (
        api.state(obj),
        api.visible(obj),
        named_key(api, obj),
        insp.modified,
        sorted(insp.expired_attributes),
    )


def name_history(api: Api, obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    history = api.inspect(obj).attrs.name.history
    return tuple(history.added), tuple(history.deleted)


def rows(api: Api, engine: Engine, User: Any) -> list[tuple[Any, ...]]:
    with api.Session(engine) as s:
        return [tuple(r) for r in s.execute(select(User.id, User.name).order_by(User.id))]


# -- pickle ---------------------------------------------------------------------------------


def test_pickled_loaded_object_comes_back_detached(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        copied = travel(sandy)
        obs.sql("pickle: no SQL")
        obs.append(("copy", *facts(api, copied)))
        obs.append(("copy in session", copied in session, copied is sandy))
        obs.append(("original", *facts(api, sandy)))
        obs.append(("read copy", copied.name, copied.fullname))
        obs.sql("read: no SQL")
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts_ = by_label(obs)
    values = {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts_["copy"][1:] == ("detached", values, ("User", (1,), None), False, [])
    assert facts_["original"][1:] == ("persistent", values, ("User", (1,), None), False, [])
    assert facts_["copy in session"][1:] == (False, False)
    assert facts_["pickle: no SQL"][1] == facts_["read: no SQL"][1] == []


def test_pickled_changes_and_expired_keys_travel(engine: Engine, ref_engine: Engine) -> None:
    """Unflushed changes go with the copy; its expired keys stay expired, and reading one
    while detached raises DetachedInstanceError. In another Session the copy is
    persistent without SQL, and the flush sends its change."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        first = api.Session(engine)
        sandy = first.get(User, 1)
        sandy.name = "changed"
        first.expire(sandy, ["fullname"])
        obs.rec.clear()
        copied = travel(sandy)
        obs.append(("copy", *facts(api, copied)))
        obs.append(("copy history", name_history(api, copied)))
        obs.error("read expired while detached", lambda: copied.fullname)
        obs.sql("pickle and failed read: no SQL")
        first.rollback()
        first.close()
        obs.rec.clear()
        other = api.Session(engine)
        other.add(copied)
        obs.sql("add: no SQL")
        obs.append(("added", api.state(copied), copied in other.dirty, other.is_modified(copied)))
        other.flush()
        obs.sql("flush: UPDATE of the change")
        obs.append(("expired now loads", copied.fullname))
        obs.sql("expired read: SELECT")
        other.commit()
        other.close()
        obs.append(("rows", rows(api, engine, User)))

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    assert f["copy"][1:] == (
        "detached",
        {"id": 1, "name": "changed"},
        ("User", (1,), None),
        True,
        ["fullname"],
    )
    assert f["copy history"][1] == (("changed",), ("sandy",))
    assert f["read expired while detached"][1:] == ("raises", "DetachedInstanceError")
    assert f["pickle and failed read: no SQL"][1] == f["add: no SQL"][1] == []
    assert f["added"][1:] == ("persistent", True, True)
    flush = f["flush: UPDATE of the change"][1]
    assert event_kinds(flush) == ["BEGIN", "UPDATE"]
    assert sql_statements(flush, "UPDATE")[0][1] == ("changed", 1)
    assert event_kinds(f["expired read: SELECT"][1]) == ["SELECT"]
    assert f["expired now loads"][1] == "Sandy"
    assert f["rows"][1] == [(1, "changed"), (2, "patrick"), (3, "sq")]


def test_pickled_copy_beside_its_original(engine: Engine, ref_engine: Engine) -> None:
    """add() of the copy into its original's Session fails at add(), with no SQL;
    merge() copies its values onto the original."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        copied = travel(sandy)
        copied.name = "from the copy"
        obs.rec.clear()
        err = obs.error("add beside original", lambda: session.add(copied))
        key = (User, (1,), None)
        expected = (
            f"Can't attach instance <User at {hexid(copied)}>; another instance with key "
            f"{key!r} is already present in this session."
        )
        obs.append(("add message", message_starts(err, expected)))
        obs.append(("after add", api.state(copied), copied in session, api.state(sandy)))
        obs.sql("add: no SQL")
        merged = session.merge(copied)
        obs.sql("merge: no SQL")
        obs.append(("merged", merged is sandy, sandy.name, sandy in session.dirty))
        obs.append(("copy after merge", api.state(copied), copied in session))
        session.commit()
        obs.sql("commit: UPDATE")
        session.close()
        obs.append(("rows", rows(api, engine, User)))

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    assert f["add beside original"][1:] == ("raises", "InvalidRequestError")
    assert f["add message"][1] is True
    assert f["after add"][1:] == ("detached", False, "persistent")
    assert f["add: no SQL"][1] == f["merge: no SQL"][1] == []
    assert f["merged"][1:] == (True, "from the copy", True)
    assert f["copy after merge"][1:] == ("detached", False)
    assert sql_statements(f["commit: UPDATE"][1], "UPDATE")[0][1] == ("from the copy", 1)
    assert f["rows"][1][0] == (1, "from the copy")


def test_pickled_expired_object_loads_once_attached(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        session.commit()
        obs.rec.clear()
        copied = travel(sandy)
        obs.append(("copy", *facts(api, copied)))
        err = obs.error("read while detached", lambda: copied.name)
        record_message(
            obs,
            "message",
            err,
            f"Instance <User at {hexid(copied)}> is not bound to a Session; attribute refresh "
            "operation cannot proceed",
        )
        session.close()
        other = api.Session(engine)
        obs.sql("no SQL yet")
        other.add(copied)
        obs.append(("attached", api.state(copied), copied.name))
        obs.sql("read: BEGIN + SELECT")
        other.close()

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    assert f["copy"][1:] == (
        "detached",
        {},
        ("User", (1,), None),
        False,
        ["fullname", "id", "name"],
    )
    assert f["read while detached"][1:] == ("raises", "DetachedInstanceError")
    assert f["message"][1] is True
    assert f["no SQL yet"][1] == []
    assert f["attached"][1:] == ("persistent", "sandy")
    assert event_kinds(f["read: BEGIN + SELECT"][1]) == ["BEGIN", "SELECT"]


def test_pickled_pending_and_transient_objects_come_back_transient(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        pending = User(name="pending")
        session.add(pending)
        seen = User(name="seen")
        api.inspect(seen)  # gives it state, as any Session operation would
        unseen = User(name="unseen")
        obs.rec.clear()
        copies = [travel(o) for o in (pending, seen, unseen)]
        for label, o in zip(("pending", "seen", "unseen"), copies, strict=True):
            obs.append((label, *facts(api, o), o in session))
        obs.append(("original", api.state(pending), len(session.new)))
        obs.sql("no SQL")
        session.rollback()
        other = api.Session(engine)
        other.add_all(copies)
        obs.append(("added", [api.state(o) for o in copies]))
        other.commit()
        other.close()
        obs.append(("rows", rows(api, engine, User)))

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    for label in ("pending", "seen", "unseen"):
        assert f[label][1:] == ("transient", {"name": label}, None, True, [], False)
    assert f["original"][1:] == ("pending", 1)
    assert f["no SQL"][1] == []
    assert f["added"][1] == ["pending"] * 3
    assert [name for _, name in f["rows"][1][3:]] == ["pending", "seen", "unseen"]


def test_pickled_deleted_objects_lose_the_delete(engine: Engine, ref_engine: Engine) -> None:
    """A delete mark or a flushed DELETE does not travel (the ORM drops both): the copy is
    detached and can be added to another Session."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        marked = session.get(User, 2)
        session.delete(marked)
        marked_copy = travel(marked)
        gone = session.get(User, 3)
        session.delete(gone)
        session.flush()
        obs.append(("originals", api.state(marked), api.state(gone)))
        obs.rec.clear()
        gone_copy = travel(gone)
        for label, o in [("marked copy", marked_copy), ("deleted copy", gone_copy)]:
            obs.append((label, *facts(api, o), api.inspect(o).was_deleted))
        session.rollback()
        session.close()
        obs.rec.clear()
        other = api.Session(engine)
        obs.error("add deleted copy", lambda: other.add(gone_copy))
        obs.append(("added", api.state(gone_copy)))
        obs.sql("no SQL")
        other.close()

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    assert f["originals"][1:] == ("deleted", "deleted")
    values = {"id": 3, "name": "sq", "fullname": "Sq"}
    assert f["deleted copy"][1:] == ("detached", values, ("User", (3,), None), False, [], False)
    assert f["marked copy"][1] == "detached"
    assert f["add deleted copy"][1:] == ("ok",)
    assert f["added"][1] == "persistent"
    assert f["no SQL"][1] == []


def test_pickle_names_the_class_never_the_mapper_or_session(engine: Engine) -> None:
    """What a pickle asks to import when loaded: the class and the restoring functions."""
    User = setup(SK, engine)
    with sessionkit.Session(engine) as session:
        loaded = session.get(User, 1)
        changed = session.get(User, 2)
        changed.name = "x"
        data = pickle.dumps([loaded, changed])
    found: list[tuple[str, str]] = []

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found.append((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    assert set(found) == {
        ("sessionkit.state", "restore_marker"),
        ("sessionkit.state", "restore_state"),
        (__name__, "SkModels.User"),
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol(engine: Engine, protocol: int) -> None:
    User = setup(SK, engine)
    with sessionkit.Session(engine) as session:
        sandy = session.get(User, 1)
        sandy.name = "changed"
        copied = pickle.loads(pickle.dumps(sandy, protocol))
        session.rollback()
    insp = sessionkit.inspect(copied)
    assert (insp.detached, insp.identity, insp.modified) == (True, (1,), True)
    assert insp.attrs.name.history == (("changed",), (), ("sandy",))


def test_untouched_loaded_objects_share_the_detached_marker(engine: Engine) -> None:
    """Loaded objects nobody touched carry no state of their own, after travel too."""
    User = setup(SK, engine)
    with sessionkit.Session(engine) as session:
        copies = travel(session.scalars(select(User).order_by(User.id)).all())
    markers = {id(o.__dict__[STATE_KEY]) for o in copies}
    assert markers == {id(User.__sk_mapper__.detached_marker)}
    assert [sessionkit.inspect(o).detached for o in copies] == [True] * 3


def test_unpickling_an_unmapped_class_names_it(engine: Engine) -> None:
    User = setup(SK, engine)
    with sessionkit.Session(engine) as session:
        sandy = session.get(User, 1)
        sandy.name = "changed"
        restore, args = sessionkit.inspect(sandy)._state.__reduce__()
        marker_restore, marker_args = User.__sk_mapper__.detached_marker.__reduce__()
        session.rollback()
    assert marker_args == (User,)
    for fn, rest in [(restore, args[1:]), (marker_restore, ())]:
        with pytest.raises(UnmappedClassError) as info:
            fn(Plain, *rest)
        message = str(info.value)
        assert f"{__name__}.Plain object: the class is not mapped by sessionkit" in message
        assert "Import the module that maps it" in message


# -- copy.deepcopy ---------------------------------------------------------------------------


def test_deepcopy_is_a_detached_copy(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        patrick = session.get(User, 2)
        patrick.name = "unflushed"
        copies = copy.deepcopy([sandy, patrick])
        obs.append(("copies", [facts(api, o) for o in copies]))
        obs.append(("history", name_history(api, copies[1])))
        copies[0].name = "changed copy"
        obs.rec.clear()
        session.commit()
        obs.sql("commit: only the original's change")
        obs.append(("original", api.state(sandy)))
        session.close()
        obs.append(("rows", rows(api, engine, User)))

    obs = compare(scen, engine, ref_engine)
    f = by_label(obs)
    assert [c[0] for c in f["copies"][1]] == ["detached", "detached"]
    assert f["copies"][1][1][3] is True
    assert f["history"][1] == (("unflushed",), ("patrick",))
    assert f["original"][1] == "persistent"
    updates = sql_statements(f["commit: only the original's change"][1], "UPDATE")
    assert [params for _, params in updates] == [("unflushed", 2)]
    assert f["rows"][1][:2] == [(1, "sandy"), (2, "unflushed")]


# -- copy.copy: sessionkit only (needs map_imperatively -> portable.class_mapped) -----------


def test_copy_is_detached_with_the_values_and_changes(engine: Engine) -> None:
    User = setup(SK, engine)
    session = sessionkit.Session(engine)
    sandy = session.get(User, 1)
    patrick = session.get(User, 2)
    patrick.name = "unflushed"
    loaded_copy, changed_copy = copy.copy(sandy), copy.copy(patrick)
    for original, copied in [(sandy, loaded_copy), (patrick, changed_copy)]:
        insp = sessionkit.inspect(copied)
        assert (insp.detached, copied in session) == (True, False)
        assert insp.identity == sessionkit.inspect(original).identity
        assert sessionkit.inspect(original).persistent
        assert {k: v for k, v in copied.__dict__.items() if k != STATE_KEY} == {
            k: v for k, v in original.__dict__.items() if k != STATE_KEY
        }
    assert sessionkit.inspect(loaded_copy).identity == (1,)
    assert sessionkit.inspect(changed_copy).attrs.name.history == (("unflushed",), (), ("patrick",))
    assert not sessionkit.inspect(loaded_copy).modified
    patrick.fullname = "changed after the copy"  # the copy's history is its own
    assert not sessionkit.inspect(changed_copy).attrs.fullname.history.has_changes()
    session.close()


def test_changing_a_copy_leaves_the_original_row(engine: Engine) -> None:
    User = setup(SK, engine)
    session = sessionkit.Session(engine)
    sandy = session.get(User, 1)
    copied = copy.copy(sandy)
    copied.name = "changed copy"
    session.commit()
    session.close()
    assert rows(SK, engine, User)[0] == (1, "sandy")


def test_copy_goes_back_with_merge_not_add(engine: Engine) -> None:
    User = setup(SK, engine)
    session = sessionkit.Session(engine)
    sandy = session.get(User, 1)
    copied = copy.copy(sandy)
    copied.name = "merged"
    with pytest.raises(InvalidRequestError, match="another instance with key"):
        session.add(copied)
    assert session.merge(copied) is sandy
    session.commit()
    session.close()
    assert rows(SK, engine, User)[0] == (1, "merged")


def test_copy_of_pending_object_is_transient(engine: Engine) -> None:
    User = setup(SK, engine)
    session = sessionkit.Session(engine)
    pending = User(name="pending")
    session.add(pending)
    copied = copy.copy(pending)
    assert sessionkit.inspect(copied).transient
    assert copied not in session and pending in session
    assert copied.name == "pending"
    session.close()


def test_class_with_its_own_copy_keeps_it() -> None:
    assert copy.copy(OwnCopy()) == "own copy"


def test_orm_copy_shares_the_state() -> None:
    """Why sessionkit gives classes a __copy__: the ORM's copy.copy shares the state."""
    sandy = OrmModels.User(id=1, name="sandy")
    assert orm.object_session(sandy) is None
    assert sa_inspect(copy.copy(sandy)) is sa_inspect(sandy)
