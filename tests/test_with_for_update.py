"""``with_for_update=`` on ``get()``, ``get_one()`` and ``refresh()``, on sessionkit and on
the ORM.

A lock is the point of the argument, so ``get()`` SELECTs even when the object is in the
identity map; the row then only fills expired attributes (``populate_existing`` overwrites),
exactly as the ORM does. PostgreSQL and MariaDB render each option in their own syntax,
SQLite renders none. Bad values are a ``TypeError`` (``ArgumentError`` for ``refresh()``
with ``{}``), as in the ORM, raised before any SQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from models import setup_users
from reference import ORM, SK, Api, Obs, compare, run
from sqlalchemy import Engine
from sqlalchemy.sql.selectable import ForUpdateArg

from sessionkit import Session
from support import behind_the_back, by_unique_label, event_kinds, sql_statements


def _sql(facts: dict[str, Any], label: str) -> list[str]:
    return [" ".join(stmt.split()) for stmt, _ in sql_statements(facts[label][1])]


def test_each_option_renders_as_in_the_orm(engine: Engine, ref_engine: Engine) -> None:
    """Every option, on an object already in the identity map: a lock SELECTs anyway;
    no lock (None, False, 0) is an identity-map hit without SQL."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        options: list[tuple[str, Any]] = [
            ("True", True),
            ("nowait", {"nowait": True}),
            ("read", {"read": True}),
            ("skip_locked", {"skip_locked": True}),
            ("key_share", {"key_share": True}),
            ("read key_share", {"read": True, "key_share": True}),
            ("of class", {"of": User}),
            ("of table", {"of": User.__table__}),
            ("of column", {"of": User.id}),
            ("ForUpdateArg", ForUpdateArg(nowait=True)),
            ("empty dict", {}),
            ("None", None),
            ("False", False),
            ("0", 0),
        ]
        obs.rec.clear()
        for label, arg in options:
            same = session.get(User, 1, with_for_update=arg)
            obs.sql(label)
            obs.append((f"{label}: same object", same is sandy))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    dialect = engine.dialect.name
    for label in ("None", "False", "0"):
        assert facts[label][1] == []
    for label in ("True", "nowait", "of class", "empty dict", "ForUpdateArg"):
        assert event_kinds(facts[label][1]) == ["SELECT"]
        assert facts[f"{label}: same object"][1] is True
    plain = _sql(facts, "True")[0]
    if dialect == "sqlite":
        assert not plain.endswith("FOR UPDATE")
        assert _sql(facts, "nowait") == [plain]
    else:
        assert plain.endswith(" FOR UPDATE")
        assert _sql(facts, "nowait")[0].endswith(" FOR UPDATE NOWAIT")
        assert _sql(facts, "skip_locked")[0].endswith(" FOR UPDATE SKIP LOCKED")
    if dialect == "postgresql":
        assert _sql(facts, "read")[0].endswith(" FOR SHARE")
        assert _sql(facts, "key_share")[0].endswith(" FOR NO KEY UPDATE")
        assert _sql(facts, "read key_share")[0].endswith(" FOR KEY SHARE")
        assert _sql(facts, "of column")[0].endswith(" FOR UPDATE OF user_account")
    if dialect == "mysql":
        assert _sql(facts, "read")[0].endswith(" LOCK IN SHARE MODE")


