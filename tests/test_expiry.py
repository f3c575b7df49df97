"""Expired attributes (docs/behaviour.md, "Expiry and refresh"): what an expired read loads
and when, partial expiry, refresh(), expire() and expire_all(), a row that vanished,
assignments to expired attributes, and expired attributes of detached objects.

Each scenario runs on sessionkit and on the SQLAlchemy ORM through ``compare()``; the
recorded SQL, transaction and pool events, states and error classes must be equal. After
each comparison a few spot checks pin the expected facts from docs/behaviour.md, so a
behaviour shared by both runs but contrary to the documented behaviour cannot hide.

Messages are checked by prefix inside the scenario (``str(err).startswith(<reference's
words>)``) so that the same check runs on both libraries; sessionkit may add guidance
after the reference's words.
"""

from __future__ import annotations

import pytest
from models import setup_users
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine, select, text

from support import (
    SELECT_ALL,
    by_unique_label,
    event_kinds,
    message_starts,
    not_bound,
    sql_statements,
    user_ids,
)

BHK3_SUFFIX = "(Background on this error at: https://sqlalche.me/e/21/bhk3)"


def not_persistent(obj: object) -> str:
    return f"Instance '<User at {hex(id(obj))}>' is not persistent within this Session"


# -- E. Expired attributes -----------------------------------------------------------------


def e1_expired_load(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick = s.get(User, 2)
    s.commit()
    obs.append(("expired", api.inspect(patrick).expired, api.loaded(patrick)))
    obs.rec.clear()
    obs.append(("fullname", patrick.fullname))
    obs.sql("load", pool=True)
    obs.append(("loaded", api.inspect(patrick).expired, api.visible(patrick)))

    # The row is found by the identity key, not by the (changed) value in __dict__.
    with s.no_autoflush:
        patrick.id = 99
        s.expire(patrick, ["name"])
        obs.rec.clear()
        obs.append(("name", patrick.name, patrick.id))
        obs.sql("load by identity key")
    s.rollback()
    s.close()


def test_expiry1_expired_read_loads_all_columns_by_identity_key(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e1_expired_load, engine, ref_engine))
    assert facts["expired"][1:] == (True, [])
    load = facts["load"][1]
    assert event_kinds(load) == ["checkout", "BEGIN", "SELECT"]
    assert load[2][1].startswith(SELECT_ALL)
    assert load[2][2] == (2,)
    assert facts["fullname"][1] == "Patrick"
    assert facts["loaded"][1:] == (False, {"id": 2, "name": "patrick", "fullname": "Patrick"})
    ((stmt, params),) = sql_statements(facts["load by identity key"][1])
    assert stmt.startswith("SELECT user_account.name \nFROM user_account \nWHERE")
    assert params == (2,)
    assert facts["name"][1:] == ("patrick", 99)


def e2_partial_expire(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    obs.rec.clear()
    s.expire(sandy, ["name"])
    obs.sql("expire")
    insp = api.inspect(sandy)
    obs.append(("after expire", api.loaded(sandy), sorted(insp.expired_attributes), insp.expired))
    obs.append(("name", sandy.name))
    obs.sql("load name")
    s.expire(sandy, ["fullname", "name"])
    obs.append(("fullname", sandy.fullname))
    obs.sql("mapping order")
    s.expire(sandy, ["name", "fullname"])
    with s.no_autoflush:
        sandy.name = "Sandy2"
        obs.append(("modified then read", sandy.fullname, sandy.name))
        obs.sql("only unmodified expired columns")
    s.rollback()
    s.close()


def test_expiry2_partial_expire_loads_only_expired_unmodified_columns(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e2_partial_expire, engine, ref_engine))
    assert facts["expire"][1] == []
    assert facts["after expire"][1:] == (["fullname", "id"], ["name"], False)
    base = " \nFROM user_account \nWHERE user_account.id = "
    ((stmt, params),) = sql_statements(facts["load name"][1])
    assert stmt.startswith("SELECT user_account.name" + base) and params == (1,)
    ((stmt, _),) = sql_statements(facts["mapping order"][1])
    assert stmt.startswith("SELECT user_account.name, user_account.fullname" + base)
    ((stmt, _),) = sql_statements(facts["only unmodified expired columns"][1])
    assert stmt.startswith("SELECT user_account.fullname" + base)
    assert facts["modified then read"][1:] == ("Sandy", "Sandy2")


