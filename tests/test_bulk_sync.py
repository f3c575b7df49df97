"""``update()`` / ``delete()`` of a mapped class with a WHERE, and the objects of the
session (docs/behaviour.md: bulk-5 ... bulk-9), on sessionkit and on the ORM.

Every synchronize_session strategy runs against the same identity map: an object the
WHERE matches, one it does not, a wholly expired one and one with an attribute expired.
The SQL (RETURNING, or a SELECT first on MariaDB, whose UPDATE has no RETURNING), the
objects' values, states and membership, and what later reads and commit() do are compared
with the ORM.

Where sessionkit deliberately does better than the ORM (an object whose match cannot be
evaluated, a ``bindparam()`` valued at execute(), a SET key that names a column instead of
an attribute, a primary key changed by values()) the test runs on sessionkit alone and says
what the ORM does instead.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine, bindparam, create_engine, delete, event, func, insert, select, update
from test_bulk_dml import ROWS, bulk_users, committed, facts

from support import by_unique_label, event_kinds, sql_statements

STRATEGIES = ["auto", "evaluate", "fetch", False]


def _four(api: Api, session: Any, User: Any) -> tuple[Any, ...]:
    """a, b loaded; c wholly expired; d with ``fullname`` expired."""
    a, b, c, d = (session.get(User, i) for i in (1, 2, 3, 4))
    session.expire(c)
    session.expire(d, ["fullname"])
    return a, b, c, d


@pytest.mark.parametrize("sync", STRATEGIES)
def test_update(engine: Engine, ref_engine: Engine, sync: Any) -> None:
    """Matched objects take the new values (``count + 10`` evaluated per object), the
    others keep theirs; "fetch" also reaches the wholly expired object."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b, c, d = _four(api, session, User)
        obs.rec.clear()
        stmt = update(User).where(User.count != 1).values(count=User.count + 10, name="z")
        result = session.execute(stmt, execution_options={"synchronize_session": sync})
        obs.sql("update")
        obs.append(("rowcount", result.rowcount))
        obs.append(("objects", facts(api, session, a, b, c, d)))
        obs.append(("dirty", sorted(o.id for o in session.dirty)))
        obs.append(("get() of c", session.get(User, 3) is c))
        obs.sql("get() of c: SQL")
        obs.append(("reads", [(o.name, o.count, o.fullname) for o in (a, b, c, d)]))
        obs.sql("reads: SQL")
        session.commit()
        obs.append(("rows", committed(engine)))

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["rowcount"][1] == 3
    statements = [sql for sql, _ in sql_statements(facts_["update"][1])]
    if sync == "fetch" and engine.dialect.update_returning:
        assert len(statements) == 1 and "RETURNING" in statements[0], statements
    elif sync == "fetch":  # MariaDB: the matched keys are SELECTed first
        assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE"], statements
    else:
        assert len(statements) == 1 and "RETURNING" not in statements[0], statements
    objects = facts_["objects"][1]
    if sync is False:
        assert objects[0][0]["name"] == "a"
    else:
        assert objects[0][0] == {"id": 1, "name": "z", "fullname": "A", "count": 10}
        assert objects[1][0]["name"] == "b"  # not matched
    assert objects[2][0] == {}  # wholly expired: fetch updates only what is loaded