def test_the_row_fills_only_expired_attributes(engine: Engine, ref_engine: Engine) -> None:
    """The lock does not refresh loaded values or drop unflushed changes; with
    ``populate_existing`` it does both, as a plain get() would."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        behind_the_back(obs, engine, "UPDATE user_account SET name = 'elsewhere' WHERE id = 1")
        with session.no_autoflush:
            sandy.fullname = "mine"
            obs.rec.clear()
            same = session.get(User, 1, with_for_update=True)
            obs.sql("locked: SELECT")
        obs.append(("loaded values kept", same is sandy, sandy.name, sandy.fullname))
        obs.append(("still modified", session.is_modified(sandy), sandy in session.dirty))
        session.rollback()

        patrick = session.get(User, 2)
        session.expire(patrick, ["fullname"])
        behind_the_back(
            obs, engine, "UPDATE user_account SET name = 'n2', fullname = 'f2' WHERE id = 2"
        )
        session.get(User, 2, with_for_update={"read": True})
        obs.append(("expired filled, loaded kept", api.visible(patrick)))
        obs.rec.clear()
        session.get(User, 2, with_for_update=True, populate_existing=True)
        obs.sql("populate_existing: SELECT")
        obs.append(("populate_existing overwrites", api.visible(patrick)))
        session.rollback()

        obs.rec.clear()
        squidward = session.get(User, 3, with_for_update=True)
        obs.sql("not in the map: BEGIN, SELECT")
        obs.append(("new object", api.state(squidward), squidward.name))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["locked: SELECT"][1]) == ["SELECT"]
    assert facts["loaded values kept"][1:] == (True, "sandy", "mine")
    assert facts["still modified"][1:] == (True, True)
    assert facts["expired filled, loaded kept"][1] == {
        "id": 2,
        "name": "patrick",
        "fullname": "f2",
    }
    assert facts["populate_existing overwrites"][1]["name"] == "n2"
    assert event_kinds(facts["not in the map: BEGIN, SELECT"][1]) == ["BEGIN", "SELECT"]
    assert facts["new object"][1:] == ("persistent", "squidward")


def test_autoflush_comes_first(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        sandy.name = "flushed"
        obs.rec.clear()
        session.get(User, 1, with_for_update=True)
        obs.sql("UPDATE, then SELECT")
        obs.append(("after", sandy.name, session.is_modified(sandy)))
        session.delete(sandy)
        with session.no_autoflush:
            same = session.get(User, 1, with_for_update=True)
            obs.append(("marked deleted, no autoflush", same is sandy, sandy in session.deleted))
        obs.rec.clear()
        obs.append(("marked deleted, autoflush", session.get(User, 1, with_for_update=True)))
        obs.sql("DELETE, then SELECT")
        with session.no_autoflush:
            session.add(User(id=50, name="pending"))
            obs.append(("pending key", session.get(User, 50, with_for_update=True)))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["UPDATE, then SELECT"][1]) == ["UPDATE", "SELECT"]
    assert facts["after"][1:] == ("flushed", False)
    assert facts["marked deleted, no autoflush"][1:] == (True, True)
    assert facts["marked deleted, autoflush"][1] is None
    assert event_kinds(facts["DELETE, then SELECT"][1]) == ["DELETE", "SELECT"]
    assert facts["pending key"][1] is None


def test_a_row_gone_leaves_the_object_alone(engine: Engine, ref_engine: Engine) -> None:
    """get() with a lock of an object whose row is gone returns None and, unlike a plain
    get() of a fully expired object, does not mark the object deleted: as in the ORM."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        patrick = session.get(User, 2)
        session.expire(patrick)
        behind_the_back(obs, engine, "DELETE FROM user_account WHERE id IN (1, 2)")
        for label, obj in (("loaded", sandy), ("expired", patrick)):
            obs.rec.clear()
            found = session.get(User, 1 if label == "loaded" else 2, with_for_update=True)
            obs.sql(f"{label}: SELECT")
            insp = api.inspect(obj)
            obs.append(
                (label, found, api.state(obj), obj in session, sorted(insp.expired_attributes))
            )
        obs.error("get_one", lambda: session.get_one(User, 1, with_for_update=True))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["loaded"][1:] == (None, "persistent", True, [])
    assert facts["expired"][1:] == (None, "persistent", True, ["fullname", "id", "name"])
    assert event_kinds(facts["expired: SELECT"][1]) == ["SELECT"]
    assert facts["get_one"][1:] == ("raises", "NoResultFound")


def test_get_one(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get_one(User, 1)
        obs.rec.clear()
        same = session.get_one(User, 1, with_for_update={"nowait": True})
        obs.sql("hit: SELECT")
        obs.append(("same", same is sandy))
        obs.error("miss", lambda: session.get_one(User, 99, with_for_update=True))
        obs.sql("miss: SELECT")
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["hit: SELECT"][1]) == ["SELECT"]
    assert facts["same"][1] is True
    assert facts["miss"][1:] == ("raises", "NoResultFound")
    assert event_kinds(facts["miss: SELECT"][1]) == ["SELECT"]


def test_refresh(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        behind_the_back(obs, engine, "UPDATE user_account SET name = 'n1' WHERE id = 1")
        sandy.fullname = "discarded"
        obs.rec.clear()
        session.refresh(sandy, ["fullname"], with_for_update=True)
        obs.sql("attribute_names: SELECT")
        obs.append(("one attribute", api.visible(sandy), session.is_modified(sandy)))
        session.refresh(sandy, with_for_update={"nowait": True})
        obs.sql("whole row: SELECT")
        obs.append(("whole row", api.visible(sandy)))
        session.refresh(sandy, with_for_update={"read": True})
        session.refresh(sandy, with_for_update=False)
        obs.sql("read, then no lock")
        session.rollback()
        behind_the_back(obs, engine, "DELETE FROM user_account WHERE id = 1")
        obs.error("row gone", lambda: session.refresh(sandy, with_for_update=True))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["attribute_names: SELECT"][1]) == ["SELECT"]
    assert facts["one attribute"][1:] == ({"id": 1, "name": "sandy", "fullname": "Sandy"}, False)
    assert facts["whole row"][1]["name"] == "n1"
    assert event_kinds(facts["read, then no lock"][1]) == ["SELECT", "SELECT"]
    assert facts["row gone"][1:] == ("raises", "InvalidRequestError")
    if engine.dialect.name != "sqlite":
        assert _sql(facts, "attribute_names: SELECT")[0].startswith(
            "SELECT user_account.fullname FROM user_account WHERE"
        )
        assert _sql(facts, "attribute_names: SELECT")[0].endswith(" FOR UPDATE")
        assert _sql(facts, "whole row: SELECT")[0].endswith(" FOR UPDATE NOWAIT")