def e3_row_gone(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    patrick = s.get(User, 2)
    s.commit()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM user_account WHERE id = 2"))
    obs.rec.clear()
    err = obs.error("read", lambda: patrick.name)
    expected = (
        f"Instance '<User at {hex(id(patrick))}>' has been deleted, or its row is otherwise "
        "not present."
    )
    obs.append(("read: message", message_starts(err, expected)))
    obs.sql("sql")
    obs.append(("left", api.state(patrick), patrick in s, api.loaded(patrick)))
    s.close()


def test_expiry3_expired_load_of_a_vanished_row(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(e3_row_gone, engine, ref_engine))
    assert facts["read"][1:] == ("raises", "ObjectDeletedError")
    assert facts["read: message"][1] is True
    assert event_kinds(facts["sql"][1]) == ["BEGIN", "SELECT"]
    assert facts["left"][1:] == ("persistent", True, [])


def e4_refresh(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy, patrick = s.get(User, 1), s.get(User, 2)
    sandy.name = "unsaved"
    patrick.name = "Patrick2"
    obs.rec.clear()
    s.refresh(sandy)
    obs.sql("refresh")
    obs.append(("sandy", api.visible(sandy), sandy in s.dirty, patrick in s.dirty))
    s.refresh(sandy)
    obs.sql("refresh again")
    s.execute(text("UPDATE user_account SET fullname = 'Changed' WHERE id = 1"))
    obs.rec.clear()
    s.refresh(sandy, ["name"])
    obs.sql("refresh name")
    obs.append(("stale fullname", sandy.fullname))
    s.refresh(sandy, ["fullname"])
    obs.sql("refresh fullname")
    obs.append(("new fullname", sandy.fullname))
    s.rollback()
    s.close()


def test_expiry4_refresh_drops_own_changes_autoflushes_and_always_selects(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e4_refresh, engine, ref_engine))
    refresh = facts["refresh"][1]
    assert event_kinds(refresh) == ["UPDATE", "SELECT"]
    assert sql_statements(refresh)[0][1] == ("Patrick2", 2)
    assert refresh[1][1].startswith(SELECT_ALL)
    assert facts["sandy"][1:] == ({"id": 1, "name": "sandy", "fullname": "Sandy"}, False, False)
    assert event_kinds(facts["refresh again"][1]) == ["SELECT"]
    ((stmt, _),) = sql_statements(facts["refresh name"][1])
    assert stmt.startswith("SELECT user_account.name \nFROM")
    assert facts["stale fullname"][1] == "Sandy"
    assert facts["new fullname"][1] == "Changed"


def e5_refresh_expire_errors(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    t = User(name="t")
    for label, fn in {"refresh": s.refresh, "expire": s.expire}.items():
        err = obs.error(f"{label} transient", lambda fn=fn: fn(t))
        obs.append((f"{label} transient: message", message_starts(err, not_persistent(t))))
    s.add(t)
    for label, fn in {"refresh": s.refresh, "expire": s.expire}.items():
        err = obs.error(f"{label} pending", lambda fn=fn: fn(t))
        obs.append((f"{label} pending: message", message_starts(err, not_persistent(t))))
    obs.append(("still pending", api.state(t)))
    s.rollback()
    obs.sql("nothing ran")

    s2 = api.Session(engine)
    patrick = s2.get(User, 2)
    s2.execute(text("DELETE FROM user_account WHERE id = 2"))
    obs.rec.clear()
    err = obs.error("refresh row gone", lambda: s2.refresh(patrick))
    gone = f"Could not refresh instance '<User at {hex(id(patrick))}>'"
    obs.append(("refresh row gone: message", message_starts(err, gone)))
    obs.sql("refresh row gone: sql")
    obs.append(("patrick", api.state(patrick), patrick in s2))
    s2.close()
    err = obs.error("refresh detached", lambda: s2.refresh(patrick))
    obs.append(("refresh detached: message", message_starts(err, not_persistent(patrick))))


def test_expiry5_refresh_and_expire_of_non_persistent_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e5_refresh_expire_errors, engine, ref_engine))
    for label in (
        "refresh transient",
        "expire transient",
        "refresh pending",
        "expire pending",
        "refresh row gone",
        "refresh detached",
    ):
        assert facts[label][1:] == ("raises", "InvalidRequestError"), label
        assert facts[f"{label}: message"][1] is True, label
    assert facts["still pending"][1] == "pending"
    assert facts["nothing ran"][1] == []
    assert event_kinds(facts["refresh row gone: sql"][1]) == ["SELECT"]
    assert facts["patrick"][1:] == ("persistent", True)