@pytest.mark.parametrize("sync", STRATEGIES)
def test_delete(engine: Engine, ref_engine: Engine, sync: Any) -> None:
    """Matched objects become *deleted* (out of the session), detached at commit; a
    wholly expired object is only reached by "fetch"."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b, c, d = _four(api, session, User)
        obs.rec.clear()
        stmt = delete(User).where(User.count.in_([0, 2, 3]))
        result = session.execute(stmt, execution_options={"synchronize_session": sync})
        obs.sql("delete")
        obs.append(("rowcount", result.rowcount))
        obs.append(("objects", facts(api, session, a, b, c, d)))
        obs.append(("was_deleted", [api.inspect(o).was_deleted for o in (a, b, c, d)]))
        session.commit()
        obs.append(("after commit", [(api.state(o), o in session) for o in (a, b, c, d)]))
        obs.append(("rows", committed(engine)))

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    states = [state for _, state, _ in facts_["objects"][1]]
    if sync is False:
        assert states == ["persistent"] * 4
    elif sync == "fetch":
        assert states == ["deleted", "persistent", "deleted", "deleted"]
    else:  # the wholly expired c is not evaluated
        assert states == ["deleted", "persistent", "persistent", "deleted"]


@pytest.mark.parametrize("sync", ["evaluate", "fetch"])
def test_delete_then_rollback(sp_engine: Engine, sp_ref_engine: Engine, sync: str) -> None:
    """Rolled back (also to a SAVEPOINT), the deleted objects are persistent again;
    objects updated inside a SAVEPOINT are expired by its rollback."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        opts = {"synchronize_session": sync}
        sp = session.begin_nested()
        session.execute(delete(User).where(User.id == 1), execution_options=opts)
        session.execute(update(User).where(User.id == 2).values(name="q"), execution_options=opts)
        obs.append(("inside", facts(api, session, a, b)))
        sp.rollback()
        obs.append(("savepoint rolled back", facts(api, session, a, b)))
        session.execute(delete(User).where(User.id == 1), execution_options=opts)
        session.rollback()
        obs.append(("rolled back", facts(api, session, a, b)))
        obs.rec.clear()
        obs.append(("read", a.name, b.name))
        obs.sql("reads")

    compare(scen, engine=sp_engine, ref_engine=sp_ref_engine)


def test_options_on_the_statement_and_the_call(engine: Engine, ref_engine: Engine) -> None:
    """``.execution_options(synchronize_session=...)`` on the statement; the call's
    ``execution_options`` win over it."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        stmt = update(User).where(User.id == 1).values(name="s")
        session.execute(stmt.execution_options(synchronize_session="fetch"))
        obs.sql("statement option")
        obs.append(("a", facts(api, session, a)))
        stmt = stmt.values(name="t").execution_options(synchronize_session="fetch")
        session.execute(stmt, execution_options={"synchronize_session": False})
        obs.sql("call option wins")
        obs.append(("a", facts(api, session, a)))
        session.rollback()

    compare(scen, engine, ref_engine)


def test_criteria_that_cannot_be_evaluated(engine: Engine, ref_engine: Engine) -> None:
    """A function in the WHERE: "evaluate" refuses before any SQL, naming the fix;
    "auto" fetches."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        for n, where in enumerate((func.lower(User.name) == "a", User.name.like("a%"))):
            stmt = update(User).where(where).values(name="q")
            opts = {"synchronize_session": "evaluate"}
            err = obs.error(
                f"evaluate {n}", lambda s=stmt, o=opts: session.execute(s, execution_options=o)
            )
            words = "Could not evaluate current criteria in Python: "
            obs.append((f"message {n}", str(err).startswith(words)))
            obs.append((f"names the fix {n}", "Specify 'fetch' or False" in str(err)))
        obs.sql("no SQL")
        session.execute(update(User).where(func.lower(User.name) == "a").values(name="q"))
        obs.sql("auto: fetch")
        obs.append(("objects", facts(api, session, a, b)))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["evaluate 0"][1:] == ("raises", "InvalidRequestError")
    assert facts_["no SQL"][1] == []


