"""SAVEPOINTs (docs/behaviour.md: savepoint-1 … savepoint-3, savepoint-5, savepoint-6),
compared with the reference. SQLite runs with pysqlite's "real BEGIN/SAVEPOINT" setup, as
both libraries' documentation recommends for savepoints on SQLite; joining an application's
transaction is in test_join_connection.py."""

from __future__ import annotations

from models import item_model, setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine, select

from support import step_kinds, user_names

# -- savepoint-1, savepoint-2 ---------------------------------------------------------------


def savepoint_rollback(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine, ("sandy", "patrick", "squidward", "gary"))
    obs.rec.clear()
    s = api.Session(engine)
    sandy, patrick, squidward, gary = (s.get(User, i) for i in (1, 2, 3, 4))
    early = User(name="early")
    s.add(early)
    obs.sql("loads")
    nested = s.begin_nested()
    obs.sql("begin_nested flushes pending work first; SAVEPOINT not yet emitted")
    obs.append(("early flushed", api.state(early)))
    sandy.name = "sandy in savepoint"
    s.delete(patrick)
    inside = User(name="inside")
    s.add(inside)
    s.flush()
    squidward.fullname = "unflushed change"
    obs.sql("SAVEPOINT with the first SQL inside it")
    nested.rollback()
    obs.sql("ROLLBACK TO SAVEPOINT")
    obs.append(("sandy (flushed update)", api.loaded(sandy), api.state(sandy)))
    obs.append(("patrick (deleted inside)", api.loaded(patrick), api.state(patrick), patrick in s))
    obs.append(("inside (inserted)", api.state(inside), "id" in api.visible(inside)))
    obs.append(("squidward (dirty)", api.loaded(squidward)))
    obs.append(("gary (untouched)", api.loaded(gary)))
    obs.append(("early (before savepoint)", api.loaded(early), api.state(early)))
    obs.append(("outer still open", s.in_transaction(), s.in_nested_transaction()))
    obs.append(("reload", sandy.name, squidward.fullname))
    obs.sql("reloads")
    s.commit()
    obs.sql("outer commit")
    obs.append(("rows", user_names(api, engine, User)))


def test_savepoint1_savepoint2_savepoint_rollback_touches_only_what_changed_inside(
    sp_engine: Engine, sp_ref_engine: Engine
) -> None:
    obs = compare(savepoint_rollback, sp_engine, sp_ref_engine)
    facts = {o[0]: o for o in obs}
    assert "SAVEPOINT" not in step_kinds(
        obs, "begin_nested flushes pending work first; SAVEPOINT not yet emitted"
    )
    assert "INSERT" in step_kinds(
        obs, "begin_nested flushes pending work first; SAVEPOINT not yet emitted"
    )
    assert step_kinds(obs, "SAVEPOINT with the first SQL inside it")[:2] == [
        "SAVEPOINT",
        "SAVEPOINT",
    ]
    assert step_kinds(obs, "ROLLBACK TO SAVEPOINT")[0] == "ROLLBACK TO SAVEPOINT"
    assert facts["sandy (flushed update)"][1] == []
    assert facts["patrick (deleted inside)"][2:] == ("persistent", True)
    assert facts["patrick (deleted inside)"][1] == ["fullname", "id", "name"]
    assert facts["inside (inserted)"][1:] == ("transient", True)
    assert facts["squidward (dirty)"][1] == []
    assert facts["gary (untouched)"][1] == ["fullname", "id", "name"]
    assert facts["reload"][1:] == ("sandy", "Squidward")
    assert facts["rows"][1] == ["sandy", "patrick", "squidward", "gary", "early"]


def empty_savepoint(api: Api, engine: Engine, obs: Obs) -> None:
    setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    obs.append(("before", s.in_transaction()))
    n = s.begin_nested()
    obs.append(("autobegun", s.in_transaction(), s.in_nested_transaction()))
    n.commit()
    s.commit()
    obs.sql("an empty savepoint emits nothing")