BAD_VALUES: list[tuple[str, Any]] = [
    ("a string", "yes"),
    ("an int", 1),
    ("a list", ["nowait"]),
    ("an unknown key", {"bogus": True}),
]


def test_bad_values_raise_the_orms_error_before_any_sql(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        for label, bad in BAD_VALUES:
            obs.error(f"get, {label}", lambda bad=bad: session.get(User, 1, with_for_update=bad))
            obs.error(
                f"get, missing row, {label}",
                lambda bad=bad: session.get(User, 9, with_for_update=bad),
            )
            obs.error(
                f"get_one, {label}", lambda bad=bad: session.get_one(User, 1, with_for_update=bad)
            )
            obs.error(
                f"refresh, {label}", lambda bad=bad: session.refresh(sandy, with_for_update=bad)
            )
        obs.error("refresh, {}", lambda: session.refresh(sandy, with_for_update={}))
        obs.error(
            "of, a string", lambda: session.get(User, 1, with_for_update={"of": "user_account"})
        )
        obs.sql("no SQL")
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    for label, _ in BAD_VALUES:
        for call in ("get", "get, missing row", "get_one", "refresh"):
            assert facts[f"{call}, {label}"][1:] == ("raises", "TypeError")
    assert facts["refresh, {}"][1:] == ("raises", "ArgumentError")
    assert facts["of, a string"][1:] == ("raises", "ArgumentError")
    assert facts["no SQL"][1] == []


def test_bad_values_name_the_call_and_the_choices(engine: Engine) -> None:
    User = setup_users(SK, engine)
    with Session(engine) as session:
        sandy = session.get_one(User, 1)
        with pytest.raises(TypeError) as caught:
            session.get(User, 1, with_for_update="yes")  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith("get(User, 1): with_for_update='yes' is not a locking option")
        assert "True for FOR UPDATE, None or False for no lock" in message
        with pytest.raises(TypeError, match=r"unknown option\(s\) 'bogus'; .*nowait, read, of"):
            session.get(User, 1, with_for_update={"bogus": True})
        with pytest.raises(sa_exc.ArgumentError) as blank:
            session.refresh(sandy, with_for_update={})
        assert str(blank.value).startswith(
            "with_for_update should be the boolean value True, or a dictionary with options."
        )
        assert "pass True for a plain FOR UPDATE" in str(blank.value)


def test_a_refused_refresh_changes_nothing(engine: Engine, ref_engine: Engine) -> None:
    """Differs from the ORM: the ORM expires the object and autoflushes before it looks at
    ``with_for_update``; sessionkit checks first, so the refused call leaves the object
    loaded and its change unflushed, and runs no SQL."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        sandy.fullname = "unflushed"
        obs.rec.clear()
        obs.error("refresh", lambda: session.refresh(sandy, with_for_update="yes"))
        obs.append(("expired", sorted(api.inspect(sandy).expired_attributes)))
        obs.append(("modified", session.is_modified(sandy)))
        obs.sql("SQL")
        session.close()

    ours = by_unique_label(run(SK, engine, scen))
    theirs = by_unique_label(run(ORM, ref_engine, scen))
    assert ours["refresh"][1:] == theirs["refresh"][1:] == ("raises", "TypeError")
    assert ours["SQL"][1] == theirs["SQL"][1] == []
    assert (ours["expired"][1], ours["modified"][1]) == ([], True)
    assert (theirs["expired"][1], theirs["modified"][1]) == (["fullname", "id", "name"], False)


def test_the_lock_is_taken(engine: Engine, ref_engine: Engine) -> None:
    """A second session cannot lock the row (NOWAIT fails, SKIP LOCKED finds nothing)
    until the first one ends its transaction; SQLite takes no row locks."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        first = api.Session(engine)
        second = api.Session(engine)
        first.get(User, 1, with_for_update=True)
        err = obs.error("nowait", lambda: second.get(User, 1, with_for_update={"nowait": True}))
        obs.append(("nowait: a database error", isinstance(err, sa_exc.OperationalError)))
        second.rollback()
        found = second.get(User, 1, with_for_update={"skip_locked": True})
        obs.append(("skip_locked finds", None if found is None else found.name))
        second.rollback()
        first.commit()
        obs.append(("after the commit", second.get(User, 1, with_for_update={"nowait": True}).name))
        second.close()
        first.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    if engine.dialect.name == "sqlite":
        assert facts["nowait"][1:] == ("ok",)
        assert facts["skip_locked finds"][1] == "sandy"
    else:
        assert facts["nowait"][1:] == ("raises", "OperationalError")
        assert facts["nowait: a database error"][1] is True
        assert facts["skip_locked finds"][1] is None
    assert facts["after the commit"][1] == "sandy"