def test_unknown_strategy(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        stmt = update(User).where(User.id == 1).values(name="x")
        for value in ("bogus", True, "Fetch"):
            opts = {"synchronize_session": value}
            obs.error(f"{value!r}", lambda opts=opts: session.execute(stmt, execution_options=opts))
        obs.sql("no SQL")
        session.execute(stmt, execution_options={"synchronize_session": None})
        obs.append(("None: not synchronised", facts(api, session, a)))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["'bogus'"][1:] == ("raises", "ArgumentError")


def test_values_that_cannot_be_evaluated_expire(engine: Engine, ref_engine: Engine) -> None:
    """A SET value the session cannot compute (a SQL function) is expired on the matched
    objects and loaded again when read."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        stmt = update(User).where(User.id == 1).values(name=func.upper(User.name), count=5)
        session.execute(stmt)
        obs.sql("update")
        obs.append(("objects", facts(api, session, a, b)))
        obs.append(("read", a.name))
        obs.sql("read")
        session.rollback()

    compare(scen, engine, ref_engine)


def test_changes_not_flushed(engine: Engine, ref_engine: Engine) -> None:
    """With autoflush, the change is flushed first; without, the changed attribute is
    expired and the object keeps its change mark."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        a.name = "mine"
        obs.rec.clear()
        session.execute(update(User).where(User.name == "mine").values(count=99))
        obs.sql("autoflush first")
        obs.append(("a", facts(api, session, a)))
        b.name = "theirs"
        with session.no_autoflush:
            stmt = update(User).where(User.id.in_([1, 2])).values(name="bulk", count=User.count + 5)
            session.execute(stmt)
        obs.sql("no autoflush")
        obs.append(("a, b", facts(api, session, a, b), sorted(o.id for o in session.dirty)))
        session.flush()
        obs.sql("flush")
        obs.append(("read", b.name, b.count))
        session.rollback()

    compare(scen, engine, ref_engine)


def test_returning(engine: Engine, ref_engine: Engine) -> None:
    """``.returning(User)`` on UPDATE and DELETE: the session's own objects."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        if engine.dialect.update_returning:
            stmt = update(User).where(User.id < 3).values(name="r").returning(User, User.name)
            rows = session.execute(stmt).all()
            obs.append(
                ("update evaluate", [(r[0] is o, r[1]) for r, o in zip(rows, (a, b), strict=True)])
            )
            stmt = update(User).where(User.id < 4).values(count=7).returning(User.name, User.count)
            opts = {"synchronize_session": "fetch"}
            result = session.execute(stmt, execution_options=opts)
            obs.append(("update fetch", list(result.keys()), [tuple(r) for r in result]))
            obs.append(("objects", facts(api, session, a, b)))
        for sync in ("evaluate", "fetch"):
            stmt = (
                delete(User)
                .where(User.id == (1 if sync == "evaluate" else 2))
                .returning(User.id, User.name)
            )
            rows = session.execute(stmt, execution_options={"synchronize_session": sync}).all()
            obs.append((f"delete {sync}", [tuple(r) for r in rows]))
        obs.sql("statements")
        obs.append(("after", facts(api, session, a, b)))
        session.rollback()

    compare(scen, engine, ref_engine)


def test_query_update_and_delete(engine: Engine, ref_engine: Engine) -> None:
    """The legacy ``Query.update()`` / ``Query.delete()``: the same statements, the row
    count returned; a query with LIMIT or ORDER BY is refused."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        q = session.query(User).filter(User.count < 2)
        obs.append(("update", q.update({"name": "u", User.count: User.count + 1})))
        obs.append(("after update", facts(api, session, a, b)))
        n = (
            session.query(User)
            .filter_by(name="u")
            .update({"fullname": "F"}, synchronize_session="fetch")
        )
        obs.append(("update fetch", n, facts(api, session, a, b)))
        obs.append(
            ("delete", session.query(User).filter(User.id == 1).delete(synchronize_session=False))
        )
        obs.append(("objects", facts(api, session, a, b)))
        obs.append(("delete all", session.query(User).delete()))
        obs.sql("statements")
        obs.append(("after", facts(api, session, a, b)))
        obs.error("limit", lambda: session.query(User).limit(1).update({"name": "x"}))
        obs.error("order_by", lambda: session.query(User).order_by(User.id).delete())
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["update"][1] == 2
    assert facts_["limit"][1:] == ("raises", "InvalidRequestError")


def test_persistent_to_deleted_event(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        _held = session.get(User, 1), session.get(User, 2)  # the identity map is weak
        seen: list[Any] = []

        def listener(sess: Any, obj: Any) -> None:
            seen.append((obj.id, api.state(obj)))

        event.listen(session, "persistent_to_deleted", listener)
        session.execute(
            delete(User).where(User.id < 3), execution_options={"synchronize_session": "fetch"}
        )
        obs.append(("events", seen))
        session.rollback()

    facts_ = by_unique_label(compare(scen, engine, ref_engine))
    assert facts_["events"][1] == [(1, "deleted"), (2, "deleted")]


# -- where sessionkit does better than the ORM ---------------------------------------------


def _sk_session() -> tuple[Any, Any, list[str]]:
    engine = create_engine("sqlite://")
    User = bulk_users(SK, engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    return SK.Session(engine), User, statements


def test_undetermined_match_expires() -> None:
    """sessionkit only. An object whose WHERE attribute is expired may or may not have
    matched: the attributes the UPDATE sets are expired, so the next read loads the row.
    The ORM writes the new values into it either way, so an object whose row did not
    match shows values its row never had."""
    session, User, _ = _sk_session()
    d = session.get(User, 4)
    session.expire(d, ["fullname"])
    session.execute(update(User).where(User.fullname == "nope").values(name="q"))
    assert "name" not in d.__dict__ and SK.inspect(d).expired_attributes == {"fullname", "name"}
    assert d.name == "d"  # loaded: the row did not match
    session.expire(d, ["fullname"])
    session.execute(delete(User).where(User.fullname == "D"))
    assert SK.inspect(d).expired and d in session  # a DELETE expires it, as in the ORM


def test_set_value_from_an_expired_attribute_expires() -> None:
    """sessionkit only: ``values(name=User.fullname)`` on an object whose ``fullname`` is
    expired expires ``name``; the ORM stores its internal "expired" marker as the value."""
    session, User, _ = _sk_session()
    a = session.get(User, 1)
    session.expire(a, ["fullname"])
    session.execute(update(User).where(User.id == 1).values(name=User.fullname))
    assert "name" not in a.__dict__
    assert a.name == "A"


def test_bindparam_valued_at_execute() -> None:
    """sessionkit only: ``where(User.id == bindparam("x"))`` with ``{"x": 1}`` given to
    execute() is evaluated with 1. The ORM evaluates the bindparam's own value (None), so
    no object matches and the objects keep stale values (a deleted row's object stays
    persistent)."""
    session, User, _ = _sk_session()
    a, b = session.get(User, 1), session.get(User, 2)
    session.execute(update(User).where(User.id == bindparam("x")).values(name="bp"), {"x": 1})
    assert a.__dict__["name"] == "bp"
    session.execute(delete(User).where(User.id == bindparam("x")), {"x": 2})
    assert SK.inspect(b).deleted and b not in session


def test_column_key_in_values_is_refused_before_sql() -> None:
    """sessionkit only: ``values({"full_name": ...})`` (the column's key; the attribute is
    ``fullname``) raises the ORM's InvalidRequestError, but before the UPDATE runs; the
    ORM runs it and then raises, leaving the row changed and the objects not."""
    session, User, statements = _sk_session()
    a = session.get(User, 1)
    del statements[:]
    with pytest.raises(sa_exc.InvalidRequestError, match=r"Attribute name not found.*'fullname'"):
        session.execute(update(User).where(User.id == 1).values({"full_name": "x"}))
    assert statements == []
    opts = {"synchronize_session": False}
    session.execute(
        update(User).where(User.id == 1).values({"full_name": "x"}), execution_options=opts
    )
    assert a.fullname == "A" and len(statements) == 1


def test_primary_key_change_is_refused() -> None:
    """sessionkit only: the ORM writes the new key into the object but leaves it under
    its old identity, so get() of the new key loads a second object for the same row."""
    session, User, statements = _sk_session()
    session.get(User, 1)
    del statements[:]
    with pytest.raises(sa_exc.InvalidRequestError, match="primary key attribute 'id'"):
        session.execute(update(User).where(User.id == 1).values(id=10))
    assert statements == []
    opts = {"synchronize_session": False}
    session.execute(update(User).where(User.id == 1).values(id=10), execution_options=opts)
    session.expire_all()
    assert session.get(User, 10).name == "a"


def test_select_path_is_untouched() -> None:
    """The dispatch is one isinstance() check; a select() still loads objects."""
    session, User, _ = _sk_session()
    assert [u.id for u in session.scalars(select(User).order_by(User.id))] == [1, 2, 3, 4]
    assert len(ROWS) == 4 and sql_statements([]) == [] and event_kinds([]) == []


# -- other tables, other columns, other options ------------------------------------------------


def _with_other(api: Api, engine: Engine) -> tuple[Any, Any]:
    """``User`` and ``Tag(id, user_id, label)``, one tag per user 1 and 3."""
    from sqlalchemy import Column, ForeignKey, Integer, String

    User = bulk_users(api, engine)

    class Tag(User.__mro__[1]):  # the same declarative base
        __tablename__ = "tag"
        id = Column(Integer, primary_key=True)
        user_id = Column(Integer, ForeignKey("user_account.id"))
        label = Column(String(20))

    Tag.__table__.create(engine)
    with engine.begin() as conn:
        conn.execute(
            Tag.__table__.insert(), [{"user_id": 1, "label": "x"}, {"user_id": 3, "label": "y"}]
        )
    return User, Tag


@pytest.mark.parametrize("kind", ["update", "delete"])
def test_other_table_in_the_where(engine: Engine, ref_engine: Engine, kind: str) -> None:
    """A column of another table cannot be evaluated: "auto" fetches (UPDATE .. FROM,
    DELETE .. USING), with RETURNING where the database has it for such statements."""
    if engine.dialect.name == "sqlite" and kind == "delete":
        pytest.skip("SQLite has no DELETE .. USING")

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User, Tag = _with_other(api, engine)
        session = api.Session(engine)
        a, b = session.get(User, 1), session.get(User, 2)
        obs.rec.clear()
        if kind == "update":
            stmt: Any = (
                update(User).where(User.id == Tag.user_id, Tag.label == "x").values(name="t")
            )
        else:
            stmt = delete(User).where(User.id == Tag.user_id, Tag.label == "x")
        obs.error("auto", lambda: session.execute(stmt))
        obs.sql("statements")
        obs.append(("objects", facts(api, session, a, b)))
        session.rollback()
        if kind == "delete":
            a = session.get(User, 1)
            obs.rec.clear()
            opts = {"is_delete_using": True}
            obs.error("is_delete_using", lambda: session.execute(stmt, execution_options=opts))
            obs.sql("with is_delete_using")
            obs.append(("a", facts(api, session, a)))
            session.rollback()

    compare(scen, engine, ref_engine)


def test_onupdate_columns(engine: Engine, ref_engine: Engine) -> None:
    """A Python ``onupdate`` value is known and set; a SQL one is expired and loaded."""
    from sqlalchemy import Column, Integer, String, literal

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base = api.declarative_base()

        class Doc(Base):
            __tablename__ = "doc"
            id = Column(Integer, primary_key=True)
            title = Column(String(20))
            revision = Column(Integer, default=1, onupdate=lambda: 7)
            stamp = Column(String(20), default="new", onupdate=literal("sql"))

        Base.metadata.create_all(engine)
        session = api.Session(engine)
        session.add_all([Doc(title="a"), Doc(title="b")])
        session.commit()
        a, b = session.get(Doc, 1), session.get(Doc, 2)
        for sync in ("evaluate", "fetch"):
            obs.rec.clear()
            session.execute(
                update(Doc).where(Doc.title == "a").values(title="a"),
                execution_options={"synchronize_session": sync},
            )
            obs.sql(f"{sync}: update")
            obs.append((f"{sync}: objects", facts(api, session, a, b)))
            obs.append((f"{sync}: read", a.stamp))
            obs.sql(f"{sync}: read")
        session.rollback()

    compare(scen, engine, ref_engine)


def test_composite_keys(engine: Engine, ref_engine: Engine) -> None:
    from sqlalchemy import Column, Integer, String

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base = api.declarative_base()

        class Cell(Base):
            __tablename__ = "cell"
            row = Column(Integer, primary_key=True)
            col = Column(Integer, primary_key=True)
            value = Column(String(20))

        Base.metadata.create_all(engine)
        session = api.Session(engine)
        session.add_all([Cell(row=r, col=c, value=f"{r}{c}") for r in (1, 2) for c in (1, 2)])
        session.commit()
        cells = [session.get(Cell, (r, c)) for r in (1, 2) for c in (1, 2)]
        obs.rec.clear()
        session.execute(
            update(Cell), [{"row": 1, "col": 2, "value": "x"}, {"row": 2, "col": 1, "value": "y"}]
        )
        obs.sql("by key")
        opts = {"synchronize_session": "fetch"}
        session.execute(update(Cell).where(Cell.row == 2).values(value="z"), execution_options=opts)
        session.execute(delete(Cell).where(Cell.col == 1, Cell.row == 1))
        obs.sql("where")
        obs.append(("cells", facts(api, session, *cells)))
        session.commit()

    compare(scen, engine, ref_engine)


def test_typed_model_with_a_column_name(engine: Engine, ref_engine: Engine) -> None:
    """``fullname: Mapped[str] = mapped_column("full_name")``: attribute names in values()
    and in the dicts, and the objects synchronised by attribute."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        names = api.typed
        Mapped, mapped_column = names.Mapped, names.mapped_column
        from sqlalchemy import String

        class Base(names.DeclarativeBase):
            pass

        # Built with real annotation objects: this module's annotations are strings.
        Person = type(
            "Person",
            (Base,),
            {
                "__tablename__": "person",
                "__annotations__": {"id": Mapped[int], "fullname": Mapped[str]},
                "id": mapped_column(primary_key=True),
                "fullname": mapped_column("full_name", String(40)),
            },
        )

        Base.metadata.create_all(engine)
        session = api.Session(engine)
        people = session.scalars(
            insert(Person).returning(Person), [{"fullname": "Ann"}, {"fullname": "Bob"}]
        ).all()
        obs.append(("inserted", facts(api, session, *people)))
        session.execute(update(Person).where(Person.fullname == "Ann").values(fullname="Anne"))
        session.execute(update(Person), [{"id": people[1].id, "fullname": "Rob"}])
        obs.sql("statements")
        obs.append(("objects", facts(api, session, *people)))
        session.commit()

    compare(scen, engine, ref_engine)


def test_dml_strategy_option(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = bulk_users(api, engine)
        session = api.Session(engine)
        a = session.get(User, 1)
        obs.rec.clear()
        raw = {"dml_strategy": "raw"}
        session.execute(insert(User), [{"name": "r"}], execution_options=raw)
        core = {"dml_strategy": "core_only"}
        session.execute(update(User).where(User.id == 1).values(name="c"), execution_options=core)
        obs.append(("core_only: not synchronised", facts(api, session, a)))
        for label, stmt, params, value in [
            ("insert bulk without params", insert(User).values(name="x"), None, "bulk"),
            ("update bulk without params", update(User).values(name="x"), None, "bulk"),
            ("insert unknown", insert(User), [{"name": "x"}], "nope"),
            ("update unknown", update(User).values(name="x"), None, "nope"),
            ("delete unknown", delete(User), None, "nope"),
            ("delete bulk", delete(User), [{"id": 1}], "bulk"),
        ]:
            opts = {"dml_strategy": value}
            obs.error(
                label, lambda s=stmt, p=params, o=opts: session.execute(s, p, execution_options=o)
            )
        obs.sql("statements")
        session.rollback()

    compare(scen, engine, ref_engine)


def test_versioned_update_by_key_takes_the_new_version() -> None:
    """sessionkit only: with a version column, UPDATE by primary key checks and bumps the
    version given in each dict, and the object takes the *new* version (the ORM writes the
    old one back into the object, so its next flush fails with StaleDataError)."""
    from sqlalchemy import Column, Integer, String

    engine = create_engine("sqlite://")
    Base = SK.declarative_base()

    class Doc(Base):
        __tablename__ = "doc"
        id = Column(Integer, primary_key=True)
        title = Column(String(20))
        version = Column(Integer, nullable=False)
        __mapper_args__ = {"version_id_col": version}

    Base.metadata.create_all(engine)
    session = SK.Session(engine)
    session.add(Doc(title="a"))
    session.commit()
    doc = session.get(Doc, 1)
    session.execute(update(Doc), [{"id": 1, "title": "b", "version": 1}])
    assert (doc.title, doc.version) == ("b", 2)
    doc.title = "c"
    session.commit()
    with pytest.raises(sa_exc.InvalidRequestError, match="version attribute 'version'"):
        session.execute(update(Doc), [{"id": 1, "title": "d"}])
    with pytest.raises(SK.StaleDataError):
        session.execute(update(Doc), [{"id": 1, "title": "d", "version": 1}])