def test_savepoint1_empty_savepoint_emits_nothing(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    obs = compare(empty_savepoint, sp_engine, sp_ref_engine)
    assert obs[-1] == ("an empty savepoint emits nothing", [])


# -- savepoint-3 ----------------------------------------------------------------------------


def savepoint_context_manager(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    sandy = s.get(User, 1)
    with s.begin_nested():
        sandy.name = "released"
    obs.sql("success: RELEASE SAVEPOINT")
    obs.append(("nothing expired", api.loaded(sandy)))

    def failing() -> None:
        with s.begin_nested():
            s.add(User(name="doomed"))
            s.flush()
            raise KeyError("boom")

    obs.error("exception re-raised", failing)
    obs.sql("exception: ROLLBACK TO SAVEPOINT")
    s.commit()
    obs.append(("rows", user_names(api, engine, User)))


def test_savepoint3_begin_nested_context_manager(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    obs = compare(savepoint_context_manager, sp_engine, sp_ref_engine)
    assert "RELEASE SAVEPOINT" in step_kinds(obs, "success: RELEASE SAVEPOINT")
    assert "ROLLBACK TO SAVEPOINT" in step_kinds(obs, "exception: ROLLBACK TO SAVEPOINT")
    assert obs[-1] == ("rows", ["released", "patrick", "squidward"])


# -- savepoint-5 ----------------------------------------------------------------------------


def failed_flush_in_savepoint(api: Api, engine: Engine, obs: Obs) -> None:
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s0:
        s0.add(Item(id="1", name="one"))
        s0.commit()
    obs.rec.clear()
    s = api.Session(engine)
    s.add(Item(id="2", name="two"))
    nested = s.begin_nested()
    s.add(Item(id="3", name="one"))  # violates UNIQUE(name)
    obs.error("flush fails", s.flush)
    obs.sql("ROLLBACK TO SAVEPOINT at once")
    obs.error("session needs the savepoint's rollback", lambda: s.get(Item, "2"))
    nested.rollback()
    obs.sql("savepoint rollback: no further SQL")
    s.add(Item(id="4", name="four"))
    s.commit()
    obs.sql("outer transaction continues and commits")
    with api.Session(engine) as check:
        obs.append(("rows", list(check.scalars(select(Item.id).order_by(Item.id)))))


def test_savepoint5_failed_flush_inside_savepoint(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    obs = compare(failed_flush_in_savepoint, sp_engine, sp_ref_engine)
    facts = {o[0]: o for o in obs}
    assert facts["flush fails"][2] == "IntegrityError"
    assert "ROLLBACK TO SAVEPOINT" in step_kinds(obs, "ROLLBACK TO SAVEPOINT at once")
    assert facts["session needs the savepoint's rollback"][2] == "PendingRollbackError"
    assert facts["savepoint rollback: no further SQL"][1] == []
    assert facts["rows"][1] == ["1", "2", "4"]


# -- savepoint-6 ----------------------------------------------------------------------------


def session_rollback_while_nested(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    s.add(User(name="outer"))
    s.begin_nested()
    s.add(User(name="inner"))
    s.flush()
    s.rollback()
    obs.sql("session.rollback() rolls back everything")
    obs.append(("after", s.in_transaction(), user_names(api, engine, User)))
    s.add(User(name="outer2"))
    s.begin_nested()
    s.add(User(name="inner2"))
    s.commit()
    obs.sql("session.commit() releases and commits")
    obs.append(("rows", user_names(api, engine, User)))


def test_savepoint6_session_rollback_and_commit_while_nested(
    sp_engine: Engine, sp_ref_engine: Engine
) -> None:
    obs = compare(session_rollback_while_nested, sp_engine, sp_ref_engine)
    commit = step_kinds(obs, "session.commit() releases and commits")
    assert commit[-3:] == ["RELEASE SAVEPOINT", "RELEASE", "COMMIT"]
    assert obs[-1][1][-2:] == ["outer2", "inner2"]
    assert "outer" not in obs[-1][1]


def nested_levels(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    s = api.Session(engine)
    with s.begin_nested():
        s.add(User(name="level1"))
        try:
            with s.begin_nested():
                s.add(User(name="level2"))
                s.flush()
                raise ValueError("inner")
        except ValueError:
            obs.append(("inner rolled back", s.in_nested_transaction()))
    s.commit()
    obs.sql("two levels")
    obs.append(("rows", user_names(api, engine, User)))


def test_savepoint3_nested_context_managers(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    obs = compare(nested_levels, sp_engine, sp_ref_engine)
    assert obs[-1][1] == ["sandy", "patrick", "squidward", "level1"]
