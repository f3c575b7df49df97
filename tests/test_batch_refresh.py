"""``batch_refresh=True``: expired objects reload together, one SELECT ... IN per batch.

The reference has no such option (it refreshes each expired object with its own SELECT),
so these tests check sessionkit's own rules: same values and the same errors as the
one-by-one refresh, never overwriting unflushed changes, and the default unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from models import setup_users
from reference import SK
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, delete, select, update

from sessionkit import Session, declarative_base
from sessionkit.exc import ArgumentError, ObjectDeletedError
from support import SQLRecorder

NAMES = ("a", "b", "c", "d", "e")


def selects(rec: SQLRecorder) -> list[str]:
    return [s for s in rec.sql() if s.startswith("SELECT")]


def loaded_session(engine: Engine, **kw: Any) -> tuple[Session, Any, list[Any]]:
    User = setup_users(SK, engine, NAMES)
    s = Session(engine, **kw)
    users = list(s.scalars(select(User).order_by(User.id)))
    s.commit()
    return s, User, users


def test_default_refreshes_one_object_per_select(engine: Engine) -> None:
    _s, _, users = loaded_session(engine)
    with SQLRecorder(engine) as rec:
        assert [u.name for u in users] == list(NAMES)
    assert len(selects(rec)) == len(NAMES)
    assert all("WHERE user_account.id = " in q for q in selects(rec))


def test_one_select_refreshes_the_whole_event(engine: Engine) -> None:
    _s, _, users = loaded_session(engine, batch_refresh=True)
    with SQLRecorder(engine) as rec:
        assert users[2].name == "c"
        assert [SK.loaded(u) for u in users] == [["fullname", "id", "name"]] * len(NAMES)
        assert [u.fullname for u in users] == [n.title() for n in NAMES]
    assert len(selects(rec)) == 1
    params = rec.statements()[-1][1]
    if engine.dialect.name == "postgresql":
        # One array parameter: the same statement text for every batch, nothing per key.
        assert "user_account.id = ANY (" in selects(rec)[0]
        assert sorted(params[0]) == [1, 2, 3, 4, 5]
    elif engine.dialect.name == "sqlite":
        # Integer keys as one JSON text, read back by SQLite's json_each().
        assert "FROM json_each(?)" in selects(rec)[0]
        assert sorted(json.loads(params[0])) == [1, 2, 3, 4, 5]
    else:
        assert " IN " in selects(rec)[0]
        assert sorted(params) == [1, 2, 3, 4, 5]


def test_sqlite_without_json_functions_expands_the_in_list(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    _s, _, users = loaded_session(engine, batch_refresh=True)
    # After the first connection, which sets the version from the library.
    monkeypatch.setattr(engine.dialect, "server_version_info", (3, 37, 2))
    with SQLRecorder(engine) as rec:
        assert [u.name for u in users] == list(NAMES)
    assert len(selects(rec)) == 1
    assert " IN (" in selects(rec)[0] and "json_each" not in selects(rec)[0]


def test_string_keys_refresh_in_batches_too(engine: Engine) -> None:
    """Keys that are not integers take the expanding IN on SQLite (json_each would hand
    back values of another type), the array on PostgreSQL."""
    md = MetaData()
    table = Table("codes", md, Column("code", String(10), primary_key=True), Column("v", Integer))
    Base: Any = declarative_base(metadata=md)

    class Code(Base):  # type: ignore[misc]
        __table__ = table

    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"code": f"c{i}", "v": i} for i in range(5)])
    s = Session(engine, batch_refresh=True)
    codes: list[Any] = s.scalars(select(Code).order_by(table.c.code)).all()
    s.commit()
    with SQLRecorder(engine) as rec:
        assert [c.v for c in codes] == [0, 1, 2, 3, 4]
    assert len(selects(rec)) == 1
    assert "json_each" not in selects(rec)[0]


def test_batches_of_every_size_share_one_statement_text(engine: Engine) -> None:
    """Batches of different sizes reuse the statement: on PostgreSQL the keys travel as
    one array, elsewhere the IN list is expanded per execution of a cached statement."""
    _s, _, users = loaded_session(engine, batch_refresh=True, refresh_batch_size=3)
    with SQLRecorder(engine) as rec:
        assert [u.name for u in users] == list(NAMES)
    texts = selects(rec)
    assert len(texts) == 2  # 3 + 2
    if engine.dialect.name == "postgresql":
        assert texts[0] == texts[1]


def test_batch_size_limits_each_select(engine: Engine) -> None:
    _s, _, users = loaded_session(engine, batch_refresh=True, refresh_batch_size=2)
    with SQLRecorder(engine) as rec:
        assert [u.name for u in users] == list(NAMES)
    assert len(selects(rec)) == 3  # 2 + 2 + 1


def test_unflushed_changes_are_never_overwritten(engine: Engine) -> None:
    s, _, users = loaded_session(engine, batch_refresh=True, autoflush=False)
    users[1].name = "changed"
    with engine.begin() as conn:
        conn.execute(update(users[0].__table__).values(fullname="from the database"))
    assert users[0].fullname == "from the database"  # current transaction's values
    assert users[1].name == "changed"
    assert users[1].fullname == "from the database"
    assert s.is_modified(users[1])


def test_a_gone_row_raises_only_for_the_object_read(engine: Engine) -> None:
    s, User, users = loaded_session(engine, batch_refresh=True)
    with engine.begin() as conn:
        conn.execute(delete(User.__table__).where(User.__table__.c.id == 4))
    assert users[0].name == "a"
    assert SK.loaded(users[3]) == []  # left expired, no error yet
    assert users[4].name == "e"
    with pytest.raises(ObjectDeletedError, match="has been deleted, or its row"):
        _ = users[3].name
    assert users[3] in s


def test_gone_row_of_the_object_read_raises_after_loading_the_others(engine: Engine) -> None:
    _s, User, users = loaded_session(engine, batch_refresh=True)
    with engine.begin() as conn:
        conn.execute(delete(User.__table__).where(User.__table__.c.id == 1))
    with pytest.raises(ObjectDeletedError):
        _ = users[0].name
    with SQLRecorder(engine) as rec:
        assert users[1].name == "b"
    assert rec.sql() == []


def test_only_objects_expired_by_the_same_event(engine: Engine) -> None:
    s, _User, users = loaded_session(engine, batch_refresh=True)
    assert users[0].name == "a"  # loads all five
    s.expire(users[0])
    s.expire(users[1])
    with SQLRecorder(engine) as rec:
        assert users[0].name == "a"
        assert users[1].name == "b"
    assert len(selects(rec)) == 2  # two separate expire() events


def test_rollback_is_an_event_too(engine: Engine) -> None:
    s, _, users = loaded_session(engine, batch_refresh=True)
    assert users[0].name == "a"
    for u in users:
        u.name = u.name.upper()
    s.rollback()
    with SQLRecorder(engine) as rec:
        assert [u.name for u in users] == list(NAMES)
    assert len(selects(rec)) == 1


@pytest.mark.parametrize("tuple_in", [True, False], ids=["tuple-in", "or-ed"])
def test_composite_keys(engine: Engine, tuple_in: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    Base = declarative_base()

    class Cell(Base):
        __tablename__ = "cells"
        row = Column(Integer, primary_key=True)
        col = Column(String(5), primary_key=True)
        value = Column(String(20))

    Base.metadata.create_all(engine)
    monkeypatch.setattr(engine.dialect, "tuple_in_values", tuple_in)
    s = Session(engine, batch_refresh=True)
    s.add_all([Cell(row=r, col=c, value=f"{r}{c}") for r in (1, 2) for c in ("x", "y")])
    s.commit()
    cells = list(s.scalars(select(Cell)))
    s.commit()
    with SQLRecorder(engine) as rec:
        assert sorted(c.value for c in cells) == ["1x", "1y", "2x", "2y"]
    assert len(selects(rec)) == 1
    assert (" IN " in selects(rec)[0]) is tuple_in


def test_bad_batch_size() -> None:
    with pytest.raises(ArgumentError, match="refresh_batch_size"):
        Session(refresh_batch_size=0)