def e6_expire_all(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    users = s.scalars(select(User).order_by(User.id)).all()
    users[0].name = "discarded"
    obs.rec.clear()
    s.expire_all()
    obs.sql("expire_all")
    for u in users:
        insp = api.inspect(u)
        obs.append((f"user {insp.identity}", api.loaded(u), insp.expired, api.state(u)))
    obs.append(("dirty", len(s.dirty)))
    obs.append(("name", users[0].name))
    s.commit()
    obs.sql("reload and commit")
    s.close()


def test_expiry6_expire_all_expires_every_object_without_sql(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e6_expire_all, engine, ref_engine))
    assert facts["expire_all"][1] == []
    users = [o for label, o in facts.items() if label.startswith("user ")]
    assert len(users) == 3
    for o in users:
        assert o[1:] == ([], True, "persistent")
    assert facts["dirty"][1] == 0
    assert facts["name"][1] == "sandy"
    assert event_kinds(facts["reload and commit"][1]) == ["SELECT", "COMMIT"]


def e7_expire_discards_changes(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy, patrick = s.get(User, 1), s.get(User, 2)
    sandy.name = "discarded"
    obs.append(("dirty before", sandy in s.dirty))
    s.expire(sandy)
    obs.append(("after expire", sandy in s.dirty, s.is_modified(sandy), api.loaded(sandy)))
    patrick.name = "discarded too"
    patrick.fullname = "Patrick Star"
    s.expire(patrick, ["name"])
    obs.append(("partial", patrick in s.dirty, s.is_modified(patrick), api.loaded(patrick)))
    obs.rec.clear()
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_expiry7_expire_discards_pending_changes(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(e7_expire_discards_changes, engine, ref_engine))
    assert facts["dirty before"][1] is True
    assert facts["after expire"][1:] == (False, False, [])
    assert facts["partial"][1:] == (True, True, ["fullname", "id"])
    commit = facts["commit"][1]
    assert event_kinds(commit) == ["UPDATE", "COMMIT"]
    assert sql_statements(commit)[0][1] == ("Patrick Star", 2)
    assert [tuple(r) for r in facts["rows"][1]][:2] == [(1, "sandy"), (2, "patrick")]


def e7_partial_only_change(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    sandy.name = "discarded"
    s.expire(sandy, ["name"])
    insp = api.inspect(sandy)
    obs.append(("after", sandy in s.dirty, s.is_modified(sandy), insp.modified))
    obs.rec.clear()
    s.commit()
    obs.sql("commit")
    s.close()


def test_expiry7_partial_expire_of_the_only_changed_attribute(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e7_partial_only_change, engine, ref_engine))
    assert facts["after"][1:] == (True, False, True)
    assert event_kinds(facts["commit"][1]) == ["COMMIT"]


def e8_assign_to_expired(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    obs.rec.clear()
    sandy.name = "new"
    obs.sql("assign", pool=True)
    obs.append(("dict", api.visible(sandy), sandy in s.dirty))
    obs.append(("fullname", sandy.fullname))
    obs.sql("read other")
    obs.append(("after", api.visible(sandy), sandy in s.dirty))
    s.commit()
    obs.sql("commit")
    obs.append(("rows", user_ids(api, engine, User)))
    s.close()


def test_expiry8_assign_to_expired_then_read_other(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(e8_assign_to_expired, engine, ref_engine))
    assert facts["assign"][1] == []
    assert facts["dict"][1:] == ({"name": "new"}, True)
    read = facts["read other"][1]
    assert event_kinds(read) == ["BEGIN", "SELECT", "UPDATE", "SELECT"]
    (sel1, p1), (upd, p2), (sel2, p3) = sql_statements(read)
    assert sel1.startswith("SELECT user_account.id, user_account.fullname \nFROM")
    assert sel2 == sel1 and p1 == p3 == (1,)
    assert upd.startswith("UPDATE user_account SET name=") and p2 == ("new", 1)
    assert facts["fullname"][1] == "Sandy"
    assert facts["after"][1:] == ({"id": 1, "name": "new", "fullname": "Sandy"}, False)
    assert event_kinds(facts["commit"][1]) == ["COMMIT"]
    assert tuple(facts["rows"][1][0]) == (1, "new")


def e9_load_autoflushes(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    newbie = User(name="newbie")
    s.add(newbie)
    obs.rec.clear()
    obs.append(("name", sandy.name))
    obs.sql("load")
    obs.append(("newbie", api.state(newbie), newbie.id))
    s.rollback()
    s.close()


def test_expiry9_expired_load_autoflushes_pending_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e9_load_autoflushes, engine, ref_engine))
    assert event_kinds(facts["load"][1]) == ["BEGIN", "INSERT", "SELECT"]
    assert facts["newbie"][1:] == ("persistent", 4)


def e10_query_fills_expired(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    s = api.Session(engine)
    users = [s.get(User, i) for i in (1, 2, 3)]
    s.commit()
    obs.rec.clear()
    rows = s.scalars(select(User).order_by(User.id)).all()
    obs.sql("query")
    obs.append(("identical", all(a is b for a, b in zip(rows, users, strict=True))))
    obs.append(("filled", [api.visible(u) for u in users]))
    obs.append(("values", [u.fullname for u in users]))
    obs.sql("reads")
    s.expire(users[0], ["fullname"])
    s.execute(select(User).where(User.id == 1)).all()
    obs.sql("partial")
    obs.append(("partial filled", users[0].fullname))
    obs.sql("no extra SELECT")
    s.close()


def test_expiry10_query_rows_fill_expired_objects(engine: Engine, ref_engine: Engine) -> None:
    facts = by_unique_label(compare(e10_query_fills_expired, engine, ref_engine))
    assert event_kinds(facts["query"][1]) == ["BEGIN", "SELECT"]
    assert facts["identical"][1] is True
    assert facts["filled"][1][0] == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["values"][1] == ["Sandy", "Patrick", "Squidward"]
    assert facts["reads"][1] == []
    assert facts["no extra SELECT"][1] == []
    assert event_kinds(facts["partial"][1]) == ["SELECT"]
    assert facts["partial filled"][1] == "Sandy"


def e11_expired_detached(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)

    # commit, then expunge
    s = api.Session(engine)
    sandy = s.get(User, 1)
    s.commit()
    s.expunge(sandy)
    # expire_all, then expunge_all
    patrick = s.get(User, 2)
    s.expire_all()
    s.expunge_all()
    # rollback, then close
    squidward = s.get(User, 3)
    s.rollback()
    s.close()
    # partial expire, then expunge: loaded attributes stay readable
    s2 = api.Session(engine)
    partial = s2.get(User, 1)
    s2.expire(partial, ["fullname"])
    s2.expunge(partial)
    obs.rec.clear()
    objs = {"sandy": sandy, "patrick": patrick, "squidward": squidward}
    for label, o in objs.items():
        obs.append((label, api.state(o), api.loaded(o)))
        err = obs.error(f"{label} read", lambda o=o: o.name)
        obs.append((f"{label} read: message", message_starts(err, not_bound(o))))
        obs.append((f"{label} read: code", str(err).endswith(BHK3_SUFFIX)))
    obs.append(("partial", api.state(partial), partial.id, partial.name))
    err = obs.error("partial read", lambda: partial.fullname)
    obs.append(("partial read: message", message_starts(err, not_bound(partial))))
    obs.sql("nothing ran", pool=True)
    s2.close()


def test_close3_expired_and_detached_raises_detached_instance_error(
    engine: Engine, ref_engine: Engine
) -> None:
    facts = by_unique_label(compare(e11_expired_detached, engine, ref_engine))
    for label in ("sandy", "patrick", "squidward"):
        assert facts[label][1:] == ("detached", []), label
        assert facts[f"{label} read"][1:] == ("raises", "DetachedInstanceError")
        assert facts[f"{label} read: message"][1] is True
        assert facts[f"{label} read: code"][1] is True
    assert facts["partial"][1:] == ("detached", 1, "sandy")
    assert facts["partial read"][2] == "DetachedInstanceError"
    assert facts["partial read: message"][1] is True
    assert facts["nothing ran"][1] == []


def test_close3_sessionkit_detached_message_names_the_attribute_and_cause(engine: Engine) -> None:
    """Deliberate difference: the message continues after the reference's words."""
    User = setup_users(SK, engine)
    s = SK.Session(engine)
    sandy = s.get(User, 1)
    s.expire_all()
    s.expunge_all()
    with pytest.raises(SK.DetachedInstanceError) as info:
        _ = sandy.fullname
    message = str(info.value)
    assert message.startswith(not_bound(sandy))
    assert message != not_bound(sandy) + " " + BHK3_SUFFIX
    assert "'fullname'" in message
    assert "expire" in message
    assert message.endswith(BHK3_SUFFIX)
