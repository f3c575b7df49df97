"""The three seed stories, each run on sessionkit and on the SQLAlchemy ORM.

Every scenario records the transaction events and SQL the engine sees, which column keys
are in ``obj.__dict__``, ``obj in session``, the ``inspect()`` state and error classes;
the two libraries must record the same thing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from models import setup_users
from reference import ORM, SK, Api, Obs, compare, run
from sqlalchemy import Column, Engine, Integer, String, select

# -- 1. Rolling back ------------------------------------------------------------------------


def rolling_back(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    session = api.Session(engine)
    session.rollback()
    obs.sql("rollback with no transaction: nothing")

    sandy = session.get(User, 1)
    patrick = session.get(User, 2)
    squidward = session.get(User, 3)
    obs.sql("loads")
    sandy.fullname = "Sandy Squirrel"
    session.delete(patrick)
    fake = User(name="fakeuser", fullname="Invalid")
    session.add(fake)
    session.flush()
    obs.sql("flush: update, insert, delete")
    obs.append(("fake id assigned", fake.id))
    pending = User(name="pending")
    session.add(pending)
    obs.append(("deleted patrick", patrick in session, api.state(patrick)))

    session.rollback()
    obs.sql("rollback emits ROLLBACK")
    for label, o in [("sandy", sandy), ("patrick", patrick), ("squidward", squidward)]:
        obs.append((label, api.loaded(o), o in session, api.state(o)))
    obs.append(("fake", api.visible(fake), fake in session, api.state(fake)))
    obs.append(("pending", api.visible(pending), pending in session, api.state(pending)))
    obs.append(("collections", list(session.new), list(session.dirty), list(session.deleted)))

    obs.append(("reload", sandy.fullname))
    obs.sql("expired read: BEGIN (implicit) + one SELECT by primary key")
    obs.append(("after reload", api.visible(sandy)))
    again = session.execute(select(User).where(User.name == "patrick")).scalar_one()
    obs.append(("query returns the identical object", again is patrick))
    obs.sql("query")

    sandy.name = "changed"
    session.commit()
    obs.sql("commit")
    sandy.name = "only in memory"
    session.rollback()
    obs.sql("rollback of a session transaction without a connection: no ROLLBACK")
    obs.append(("expired anyway", api.loaded(sandy)))
    obs.append(("committed value", sandy.name))
    session.close()
    obs.sql("close")


def test_rolling_back(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(rolling_back, engine, ref_engine)
    # Spot-check the recorded facts so a bug shared by both runs cannot hide.
    facts = {o[0]: o for o in obs}
    assert facts["rollback with no transaction: nothing"][1] == []
    assert [e[0] for e in facts["rollback emits ROLLBACK"][1]] == ["ROLLBACK"]
    read = facts["expired read: BEGIN (implicit) + one SELECT by primary key"][1]
    assert [e[0] for e in read] == ["BEGIN", "SQL"]
    assert read[1][1].startswith("SELECT user_account.id, user_account.name, user_account.fullname")
    assert "WHERE user_account.id = " in read[1][1]
    assert facts["sandy"][1:] == ([], True, "persistent")
    assert facts["patrick"][1:] == ([], True, "persistent")
    assert facts["fake"][2:] == (False, "transient")
    assert "id" in facts["fake"][1]
    assert facts["pending"][2:] == (False, "transient")
    assert facts["after reload"][1] == {"id": 1, "name": "sandy", "fullname": "Sandy"}
    assert facts["query returns the identical object"][1] is True
    no_rollback = facts["rollback of a session transaction without a connection: no ROLLBACK"]
    assert no_rollback[1] == []
    assert facts["committed value"][1] == "changed"


# -- 2. The transaction-rollback program ---------------------------------------------------


def transaction_rollback_program(api: Api, engine: Engine, obs: Obs) -> None:
    Base = api.declarative_base()

    class User(Base):
        __tablename__ = "user"
        id = Column(String(20), primary_key=True)
        name = Column(String(20))

    Base.metadata.create_all(engine)
    obs.rec.clear()
    DBSession = api.sessionmaker(bind=engine)
    session = DBSession()
    first, second = User(id="5", name="lilei"), User(id="5", name="lucy")
    session.add(first)
    session.add(second)
    obs.append(("both pending", api.state(first), api.state(second), len(session.new)))
    session.rollback()
    obs.sql("duplicate pending keys then rollback: no SQL, no error")
    obs.append(("both transient", api.state(first), api.state(second)))

    user = User(id="7", name="hanmeimei")
    session.add(user)
    session.commit()
    obs.sql("add + commit")
    found = session.query(User).filter(User.id == "7").one()
    obs.append(("found", type(found).__name__, found is user, found.name))
    obs.sql("query")
    session.close()
    obs.sql("close")


def test_transaction_rollback_program(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(transaction_rollback_program, engine, ref_engine)
    facts = {o[0]: o for o in obs}
    assert facts["duplicate pending keys then rollback: no SQL, no error"][1] == []
    commit = facts["add + commit"][1]
    assert [e[0] for e in commit] == ["BEGIN", "SQL", "COMMIT"]
    assert re.match(r'INSERT INTO "?user"? \(id, name\) VALUES', commit[1][1])
    assert commit[1][2] == ("7", "hanmeimei")
    assert facts["found"][1:] == ("User", True, "hanmeimei")
    assert [e[0] for e in facts["close"][1]] == ["ROLLBACK"]


_TIMING = re.compile(r"\[(generated in|cached since|no key)[^\]]*\]")


def _echo_log(api: Api, engine: Engine, caplog: pytest.LogCaptureFixture) -> list[str]:
    engine.echo = True
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        run(api, engine, transaction_rollback_program)
    engine.echo = False
    lines = [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]
    lines = [_TIMING.sub("[...]", line) for line in lines]
    # Skip the DDL: keep what follows the CREATE TABLE's COMMIT.
    start = max(i for i, line in enumerate(lines) if line.lstrip().startswith("CREATE TABLE"))
    return lines[start + 3 :]


def test_echo_log_matches_reference(
    engine: Engine, ref_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ours = _echo_log(SK, engine, caplog)
    theirs = _echo_log(ORM, ref_engine, caplog)
    assert ours == theirs
    assert "BEGIN (implicit)" in ours and "COMMIT" in ours and ours[-1] == "ROLLBACK"
    assert any(line == "[...] ('7', 'hanmeimei')" or "'hanmeimei'" in line for line in ours)


# -- 3. Closing a session ------------------------------------------------------------------


def closing(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    session = api.Session(engine)
    session.close()
    obs.sql("close with no transaction: nothing", pool=True)

    sandy = session.get(User, 1)
    obs.append(("sandy loaded", api.visible(sandy)))
    newbie = User(name="newbie")
    session.add(newbie)
    obs.rec.clear()
    session.close()
    obs.sql("close ends the transaction", pool=True)
    obs.append(("checked out", engine.pool.checkedout()))
    obs.append(("sandy", api.state(sandy), sandy in session, api.inspect(sandy).session is None))
    obs.append(("newbie", api.state(newbie), newbie in session))
    obs.append(("loaded values stay readable", sandy.name, sandy.fullname))
    obs.sql("reading loaded values of a detached object: no SQL")

    session.add(sandy)
    sandy.name = "sandy2"
    session.commit()
    obs.sql("re-attached and committed")
    session.close()
    obs.append(("expired and detached", api.state(sandy), api.loaded(sandy)))
    err = obs.error("expired read on a detached object", lambda: sandy.name)
    obs.append(("message start", re.sub("0x[0-9a-f]+", "0x...", str(err).split(";")[0])))
    obs.sql("the failed read emitted nothing")

    session.add(sandy)
    obs.sql("re-add: no SQL")
    obs.append(("re-added", api.state(sandy), sandy in session, sandy in session.new))
    obs.append(("read after re-add", sandy.name))
    obs.sql("BEGIN (implicit) + SELECT")
    session.close()


def test_closing(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(closing, engine, ref_engine)
    facts = {o[0]: o for o in obs}
    assert facts["close with no transaction: nothing"][1] == []
    assert [e[0] for e in facts["close ends the transaction"][1]] == ["ROLLBACK", "checkin"]
    assert facts["checked out"][1] == 0
    assert facts["sandy"][1:] == ("detached", False, True)
    assert facts["newbie"][1:] == ("transient", False)
    assert facts["reading loaded values of a detached object: no SQL"][1] == []
    assert facts["expired read on a detached object"][2] == "DetachedInstanceError"
    assert facts["re-add: no SQL"][1] == []
    assert [e[0] for e in facts["BEGIN (implicit) + SELECT"][1]] == ["BEGIN", "SQL"]


def test_detached_error_goes_beyond_the_reference(engine: Engine) -> None:
    User = setup_users(SK, engine)
    session = SK.Session(engine)
    sandy = session.get(User, 1)
    session.commit()
    session.close()
    with pytest.raises(SK.DetachedInstanceError) as info:
        _ = sandy.fullname
    message = str(info.value)
    assert message.startswith(
        f"Instance <User at {hex(id(sandy))}> is not bound to a Session; attribute refresh "
        "operation cannot proceed"
    )
    assert "'fullname'" in message
    assert "commit" in message
    assert "session.add(obj)" in message
    assert "expire_on_commit=False" in message
    assert message.endswith("(Background on this error at: https://sqlalche.me/e/21/bhk3)")

    # The cause is named for rollback() and expire() too.
    session.add(sandy)
    session.rollback()
    session.close()
    with pytest.raises(SK.DetachedInstanceError, match=r"rollback\(\)"):
        _ = sandy.name
    session.add(sandy)
    session.expire(sandy, ["name"])
    session.expunge(sandy)
    with pytest.raises(SK.DetachedInstanceError, match=r"expire\(\)"):
        _ = sandy.name


def expire_on_commit_false(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    session = api.Session(engine, expire_on_commit=False)
    sandy = session.get(User, 1)
    sandy.name = "sandy2"
    session.commit()
    obs.append(("after commit", api.visible(sandy), api.inspect(sandy).modified))
    session.close()
    obs.append(("after close", api.state(sandy), sandy.name, sandy.fullname))
    obs.sql("no SQL for reads")


def test_expire_on_commit_false(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(expire_on_commit_false, engine, ref_engine)
    assert obs[-2] == ("after close", "detached", "sandy2", "Sandy")


def context_managers(api: Api, engine: Engine, obs: Obs) -> None:
    User = setup_users(api, engine)
    obs.rec.clear()
    with api.Session(engine) as s:
        s.add(User(name="never committed"))
        s.flush()
    obs.sql("with Session(): closes, never commits")

    with api.Session(engine) as s, s.begin():
        s.add(User(name="committed"))
    obs.sql("with s.begin(): commits")

    s = api.Session(engine)

    def failing() -> None:
        with s.begin():
            s.add(User(name="rolled back"))
            s.flush()
            raise KeyError("boom")

    obs.error("with s.begin() re-raises", failing)
    obs.sql("and rolls back")
    obs.append(("in transaction after", s.in_transaction()))

    maker = api.sessionmaker(engine)
    with maker.begin() as s2:
        s2.add(User(name="from maker"))
    obs.sql("sessionmaker.begin(): commits and closes")
    obs.append(("checked out", engine.pool.checkedout()))

    def failing_maker() -> None:
        with maker.begin() as s3:
            s3.add(User(name="maker rolled back"))
            s3.flush()
            raise ValueError("boom")

    obs.error("sessionmaker.begin() re-raises", failing_maker)
    obs.sql("and rolls back")
    with api.Session(engine) as check:
        names = check.scalars(select(User.name).order_by(User.id)).all()
    obs.append(("rows", names))


def test_context_managers(engine: Engine, ref_engine: Engine) -> None:
    obs = compare(context_managers, engine, ref_engine)
    assert obs[-1] == ("rows", ["sandy", "patrick", "squidward", "committed", "from maker"])
    kinds = [[e[0] for e in o[1]] for o in obs if o[0] == "with Session(): closes, never commits"]
    assert kinds == [["BEGIN", "SQL", "ROLLBACK"]]


@pytest.mark.parametrize("api", [SK, ORM], ids=["sessionkit", "orm"])
def test_issue_example_runs(api: Api, engine: Engine) -> None:
    """The README's first example, as a new user would type it."""
    import sqlalchemy as sa

    app_metadata = sa.MetaData()
    accounts_table = sa.Table(
        "accounts",
        app_metadata,
        Column("id", Integer, primary_key=True),
        Column("owner", String(30)),
    )
    Base = api.declarative_base(metadata=app_metadata)

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column(String(60))

    class Account(Base):
        __table__ = accounts_table

    Base.metadata.create_all(engine)
    assert set(app_metadata.tables) == {"accounts", "user_account"}
    with api.Session(engine) as session:
        session.add_all(
            [
                User(name="sandy", fullname="Sandy Cheeks"),
                User(name="patrick", fullname="Patrick Star"),
                Account(owner="sandy"),
            ]
        )
        session.commit()
        sandy = session.execute(select(User).where(User.name == "sandy")).scalar_one()
        same = session.get(User, sandy.id)
        assert same is sandy
        legacy = session.query(User).filter(User.id == 2).one()
        assert legacy.name == "patrick"
        acct: Any = session.scalars(select(Account)).one()
        assert acct.owner == "sandy"
