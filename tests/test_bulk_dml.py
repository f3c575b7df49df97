"""ORM-enabled bulk INSERT and UPDATE by primary key through the session
(docs/behaviour.md: bulk-1 ... bulk-4), on sessionkit and on the ORM.

``session.execute(insert(User), [dicts])`` is one executemany per run of dicts with the
same keys; with ``.returning(User)`` the rows become identity-mapped objects.
``session.execute(update(User), [dicts])`` is one executemany UPDATE per run of dicts
with the same keys, matched by primary key, and the objects of those keys take the new
values. The model maps the attribute ``fullname`` onto the column ``full_name``, so that
every rule is also checked where attribute names and column keys differ. The
synchronisation of ``update()``/``delete()`` with a WHERE is in test_bulk_sync.py.

Where sessionkit refuses what the ORM silently ignores (a key that is no attribute), the
test runs on sessionkit alone and says why.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from reference import SK, Api, Obs, compare, run
from sqlalchemy import Column, Engine, Integer, String, insert, select, text, update

from support import by_unique_label, event_kinds, sql_statements

ROWS = (("a", "A", 0), ("b", "B", 1), ("c", "C", 2), ("d", "D", 3))


def bulk_model(api: Api) -> tuple[Any, Any]:
    """``User(id, name, fullname -> column full_name, count)``."""
    Base = api.declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column("full_name", String(60))
        count = Column(Integer)

    return Base, User


def bulk_users(api: Api, engine: Engine, rows: tuple[tuple[str, str, int], ...] = ROWS) -> Any:
    """The table with one committed row per entry (ids 1..n), outside any recording."""
    Base, User = bulk_model(api)
    Base.metadata.create_all(engine)
    if rows:
        with engine.begin() as conn:
            for n, f, c in rows:  # one by one: the database numbers them 1..n
                conn.execute(User.__table__.insert(), {"name": n, "full_name": f, "count": c})
    return User


def facts(api: Api, session: Any, *objs: Any) -> list[Any]:
    """Per object: its loaded values, its state, whether the session holds it."""
    return [(api.visible(o), api.state(o), o in session) for o in objs]


def committed(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        sql = "SELECT id, name, full_name, count FROM user_account ORDER BY id"
        return [tuple(r) for r in conn.execute(text(sql))]


# -- bulk INSERT ------------------------------------------------------------------------------


def test_bulk_insert_is_one_executemany_per_run_of_keys(engine: Engine, ref_engine: Engine) -> None:
    """Attribute names as keys; None is left out (the column's default applies); a change
    of keys starts a new statement; nothing is returned and no object is made."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        result = session.execute(
            insert(User),
            [
                {"name": "a", "fullname": "A"},
                {"name": "b", "fullname": "B"},
                {"name": "c", "fullname": None},
                {"name": "d", "count": 3},
                {"name": "e", "count": 4},
            ],
        )
        obs.sql("insert")
        obs.append(("result", type(result).__name__))
        obs.error("result.all()", result.all)
        obs.append(("identity map", len(session.identity_map), list(session)))
        session.commit()
        obs.append(("rows", committed(engine)))

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    inserts = sql_statements(facts_["insert"][1], "INSERT")
    assert len(inserts) == 3, inserts
    assert facts_["identity map"][1:] == (0, [])


