"""The shortcuts the hot paths take must not change behaviour: each test pins one."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import sqlalchemy as sa
from models import setup_users
from reference import SK
from sqlalchemy import Column, Engine, Integer, String, select

from sessionkit import Session, declarative_base, inspect, map_imperatively
from sessionkit.exc import InvalidRequestError, PendingRollbackError
from sessionkit.gcpause import BULK
from sessionkit.state import STATE_KEY, InstanceState
from support import SQLRecorder


def test_get_accepts_every_identifier_form(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine)
    sandy = s.get(User, 1)
    with SQLRecorder(engine) as rec:
        assert s.get(User, (1,)) is sandy
        assert s.get(User, [1]) is sandy
        assert s.get(User, {"id": 1}) is sandy
    assert rec.sql() == []
    with pytest.raises(InvalidRequestError, match="Incorrect number of values"):
        s.get(User, (1, 2))


def test_get_hit_on_an_expired_object_loads_it(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine)
    sandy = s.get(User, 1)
    s.expire(sandy)
    with SQLRecorder(engine) as rec:
        assert s.get(User, 1) is sandy
    assert [q.split()[0] for q in rec.sql()] == ["SELECT"]


def test_get_hit_after_a_failed_flush_raises(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine, expire_on_commit=False)
    sandy = s.get(User, 1)
    s.commit()
    s.add(User(id=1, name="duplicate"))
    with pytest.raises(sa.exc.IntegrityError), pytest.warns(sa.exc.SAWarning, match="conflicts"):
        s.flush()
    with pytest.raises(PendingRollbackError):
        s.get(User, 1)
    s.rollback()
    assert s.get(User, 1) is sandy


def test_loaded_objects_keep_their_other_attributes_through_expiry(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine)
    sandy = s.scalars(select(User).where(User.id == 1)).one()
    sandy.note = "not a column"
    s.commit()
    assert SK.visible(sandy) == {"note": "not a column"}
    assert inspect(sandy).identity == (1,)
    assert sandy.name == "sandy"


def test_untouched_loaded_objects_answer_inspection(engine: Engine) -> None:
    User = setup_users(SK, engine)
    s = Session(engine)
    users = s.scalars(select(User).order_by(User.id)).all()
    assert [inspect(u).persistent for u in users] == [True, True, True]
    assert users[1] in s
    s.expunge_all()
    assert inspect(users[2]).detached
    assert users[2] not in s
    other = Session(engine)
    other.add(users[2])
    assert users[2] in other and inspect(users[2]).identity == (3,)


@pytest.mark.parametrize("gc_enabled", [True, False])
def test_bulk_load_restores_the_garbage_collector(engine: Engine, gc_enabled: bool) -> None:
    User = setup_users(SK, engine, tuple(f"u{i}" for i in range(BULK + 5)))
    s = Session(engine)
    if not gc_enabled:
        gc.disable()
    try:
        users = s.scalars(select(User)).all()
        assert len(users) == BULK + 5
        assert gc.isenabled() is gc_enabled
    finally:
        gc.enable()


def test_class_with_its_own_layout_loads_through_the_dict(engine: Engine) -> None:
    md = sa.MetaData()
    table = sa.Table("things", md, Column("id", Integer, primary_key=True), Column("v", String(30)))

    class Slotted:
        __slots__ = ("__dict__", "__weakref__", "extra")

    map_imperatively(Slotted, table)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    s = Session(engine)
    things: list[Any] = s.scalars(select(Slotted).order_by(table.c.id)).all()
    assert [t.v for t in things] == ["a", "b"]
    things[0].v = "changed"
    s.commit()
    assert s.scalar(select(table.c.v).where(table.c.id == 1)) == "changed"


def test_columns_named_like_python_keywords_load(engine: Engine) -> None:
    """The generated loader stores attributes by name; a keyword cannot be one there."""
    md = sa.MetaData()
    table = sa.Table(
        "kw_things",
        md,
        Column("id", Integer, primary_key=True),
        Column("class", String(10)),
        Column("from", String(10)),
    )
    Base: Any = declarative_base(metadata=md)

    class Thing(Base):  # type: ignore[misc]
        __table__ = table

    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "class": "a", "from": "b"}])
    s = Session(engine)
    thing = s.scalars(select(Thing)).one()
    assert (type(thing), getattr(thing, "class"), getattr(thing, "from")) == (Thing, "a", "b")
    setattr(thing, "from", "c")
    s.commit()
    assert s.scalar(select(table.c["from"])) == "c"


def test_constructor_fast_path_still_rejects_unknown_keywords() -> None:
    Base = declarative_base()

    class Item(Base):
        __tablename__ = "items"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))

        @property
        def label(self) -> str:
            return f"item {self.name}"

    item = Item(id=1, name="x")
    assert SK.visible(item) == {"id": 1, "name": "x"}
    assert inspect(item).modified
    with pytest.raises(TypeError, match="invalid keyword argument"):
        Item(colour="red")


def test_commits_do_not_keep_walking_objects_the_application_dropped(engine: Engine) -> None:
    """Each commit expires the identity map; entries of objects already gone are swept
    there instead of piling up, so a long-lived session's commits stay cheap."""
    User = setup_users(SK, engine)
    s = Session(engine)
    for i in range(300):
        s.add(User(name=f"u{i}", fullname="x"))  # not held: gone once flushed
        s.commit()
    gc.collect()
    entries = s._tracker.identity_map.by_mapper[User.__sk_mapper__]
    assert len(entries) <= 2
    assert s.scalar(select(sa.func.count()).select_from(User)) == 303


def test_states_built_field_by_field_set_every_field(engine: Engine) -> None:
    """The first change and a commit's expiry build states without InstanceState();
    a field either forgets would raise AttributeError on its first read."""
    User = setup_users(SK, engine)
    s = Session(engine)
    users: list[Any] = s.scalars(select(User).order_by(User.id)).all()
    users[0].name = "changed"  # its own state, built from the shared marker
    first = users[0].__dict__[STATE_KEY]
    assert {slot: getattr(first, slot) for slot in InstanceState.__slots__} == {
        **{slot: getattr(InstanceState(first.mapper), slot) for slot in InstanceState.__slots__},
        "key": 1,
        "session_ref": first.session_ref,
        "committed": {"name": "sandy"},
        "modified": True,
        "group": None,
    }
    s.commit()  # the others' states are built by the expiry
    for user in users:
        state = user.__dict__[STATE_KEY]
        assert [slot for slot in InstanceState.__slots__ if not hasattr(state, slot)] == []
        assert state.key == user.id
