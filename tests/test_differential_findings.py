"""Regression tests for what the differential machine (test_differential.py) found.

Each test is the shortest scenario for one finding, compared with the ORM where
sessionkit follows it, or pinned to sessionkit's behaviour where README documents a
deliberate difference.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from models import item_model
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import Engine, insert, text

from support import behind_the_back, by_label, take_kinds, unrecorded_rows


def _items(api: Api, engine: Engine, *keys: str) -> Any:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([Item(id=k, name=f"name-{k}") for k in keys])
        s.commit()
    return Item


def _rows(obs: Obs, engine: Engine) -> list[tuple[Any, ...]]:
    return unrecorded_rows(obs, engine, "SELECT id, name FROM items ORDER BY id")


def test_get_of_a_vanished_row_marks_the_object_deleted_until_commit(
    engine: Engine, ref_engine: Engine
) -> None:
    """get() of a fully expired object whose row is gone: *deleted*, then *detached*
    after commit(); add() of it afterwards is refused, as for any deleted object."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.commit()
        behind_the_back(obs, engine, "DELETE FROM items")
        obs.rec.clear()
        obs.append(("get", session.get(Item, "k1"), api.state(a), a in session))
        session.commit()
        obs.append(("commit", api.state(a), a in session, api.inspect(a).was_deleted))
        obs.error("add again", lambda: session.add(a))
        obs.append(("sql", take_kinds(obs)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["get"][1:] == (None, "deleted", False)
    assert facts["commit"][1:] == ("detached", False, True)
    assert facts["add again"][1:] == ("raises", "InvalidRequestError")


def test_failed_flush_brings_back_an_object_the_flush_found_gone(
    engine: Engine, ref_engine: Engine
) -> None:
    """A pending object with the key of a fully expired object whose row is gone makes
    the flush SELECT it and move it to *deleted*; when that flush then fails, the
    rollback makes it persistent again."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1", "k2")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.commit()
        behind_the_back(obs, engine, "DELETE FROM items WHERE id = 'k1'")
        session.add(Item(id="k1", name="new"))
        session.add(Item(id="k2", name="duplicate key"))
        obs.rec.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs.error("flush", session.flush)
        obs.append(("after flush", api.state(a), a in session, take_kinds(obs)))
        session.rollback()
        obs.append(("after rollback", api.state(a), a in session))
        obs.append(("rows", _rows(obs, engine)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["flush"][1:] == ("raises", "IntegrityError")
    assert facts["after flush"][1:3] == ("persistent", True)
    assert facts["after flush"][3][:3] == ["BEGIN", "SELECT", "INSERT"]
    assert facts["after rollback"][1:] == ("persistent", True)
    assert facts["rows"][1] == [("k2", "name-k2")]


def test_refresh_refuses_an_unflushed_primary_key_change(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine, autoflush=False)
        a = session.get(Item, "k1")
        a.id = "k9"
        obs.rec.clear()
        err = obs.error("refresh", lambda: session.refresh(a, ["name"]))
        obs.append(("message", str(err).startswith("Please flush pending primary key changes")))
        obs.append(("after", api.loaded(a), take_kinds(obs)))
        session.refresh(a, ["id", "name"])
        obs.append(("refreshing the key too", api.visible(a)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["refresh"][1:] == ("raises", "InvalidRequestError")
    assert facts["after"][1:] == (["id"], [])
    assert facts["refreshing the key too"][1] == {"id": "k1", "name": "name-k1"}


def test_refresh_error_names_the_attribute_and_the_fix(engine: Engine) -> None:
    Item = _items(SK, engine, "k1")
    session = SK.Session(engine, autoflush=False)
    a = session.get(Item, "k1")
    a.id = "k9"
    try:
        session.refresh(a, ["name"])
    except Exception as err:
        message = str(err)
    assert "{'id'}" in message and "'k1'" in message and "session.flush()" in message
    session.close()


def test_re_added_object_whose_key_expired_before_rollback_is_refused(
    engine: Engine, ref_engine: Engine
) -> None:
    """expire() then rollback() of an INSERTed object leaves it transient without its
    key; added again, the flush refuses it instead of INSERTing NULL."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine)
        session = api.Session(engine)
        a = Item(id="k1", name="a")
        session.add(a)
        session.flush()
        session.expire(a)
        session.rollback()
        obs.append(("transient", api.state(a), api.loaded(a)))
        session.add(a)
        obs.error("flush", session.flush)
        err = obs.error("assign the key", lambda: setattr(a, "id", "k1"))
        obs.append(("advice", "make_transient(obj)" in str(err) if api is SK else True))
        session.rollback()
        api.make_transient(a)
        a.id, a.name = "k1", "again"
        session.add(a)
        session.commit()
        obs.append(("rows", _rows(obs, engine)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["transient"][1:] == ("transient", [])
    assert facts["flush"][1:] == ("raises", "InvalidRequestError")
    assert facts["assign the key"][1:] == ("raises", "DetachedInstanceError")
    assert facts["advice"][1] is True
    assert facts["rows"][1] == [("k1", "again")]


@pytest.mark.parametrize("autoflush", [False, True])
def test_reading_an_expired_key_of_a_re_added_object_is_refused(
    engine: Engine, ref_engine: Engine, autoflush: bool
) -> None:
    """No row and no key to load from: InvalidRequestError, without SQL or autoflush."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine)
        session = api.Session(engine, autoflush=autoflush)
        a = Item(id="k1", name="a")
        session.add(a)
        session.flush()
        session.expire(a)
        session.rollback()
        session.add(a)
        obs.rec.clear()
        obs.error("read", lambda: a.name)
        obs.append(("sql", take_kinds(obs), api.state(a)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["read"][1:] == ("raises", "InvalidRequestError")
    assert facts["sql"][1:] == ([], "pending")


def test_partial_expire_keeps_an_object_fully_expired(engine: Engine, ref_engine: Engine) -> None:
    """expire(obj, [attr]) of a fully expired object leaves it fully expired: get()
    still reloads it (docs/behaviour.md: identity-6)."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.commit()
        session.expire(a, ["name"])
        obs.rec.clear()
        obs.append(("get", session.get(Item, "k1") is a, api.loaded(a), take_kinds(obs)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["get"][1:] == (True, ["id", "name"], ["BEGIN", "SELECT"])


def test_delete_again_keeps_the_object_deleted(engine: Engine, ref_engine: Engine) -> None:
    """delete() of an object whose DELETE was flushed: *deleted* and in the session until
    the next flush DELETEs it again (a warning); rollback() makes it persistent."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.delete(a)
        session.flush()
        session.delete(a)
        obs.append(("marked", api.state(a), a in session, a in session.deleted))
        obs.rec.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session.flush()
        obs.append(("flushed", api.state(a), a in session, take_kinds(obs), len(caught)))
        session.delete(a)
        session.rollback()
        obs.append(("rolled back", api.state(a), a in session))
        obs.append(("rows", _rows(obs, engine)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["marked"][1:] == ("deleted", True, True)
    assert facts["flushed"][1:] == ("deleted", False, ["DELETE"], 1)
    assert facts["rolled back"][1:] == ("persistent", True)
    assert facts["rows"][1] == [("k1", "name-k1")]


def test_row_switch_loads_a_fully_expired_old_object_first(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.commit()
        session.delete(a)
        b = Item(id="k1", name="b")
        session.add(b)
        obs.rec.clear()
        session.flush()
        obs.append(("flush", take_kinds(obs), api.state(a), api.state(b), api.loaded(a)))
        session.commit()
        obs.append(("rows", _rows(obs, engine)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["flush"][1] == ["BEGIN", "SELECT", "UPDATE"]
    assert facts["rows"][1] == [("k1", "b")]


def test_unchanged_dirty_object_with_an_expired_key_loads_it_after_the_statements(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine)
        a = session.get(Item, "k1")
        session.expire(a, ["id"])
        a.name = a.name  # dirty, with no net change
        session.add(Item(id="k2", name="b"))
        obs.rec.clear()
        session.flush()
        obs.append(("flush", take_kinds(obs), api.loaded(a)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["flush"][1:] == (["INSERT", "SELECT"], ["id", "name"])


def test_savepoint_rollback_expires_an_object_changed_after_its_delete(
    engine: Engine, ref_engine: Engine
) -> None:
    """DELETE flushed inside a SAVEPOINT, then an attribute assigned: rolling the
    savepoint back makes it persistent again, expired (the assigned value was never
    saved)."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k1")
        session = api.Session(engine, expire_on_commit=False)
        a = session.get(Item, "k1")
        savepoint = session.begin_nested()
        session.delete(a)
        session.flush()
        a.name = "changed while deleted"
        savepoint.rollback()
        obs.append(("rolled back", api.state(a), a in session, api.loaded(a)))
        obs.append(("reloaded", a.name))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["rolled back"][1:] == ("persistent", True, [])
    assert facts["reloaded"][1] == "name-k1"


# -- deliberate differences (README, "Deliberate differences") -------------------------


def _row_switch_over_a_vanished_row(api: Api, engine: Engine, obs: Obs) -> None:
    Item = _items(api, engine, "k1")
    session = api.Session(engine)
    a = session.get(Item, "k1")
    session.commit()
    behind_the_back(obs, engine, "DELETE FROM items")
    session.delete(a)
    b = Item(id="k1", name="b")
    session.add(b)
    obs.rec.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.commit()
    obs.append(("commit", take_kinds(obs), api.state(a), api.state(b)))
    obs.append(("rows", _rows(obs, engine)))
    session.close()


def test_row_switch_over_a_vanished_row_inserts_the_new_object(
    engine: Engine, ref_engine: Engine
) -> None:
    """The old object's row is gone: sessionkit INSERTs the new object and keeps it. The
    ORM also INSERTs it, then DELETEs by the same key and so removes the new row while
    the object stays persistent."""
    ours = Obs(SK, engine)
    _row_switch_over_a_vanished_row(SK, engine, ours)
    ours.rec.detach()
    facts = by_label(ours)
    expected = (["BEGIN", "SELECT", "INSERT", "COMMIT"], "detached", "persistent")
    assert facts["commit"][1:] == expected
    assert facts["rows"][1] == [("k1", "b")]

    theirs = Obs(ORM, ref_engine)
    _row_switch_over_a_vanished_row(ORM, ref_engine, theirs)
    theirs.rec.detach()
    ref = by_label(theirs)
    assert ref["commit"][1][:5] == ["BEGIN", "SELECT", "INSERT", "SELECT", "DELETE"]
    assert ref["rows"][1] == []  # the reference lost the new object's row


def test_row_switch_over_an_object_deleted_again_inserts_the_new_object(engine: Engine) -> None:
    """delete() again of an object whose DELETE was flushed, plus a new object with its
    key: the row is known to be gone, so the new object is INSERTed (the ORM UPDATEs a
    row that does not exist and fails)."""
    Item = _items(SK, engine, "k1")
    session = SK.Session(engine)
    a = session.get(Item, "k1")
    session.delete(a)
    session.flush()
    b = Item(id="k1", name="b")
    session.add(b)
    session.delete(a)
    session.commit()
    assert SK.state(b) == "persistent" and SK.state(a) == "detached"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, name FROM items")).all() == [("k1", "b")]


def test_object_a_rollback_pushes_out_of_the_identity_map_is_not_deleted_by_mistake(
    engine: Engine, ref_engine: Engine
) -> None:
    """rollback() puts back an object whose DELETE it undoes; the object an INSERT ...
    RETURNING gave that key in between is pushed out. delete() of it is refused (another
    instance has the key), as in the ORM: accepted, its DELETE would remove the committed
    row of the object put back. Once the session is closed it can be added again.

    Right after the rollback the ORM still calls it persistent though it is not in the
    session; sessionkit calls it detached, as for any object an INSERT pushes out
    (identity-8), so its state is not compared there."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Item = _items(api, engine, "k2")
        session = api.Session(engine, expire_on_commit=False)
        a = session.get(Item, "k2")
        session.delete(a)
        session.flush()
        b = session.scalars(insert(Item).returning(Item), [{"id": "k2", "name": "new"}]).one()
        session.rollback()
        obs.append(("after rollback", a in session, b in session, api.state(a)))
        obs.error("delete b", lambda: session.delete(b))
        session.commit()
        obs.append(("rows", _rows(obs, engine)))
        session.close()
        session.add(b)
        obs.append(("added again", b in session, api.state(b)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["after rollback"][1:] == (True, False, "persistent")
    assert facts["delete b"][1:] == ("raises", "InvalidRequestError")
    assert facts["rows"][1] == [("k2", "name-k2")]
    assert facts["added again"][1:] == (True, "persistent")