def test_render_nulls(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        stmt = insert(User).execution_options(render_nulls=True)
        session.execute(stmt, [{"name": "a", "fullname": "A"}, {"name": "b", "fullname": None}])
        obs.sql("render_nulls")
        session.commit()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert len(sql_statements(facts_["render_nulls"][1], "INSERT")) == 1


@pytest.mark.parametrize("form", ["list", "one dict", "same keys", "values()"])
def test_insert_returning_objects(engine: Engine, ref_engine: Engine, form: str) -> None:
    """``.returning(User)`` yields persistent, identity-mapped objects."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        stmt = insert(User).returning(User)
        if form == "list":
            result = session.scalars(stmt, [{"name": "a"}, {"name": "b", "fullname": "B"}])
        elif form == "one dict":
            result = session.scalars(stmt, {"name": "a", "fullname": "A"})
        elif form == "same keys":
            result = session.scalars(stmt, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        else:
            result = session.scalars(insert(User).values(name="v", fullname="V").returning(User))
        objs = result.all()
        obs.sql("insert")
        obs.append(("objects", facts(api, session, *objs)))
        obs.append(("get() is them", [session.get(User, o.id) is o for o in objs]))
        obs.sql("get: no SQL")
        obs.append(("dirty", list(session.dirty), list(session.new)))
        session.commit()
        obs.append(("rows", committed(engine)))

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert all(state == "persistent" for _, state, _ in facts_["objects"][1])
    assert facts_["get: no SQL"][1] == []


def test_insert_returning_columns(engine: Engine, ref_engine: Engine) -> None:
    """Columns, labels, functions and the class mixed: the primary key comes first in
    RETURNING, the rows have what was asked for, in its order."""
    from sqlalchemy import func

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        rows = [{"name": "a", "fullname": "A"}, {"name": "b", "fullname": "B"}]
        for label, stmt in [
            ("columns", insert(User).returning(User.count, User.id)),
            ("name only", insert(User).returning(User.name)),
            (
                "label and function",
                insert(User).returning(User.name.label("n"), func.upper(User.name)),
            ),
            ("class and column", insert(User).returning(User, User.name)),
            ("column and class", insert(User).returning(User.count, User)),
            ("table", insert(User).returning(User.__table__)),
        ]:
            result = session.execute(stmt, rows)
            obs.append((label, list(result.keys())))
            got = result.all()
            obs.sql(label + ": SQL")
            obs.append(
                (
                    label + ": rows",
                    [
                        tuple(
                            facts(api, session, v)[0] if hasattr(v, "__table__") else v for v in r
                        )
                        for r in got
                    ],
                )
            )
        session.rollback()

    compare(scen, engine, ref_engine)


def test_insert_returning_sorted_by_parameter_order(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        stmt = insert(User).returning(User, sort_by_parameter_order=True)
        objs = session.scalars(stmt, [{"name": n} for n in "xyz"]).all()
        obs.sql("insert")
        obs.append(("names in order", [o.name for o in objs]))
        session.rollback()

    compare(scen, engine, ref_engine)


def test_insert_returning_meets_the_identity_map(engine: Engine, ref_engine: Engine) -> None:
    """A returned row whose key the session already holds gives the object it holds,
    its loaded values unchanged; ``populate_existing`` overwrites them."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        session.connection().execute(User.__table__.delete().where(User.__table__.c.id < 3))
        obs.rec.clear()
        objs = session.scalars(insert(User).returning(User), [{"id": 1, "name": "new a"}]).all()
        obs.sql("insert over a loaded key")
        obs.append(("same object", objs[0] is a, facts(api, session, a)))
        stmt = insert(User).returning(User).execution_options(populate_existing=True)
        objs = session.scalars(stmt, [{"id": 2, "name": "new b"}]).all()
        obs.append(("populate_existing", objs[0] is b, facts(api, session, b)))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["same object"][1] is True
    assert facts_["same object"][2][0][0]["name"] == "a"
    assert facts_["populate_existing"][2][0][0]["name"] == "new b"


def test_insert_without_parameters(engine: Engine, ref_engine: Engine) -> None:
    """No parameters, or an empty list: one INSERT as written (``DEFAULT VALUES``)."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        result = session.execute(insert(User), [])
        obs.sql("empty list")
        obs.append(("inserted_primary_key", tuple(result.inserted_primary_key)))
        session.execute(insert(User).values(fullname="F"))
        obs.sql("values()")
        session.commit()
        obs.append(("rows", committed(engine)))

    compare(scen, engine, ref_engine)


def test_insert_synchronize_session_is_ignored(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        obs.rec.clear()
        opts = {"synchronize_session": "bogus"}
        session.execute(insert(User), [{"name": "a"}], execution_options=opts)
        obs.sql("insert")
        session.rollback()

    compare(scen, engine, ref_engine)


def test_insert_autoflushes_first(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        session.get(User, 1).name = "changed"
        session.add(User(name="pending"))
        obs.rec.clear()
        session.execute(insert(User), [{"name": "bulk"}])
        obs.sql("autoflush, then the INSERT")
        session.get(User, 1).name = "again"
        opts = {"autoflush": False}
        session.execute(insert(User), [{"name": "bulk 2"}], execution_options=opts)
        obs.sql("autoflush=False")
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    kinds = event_kinds(facts_["autoflush, then the INSERT"][1])
    assert kinds == ["BEGIN", "SELECT", "UPDATE", "INSERT", "INSERT"] or kinds[-1] == "INSERT"


def test_unknown_key_is_refused() -> None:
    """sessionkit only: the ORM drops a key that names no attribute (a typo, or a column
    key such as ``full_name`` where the attribute is ``fullname``) and inserts the row
    without it; sessionkit refuses the statement before any SQL and names the key."""
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    User = bulk_users(SK, engine, ())
    session = SK.Session(engine)
    for bad, words in (({"name": "a", "nmae": 1}, "'nmae'"), ({"full_name": "A"}, "'fullname'")):
        with pytest.raises(sa_exc.InvalidRequestError, match=words):
            session.execute(insert(User), [bad])
    assert not session.in_transaction() or session.connection() is not None
    assert session.scalars(select(User)).all() == []


# -- UPDATE by primary key --------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["auto", "evaluate", False, None])
def test_update_by_primary_key(engine: Engine, ref_engine: Engine, sync: Any) -> None:
    """One executemany per run of keys; the objects of those keys take the new values
    (loaded, unchanged attributes), or not with ``synchronize_session=False``."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, (*ROWS, ("e", "E", 4)))
        session = api.Session(engine)
        a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
        session.expire(b, ["name"])
        session.expire(c)
        obs.rec.clear()
        result = session.execute(
            update(User),
            [
                {"id": 1, "name": "A1", "fullname": "FA"},
                {"id": 2, "name": "B1", "fullname": "FB"},
                {"id": 3, "name": "C1"},
                {"id": 5, "fullname": None},  # no object; NULL is written
                {"id": 4},  # nothing to set: skipped
            ],
            execution_options={"synchronize_session": sync},
        )
        obs.sql("update")
        obs.append(("result", type(result).__name__))
        obs.append(("objects", facts(api, session, a, b, c, d)))
        obs.append(("get() of the wholly expired one", session.get(User, 3) is c))
        obs.sql("get()")
        obs.append(("read", a.name, b.name, c.name, c.fullname, d.name))
        obs.sql("reads")
        session.commit()
        obs.append(("rows", committed(engine)))

    compare(scen, engine, ref_engine)


def test_update_by_primary_key_errors(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        obs.error(
            "fetch",
            lambda: session.execute(
                update(User),
                [{"id": 1, "name": "x"}],
                execution_options={"synchronize_session": "fetch"},
            ),
        )
        obs.error(
            "missing key",
            lambda: session.execute(update(User), [{"id": 1, "name": "x"}, {"name": "y"}]),
        )
        obs.sql("no SQL")
        obs.error(
            "no row",
            lambda: session.execute(
                update(User), [{"id": 1, "name": "x"}, {"id": 99, "name": "y"}]
            ),
        )
        obs.sql("StaleDataError after the UPDATE")
        obs.append(("a untouched", facts(api, session, a)))
        obs.error(
            "with WHERE",
            lambda: session.execute(update(User).where(User.count < 3), [{"id": 1, "name": "w"}]),
        )
        session.rollback()
        a = session.get(User, 1)
        obs.rec.clear()
        opts = {"synchronize_session": False}
        stmt = update(User).where(User.count < 3)
        session.execute(
            stmt, [{"id": 1, "name": "w"}, {"id": 4, "name": "w"}], execution_options=opts
        )
        obs.sql("with WHERE, synchronize_session=False: no row count check")
        obs.append(("a", facts(api, session, a)))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["fetch"][1:] == ("raises", "InvalidRequestError")
    assert facts_["missing key"][1:] == ("raises", "InvalidRequestError")
    assert facts_["no row"][1:] == ("raises", "StaleDataError")


def test_update_by_primary_key_with_values(engine: Engine, ref_engine: Engine) -> None:
    """``update(User).values(...)`` with dicts: the values() go to every row, one
    statement per row."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        session.execute(
            update(User).values(count=7), [{"id": 1, "name": "A2"}, {"id": 2, "name": "B2"}]
        )
        obs.sql("update")
        obs.append(("objects", facts(api, session, a, b)))
        session.commit()
        obs.append(("rows", committed(engine)))

    compare(scen, engine, ref_engine)


def test_update_by_primary_key_of_changed_objects(engine: Engine, ref_engine: Engine) -> None:
    """Without autoflush, an attribute changed and not flushed is expired (its value is
    neither the change nor the row's), the others take the new values."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        a.name = "mine"
        obs.rec.clear()
        with session.no_autoflush:
            session.execute(update(User), [{"id": 1, "name": "bulk", "count": 50}])
        obs.sql("update")
        obs.append(("a", facts(api, session, a), a in session.dirty))
        session.flush()
        obs.sql("flush")
        obs.append(("read", a.name, a.count))
        session.rollback()

    compare(scen, engine, ref_engine)


def test_bulk_delete_is_refused(engine: Engine, ref_engine: Engine) -> None:
    from sqlalchemy import bindparam, delete

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        session.get(User, 1).name = "changed"
        obs.rec.clear()
        stmt = delete(User).where(User.id == bindparam("x"))
        err = obs.error("delete", lambda: session.execute(stmt, [{"x": 1}]))
        obs.append(("message", str(err).startswith("Bulk ORM DELETE not supported right now.")))
        obs.sql("autoflush, no DELETE")
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["delete"][1:] == ("raises", "InvalidRequestError")


# -- attribute names and plain tables ---------------------------------------------------------


def test_attribute_names_in_values(engine: Engine, ref_engine: Engine) -> None:
    """``values(fullname=...)`` names the attribute; the column object works too."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        session.execute(update(User).where(User.id == 1).values(fullname="F1"))
        obs.append(("by attribute", facts(api, session, a)))
        session.execute(update(User).where(User.id == 1).values({User.__table__.c.full_name: "F2"}))
        obs.append(("by column", facts(api, session, a)))
        session.execute(insert(User).values(fullname="F3", name="n"))
        session.execute(insert(User).values([{"fullname": "F4"}, {"fullname": "F5"}]))
        obs.sql("statements")
        session.commit()
        obs.append(("rows", committed(engine)))

    compare(scen, engine, ref_engine)


def test_plain_table_dml_stays_core(engine: Engine, ref_engine: Engine) -> None:
    """DML on the ``Table`` is Core's: no synchronisation, the rows as Core returns them."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        t = User.__table__
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        session.execute(update(t).where(t.c.id == 1).values(name="core"))
        session.execute(t.delete().where(t.c.id == 2))
        rows = session.execute(t.insert().returning(t.c.id), [{"name": "x"}, {"name": "y"}]).all()
        obs.sql("core statements")
        obs.append(("a untouched", facts(api, session, a), [tuple(r) for r in rows]))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["a untouched"][1][0][0]["name"] == "a"


def test_same_objects_as_a_sessionkit_run() -> None:
    """A smoke check of the entry point's cheap dispatch: a select() runs as before."""
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    obs = run(SK, engine, lambda api, e, o: o.append(("ok", bulk_users(api, e) is not None)))
    assert obs[0] == ("ok", True)


def test_returned_objects_after_rollback(sp_engine: Engine, sp_ref_engine: Engine) -> None:
    """Objects made by INSERT .. RETURNING are loaded objects, not flushed ones: a rollback
    expires them like every persistent object (their rows are gone, so a read raises
    ObjectDeletedError), in both libraries."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine, ())
        session = api.Session(engine)
        [a] = session.scalars(insert(User).returning(User), [{"name": "a"}]).all()
        session.rollback()
        obs.append(("after rollback", facts(api, session, a)))
        obs.error("read", lambda: a.name)
        session.close()

    facts_ = by_unique_label(compare(scen, sp_engine, sp_ref_engine))
    assert facts_["read"][1:] == ("raises", "ObjectDeletedError")


def test_savepoint_rollback_expires_what_an_update_by_key_changed() -> None:
    """sessionkit only: rolling back a SAVEPOINT expires the objects an UPDATE by primary
    key changed inside it, as it does for every other change made inside it. The ORM does
    not record them, so they keep the rolled back values."""
    from sqlalchemy import create_engine

    from support import with_real_savepoints

    engine = with_real_savepoints(create_engine("sqlite://"))
    User = bulk_users(SK, engine)
    session = SK.Session(engine)
    a = session.get(User, 1)
    sp = session.begin_nested()
    session.execute(update(User), [{"id": 1, "name": "inside"}])
    assert a.__dict__["name"] == "inside"
    sp.rollback()
    assert "name" not in a.__dict__
    assert a.name == "a"
