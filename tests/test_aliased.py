"""``aliased()`` and ``select(Entity).from_statement()``: statements other than a plain
``select(User)`` that yield identity-mapped objects. Each scenario runs on sessionkit and
on the SQLAlchemy ORM: the same SQL, the same objects (identical to what ``session.get``
returns), the same result keys and the same error classes. The assertions after
``compare()`` check the expected facts, so that a bug shared by both cannot hide.

Where sessionkit refuses what the ORM accepts (a selectable without a mapped column, a
statement whose rows lack one, clauses that ``from_statement()`` would drop) the test runs
on sessionkit alone and says why.

``select(Employee).from_statement()`` works because ``Mapper.selectable`` carries
sessionkit's compile plugin (``sessionkit.mapping.PLUGIN_ATTRS``); the ``alias`` cases run
the same rules through ``select(aliased(Employee))``.

The model maps an attribute onto a column of another name (``title`` onto ``job_title``)
so that every rule is also checked where attribute names and column keys differ.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.orm as orm
from reference import SK, Api, Obs, compare, run
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    String,
    column,
    create_engine,
    literal,
    literal_column,
    select,
    text,
    union,
)
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchColumnError

import sessionkit
from support import by_label, event_kinds, norm_addresses

STAFF = (
    (1, "alice", "ceo", None),
    (2, "bob", "cto", 1),
    (3, "carol", "cfo", 1),
    (4, "dave", "dev", 2),
)


def aliased(api: Api) -> Any:
    return sessionkit.aliased if api is SK else orm.aliased


def employee_model(api: Api) -> tuple[Any, Any]:
    """``Employee``; ``title`` maps the column ``job_title``."""
    Base = api.declarative_base()

    class Employee(Base):
        __tablename__ = "employee"
        id = Column(Integer, primary_key=True, autoincrement=False)
        name = Column(String(30))
        title = Column("job_title", String(30))
        manager_id = Column(Integer)

    return Base, Employee


def setup_staff(api: Api, engine: Engine) -> Any:
    """The ``employee`` table with the committed rows of ``STAFF``, outside any session."""
    Base, Employee = employee_model(api)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            Employee.__table__.insert(),
            [{"id": i, "name": n, "job_title": t, "manager_id": m} for i, n, t, m in STAFF],
        )
    return Employee


def seen(objs: Any) -> list[Any]:
    """What a list of objects (or of tuples of objects and values) holds, by value."""
    out: list[Any] = []
    for o in objs:
        if isinstance(o, tuple) or type(o).__name__ == "Row":
            out.append(tuple(seen([x])[0] for x in o))
        elif hasattr(o, "__table__"):
            out.append((type(o).__name__, o.id, o.name, o.title, o.manager_id))
        else:
            out.append(o)
    return out


def first_sql(obs: Obs, label: str) -> str:
    """The first SQL statement of the step ``label``."""
    return next(e[1] for e in by_label(obs)[label][1] if e[0] == "SQL")


# -- aliased(): the alias of the table --------------------------------------------------------


def test_select_aliased_yields_the_identity_mapped_objects(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = aliased(api)(Employee)
        obs.append(("repr", norm_addresses(repr(ea)), str(ea)))
        session = api.Session(engine)
        bob = session.get(Employee, 2)
        obs.rec.clear()
        result = session.execute(
            select(ea).where(ea.title != "dev").where(ea.id > 1).order_by(ea.id.desc())
        )
        obs.append(("keys", list(result.keys())))
        objs = result.scalars().all()
        obs.sql("select(alias)")
        obs.append(("objects", seen(objs)))
        obs.append(("identity", objs[1] is bob, objs[0] is session.get(Employee, 3)))
        obs.append(("map", len(session.identity_map)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["repr"][1:] == ("<AliasedClass at 0x...; Employee>", "aliased(Employee)")
    assert facts["keys"][1] == []
    assert first_sql(obs, "select(alias)").startswith(
        "SELECT employee_1.id, employee_1.name, employee_1.job_title, employee_1.manager_id \n"
        "FROM employee AS employee_1 \nWHERE employee_1.job_title != "
    )
    assert facts["objects"][1] == [
        ("Employee", 3, "carol", "cfo", 1),
        ("Employee", 2, "bob", "cto", 1),
    ]
    assert facts["identity"][1:] == (True, True)
    assert facts["map"][1] == 2


def test_named_alias_is_the_result_key(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        boss = aliased(api)(Employee, name="boss")
        session = api.Session(engine)
        obs.rec.clear()
        result = session.execute(select(boss, boss.name).where(boss.id == 1))
        obs.sql("select(named alias)")
        obs.append(("keys", list(result.keys())))
        row = result.one()
        obs.append(("row", row._fields, seen([row.boss])[0], row.name))
        obs.append(("identity", row.boss is session.get(Employee, 1)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert "FROM employee AS boss" in first_sql(obs, "select(named alias)")
    assert facts["keys"][1] == ["boss", "name"]
    assert facts["row"][1:] == (("boss", "name"), ("Employee", 1, "alice", "ceo", None), "alice")
    assert facts["identity"][1] is True


def test_self_join_pairs_each_employee_with_the_manager_object(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        manager = aliased(api)(Employee)
        session = api.Session(engine)
        alice = session.get(Employee, 1)
        obs.rec.clear()
        stmt = (
            select(Employee, manager)
            .join(manager, manager.id == Employee.manager_id)
            .where(manager.title.in_(["ceo", "cto"]))
            .order_by(Employee.id)
        )
        result = session.execute(stmt)
        obs.append(("keys", list(result.keys())))
        rows = result.all()
        obs.sql("self-join")
        obs.append(("rows", seen(rows)))
        obs.append(("managers", [m is session.get(Employee, e.manager_id) for e, m in rows]))
        obs.append(("alice", rows[0][1] is alice, rows[1][1] is alice))
        obs.append(("bob is one object", rows[0][0] is rows[2][1]))
        daves = select(manager).join(Employee, Employee.manager_id == manager.id)
        found = session.scalars(daves.where(Employee.name == "dave")).all()
        obs.append(("dave's manager", seen(found), found[0] is rows[0][0]))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    sql = first_sql(obs, "self-join")
    assert sql.startswith(
        "SELECT employee.id, employee.name, employee.job_title, employee.manager_id, "
        "employee_1.id AS id_1, employee_1.name AS name_1, employee_1.job_title AS job_title_1, "
        "employee_1.manager_id AS manager_id_1 \nFROM employee "
    )
    assert "JOIN employee AS employee_1 ON employee_1.id = employee.manager_id" in sql
    assert facts["keys"][1] == ["Employee"]  # the ORM's: an unnamed alias has no key
    assert facts["rows"][1] == [
        (("Employee", 2, "bob", "cto", 1), ("Employee", 1, "alice", "ceo", None)),
        (("Employee", 3, "carol", "cfo", 1), ("Employee", 1, "alice", "ceo", None)),
        (("Employee", 4, "dave", "dev", 2), ("Employee", 2, "bob", "cto", 1)),
    ]
    assert facts["managers"][1] == [True, True, True]
    assert facts["alice"][1:] == (True, True)
    assert facts["bob is one object"][1] is True
    assert facts["dave's manager"][1:] == ([("Employee", 2, "bob", "cto", 1)], True)


def test_alias_of_an_alias_and_flat(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = aliased(api)(Employee)
        eb = aliased(api)(ea)
        flat = aliased(api)(Employee, flat=True)
        obs.append(("sql", str(select(ea.id, eb.id).where(ea.id == eb.manager_id))))
        obs.append(("flat", str(select(flat))))
        session = api.Session(engine)
        obs.append(("objects", seen(session.scalars(select(eb).where(eb.id == 4)).all())))
        sub = aliased(api)(Employee, select(Employee).where(Employee.id > 1).subquery())
        cte = aliased(api)(Employee, select(Employee).cte("c"))
        again = aliased(api)(sub)
        obs.append(("of subquery", str(select(again))))
        obs.append(("of cte", str(select(aliased(api)(cte, name="z")))))
        objs = session.scalars(select(again).order_by(again.id)).all()
        obs.append(("subquery objects", seen(objs), objs[0] is session.get(Employee, 2)))
        # An alias onto a subquery of another alias: matched through that alias's columns.
        upper = aliased(api)(ea, select(ea).where(ea.id > 2).subquery())
        obs.append(("onto a subquery of the alias", str(select(upper))))
        obs.append(("its objects", seen(session.scalars(select(upper).order_by(upper.id)))))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert "FROM employee AS employee_1, employee AS employee_2" in facts["sql"][1]
    assert facts["of subquery"][1].startswith("SELECT anon_1.id, anon_1.name,")
    assert facts["of cte"][1].endswith(
        "SELECT z.id, z.name, z.job_title, z.manager_id \nFROM c AS z"
    )
    assert [o[1] for o in facts["subquery objects"][1]] == [2, 3, 4]
    assert facts["subquery objects"][2] is True
    assert (
        "FROM employee AS employee_1 \nWHERE employee_1.id > "
        in (facts["onto a subquery of the alias"][1])
    )
    assert [o[1] for o in facts["its objects"][1]] == [3, 4]
    assert "FROM employee AS employee_1" in facts["flat"][1]
    assert facts["objects"][1] == [("Employee", 4, "dave", "dev", 2)]


def test_aliases_of_one_shape_share_a_cache_key(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        _, Employee = employee_model(api)
        a, b = aliased(api)(Employee), aliased(api)(Employee)
        one = select(a).where(a.id == 1)._generate_cache_key()
        two = select(b).where(b.id == 2)._generate_cache_key()
        boss = select(aliased(api)(Employee, name="boss"))._generate_cache_key()
        plain = select(Employee.__table__.alias())._generate_cache_key()
        obs.append(("keys", one == two, one == boss, boss == plain))

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["keys"][1:] == (True, False, False)


def test_alias_attributes_are_the_alias_columns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = aliased(api)(Employee, name="e")
        obs.append(("where", str(select(Employee.id).where(ea.title == "x", ea.id == 1))))
        obs.append(("__name__", ea.__name__))
        obs.error("unknown attribute", lambda: ea.salary)

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert "e.job_title = :job_title_1 AND e.id = :id_1" in facts["where"][1]
    assert facts["__name__"][1] == "aliased(Employee)"
    assert facts["unknown attribute"][1:] == ("raises", "AttributeError")


def test_unknown_alias_attribute_names_the_mapped_ones() -> None:
    _, Employee = employee_model(SK)
    ea = sessionkit.aliased(Employee)
    with pytest.raises(AttributeError) as err:
        _ = ea.job_title  # the column key; the attribute is "title"
    words = str(err.value)
    assert "aliased(Employee) has no attribute 'job_title'" in words
    assert "id, name, title, manager_id" in words


# -- aliased() over a subquery, a CTE, a UNION ------------------------------------------------


def test_subquery_with_columns_in_another_order_and_extra_columns(
    engine: Engine, ref_engine: Engine
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        t = Employee.__table__
        sub = (
            select(t.c.manager_id, literal_column("'x'").label("extra"), t.c.job_title)
            .add_columns(t.c.name, t.c.id)
            .where(t.c.id > 1)
            .subquery()
        )
        es = aliased(api)(Employee, sub)
        session = api.Session(engine)
        carol = session.get(Employee, 3)
        obs.rec.clear()
        objs = session.scalars(select(es).where(es.title != "dev").order_by(es.id)).all()
        obs.sql("select(alias of subquery)")
        obs.append(("objects", seen(objs), objs[1] is carol))
        obs.append(("identity", objs[0] is session.get(Employee, 2)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert first_sql(obs, "select(alias of subquery)").startswith(
        "SELECT anon_1.id, anon_1.name, anon_1.job_title, anon_1.manager_id \nFROM (SELECT "
    )
    assert facts["objects"][1:] == (
        [("Employee", 2, "bob", "cto", 1), ("Employee", 3, "carol", "cfo", 1)],
        True,
    )
    assert facts["identity"][1] is True


def test_cte_and_recursive_cte(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        session = api.Session(engine)
        reports = select(Employee).where(Employee.manager_id == 1).cte("reports")
        er = aliased(api)(Employee, reports)
        obs.rec.clear()
        objs = session.scalars(select(er).order_by(er.id)).all()
        obs.sql("cte")
        obs.append(("cte objects", seen(objs)))
        # Everyone under bob, bob included.
        tree = select(Employee).where(Employee.id == 2).cte("tree", recursive=True)
        tree = tree.union_all(select(Employee).join(tree, Employee.manager_id == tree.c.id))
        et = aliased(api)(Employee, tree)
        obs.rec.clear()
        objs = session.scalars(select(et).order_by(et.id)).all()
        obs.sql("recursive cte")
        obs.append(("tree objects", seen(objs), objs[0] is session.get(Employee, 2)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert (
        "SELECT reports.id, reports.name, reports.job_title, reports.manager_id \nFROM reports"
        in (first_sql(obs, "cte"))
    )
    assert facts["cte objects"][1] == [
        ("Employee", 2, "bob", "cto", 1),
        ("Employee", 3, "carol", "cfo", 1),
    ]
    assert first_sql(obs, "recursive cte").startswith("WITH RECURSIVE tree(")
    assert facts["tree objects"][1:] == (
        [("Employee", 2, "bob", "cto", 1), ("Employee", 4, "dave", "dev", 2)],
        True,
    )


def test_union_subquery(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        both = union(
            select(Employee).where(Employee.id == 1), select(Employee).where(Employee.id == 4)
        ).subquery()
        eu = aliased(api)(Employee, both)
        session = api.Session(engine)
        dave = session.get(Employee, 4)
        obs.rec.clear()
        result = session.execute(select(eu).order_by(eu.id))
        obs.append(("keys", list(result.keys())))
        objs = result.scalars().all()
        obs.sql("union")
        obs.append(("objects", seen(objs), objs[1] is dave))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert first_sql(obs, "union").startswith(
        "SELECT anon_1.id, anon_1.name, anon_1.job_title, anon_1.manager_id \nFROM (SELECT "
    )
    assert " UNION SELECT " in first_sql(obs, "union")
    assert facts["objects"][1:] == (
        [("Employee", 1, "alice", "ceo", None), ("Employee", 4, "dave", "dev", 2)],
        True,
    )


def test_adapt_on_names_matches_derived_columns_by_name(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        made_up = select(
            literal(9).label("id"),
            literal("zed").label("name"),
            literal("cook").label("job_title"),
            literal(4).label("manager_id"),
        ).subquery()
        ez = aliased(api)(Employee, made_up, adapt_on_names=True)
        session = api.Session(engine)
        objs = session.scalars(select(ez)).all()
        obs.append(("objects", seen(objs), objs[0] is session.get(Employee, 9)))
        obs.append(("state", api.state(objs[0])))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["objects"][1:] == ([("Employee", 9, "zed", "cook", 4)], True)
    assert facts["state"][1] == "persistent"


def test_alias_rows_follow_the_identity_map_rules(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = aliased(api)(Employee)
        session = api.Session(engine)
        bob = session.get(Employee, 2)
        with session.no_autoflush:
            bob.title = "unflushed"
            again = session.scalars(select(ea).where(ea.id == 2)).one()
            obs.append(("kept", again is bob, bob.title))
            session.scalars(
                select(ea).where(ea.id == 2).execution_options(populate_existing=True)
            ).one()
            obs.append(("populate_existing", bob.title, bob in session.dirty))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["kept"][1:] == (True, "unflushed")
    assert facts["populate_existing"][1:] == ("cto", False)


def test_alias_rows_stream_with_yield_per(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = aliased(api)(Employee)
        session = api.Session(engine)
        result = session.execute(select(ea).order_by(ea.id).execution_options(yield_per=3))
        obs.append(("partitions", [seen(p) for p in result.scalars().partitions()]))
        sql = text("SELECT manager_id, job_title, name, id FROM employee ORDER BY id")
        stmt = select(ea).from_statement(sql).execution_options(yield_per=3)
        parts = [seen(p) for p in session.execute(stmt).scalars().partitions()]
        obs.append(("from_statement partitions", parts))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert [len(p) for p in facts["partitions"][1]] == [3, 1]
    assert facts["from_statement partitions"][1] == facts["partitions"][1]


# -- what aliased() refuses -----------------------------------------------------------------


def test_a_select_that_is_not_a_subquery_is_refused(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        _, Employee = employee_model(api)
        obs.error("select, not subquery", lambda: select(aliased(api)(Employee, select(Employee))))

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["select, not subquery"][1:] == ("raises", "ArgumentError")
    _, Employee = employee_model(SK)
    with pytest.raises(ArgumentError, match=r"\.subquery\(\)"):
        sessionkit.aliased(Employee, select(Employee))
    with pytest.raises(ArgumentError, match="got int"):
        sessionkit.aliased(Employee, 5)  # type: ignore[arg-type]


def test_a_selectable_without_every_mapped_column_is_refused() -> None:
    """The ORM loads such rows as objects with unloaded attributes; sessionkit loads every
    mapped column with the row, so an attribute would silently read as None."""
    _, Employee = employee_model(SK)
    t = Employee.__table__
    with pytest.raises(ArgumentError) as err:
        sessionkit.aliased(Employee, select(t.c.id, t.c.name).subquery())
    words = str(err.value)
    assert "Employee" in words and "employee.job_title (Employee.title)" in words
    assert "employee.manager_id (Employee.manager_id)" in words
    assert "select every mapped column" in words
    made_up = select(literal(9).label("id"), literal("zed").label("name")).subquery()
    with pytest.raises(ArgumentError, match="adapt_on_names=True"):
        sessionkit.aliased(Employee, made_up)


def test_flat_with_a_given_selectable_is_refused() -> None:
    """The ORM ignores ``flat`` when given the selectable; sessionkit says so."""
    _, Employee = employee_model(SK)
    sub = select(Employee).subquery()
    with pytest.raises(ArgumentError, match="flat=True"):
        sessionkit.aliased(Employee, sub, flat=True)


def test_an_alias_is_read_only() -> None:
    _, Employee = employee_model(SK)
    ea = sessionkit.aliased(Employee)
    with pytest.raises(
        AttributeError, match=r"aliased\(Employee\) is read-only; cannot set 'name'"
    ):
        ea.name = "x"


def test_an_alias_in_a_statement_of_the_orm_is_refused() -> None:
    """An ORM element first in the select makes the ORM's plugin compile it, which would
    expand the alias into other columns than sessionkit loads."""
    OrmBase: Any = orm.declarative_base()

    class Other(OrmBase):
        __tablename__ = "other"
        id = Column(Integer, primary_key=True)

    _, Employee = employee_model(SK)
    ea = sessionkit.aliased(Employee)
    session = sessionkit.Session(create_engine("sqlite://"))
    with pytest.raises(InvalidRequestError, match="compiled by the 'orm' plugin"):
        session.execute(select(Other.id, ea))
    session.close()


def test_an_unmapped_class_is_refused() -> None:
    class Plain:
        pass

    with pytest.raises(sessionkit.exc.UnmappedClassError, match="Plain"):
        sessionkit.aliased(Plain)


# -- a Core select of the table's columns stays rows --------------------------------------------


def test_core_selects_of_the_table_stay_rows(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        t = Employee.__table__
        plain_alias = t.alias("p")
        session = api.Session(engine)
        for label, stmt in [
            ("table", select(t).where(t.c.id == 1)),
            ("table alias", select(plain_alias).where(plain_alias.c.id == 1)),
            ("subquery", select(select(t).where(t.c.id == 1).subquery())),
        ]:
            row = session.execute(stmt).one()
            obs.append((label, type(row).__name__, tuple(row), row._fields))
        obs.append(("map", len(session.identity_map)))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    for label in ("table", "table alias", "subquery"):
        assert facts[label][1:3] == ("Row", (1, "alice", "ceo", None))
    assert facts["map"][1] == 0


# -- from_statement() ---------------------------------------------------------------------------


def entity_for(api: Api, Employee: Any, how: str) -> Any:
    """The entity a from_statement() test selects: the class, or an alias of it."""
    return Employee if how == "class" else aliased(api)(Employee, name="e")


HOW = ["class", "alias"]


@pytest.mark.parametrize("how", HOW)
def test_from_text_matches_columns_by_name(engine: Engine, ref_engine: Engine, how: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        session = api.Session(engine)
        bob = session.get(Employee, 2)
        sql = (
            "SELECT 7 AS extra, job_title, name, manager_id, id FROM employee "
            "WHERE id > :low ORDER BY id"
        )
        stmt = select(entity).from_statement(text(sql).bindparams(low=1))
        obs.append(("str", str(stmt)))
        obs.rec.clear()
        result = session.execute(stmt)
        obs.append(("keys", list(result.keys())))
        objs = result.scalars().all()
        obs.sql("from text")
        obs.append(("objects", seen(objs), objs[0] is bob, objs[2] is session.get(Employee, 4)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["str"][1].startswith("SELECT 7 AS extra, job_title, name, manager_id, id FROM")
    assert event_kinds(facts["from text"][1]) == ["SELECT"]
    assert facts["objects"][1:] == (
        [
            ("Employee", 2, "bob", "cto", 1),
            ("Employee", 3, "carol", "cfo", 1),
            ("Employee", 4, "dave", "dev", 2),
        ],
        True,
        True,
    )


@pytest.mark.parametrize("how", HOW)
def test_from_text_columns(engine: Engine, ref_engine: Engine, how: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        t = Employee.__table__
        session = api.Session(engine)
        # Column objects given positionally: matched by position, whatever the SQL names.
        positional = text(
            "SELECT job_title AS a, id AS b, name AS c, manager_id AS d FROM employee WHERE id = 3"
        ).columns(t.c.job_title, t.c.id, t.c.name, t.c.manager_id)
        objs = session.scalars(select(entity).from_statement(positional)).all()
        obs.append(("positional", seen(objs), objs[0] is session.get(Employee, 3)))
        # Names with types: matched by name.
        named = text("SELECT manager_id, name, id, job_title FROM employee WHERE id = 4").columns(
            id=Integer, name=String, job_title=String, manager_id=Integer
        )
        obs.append(("named", seen(session.scalars(select(entity).from_statement(named)))))
        # column() objects whose names are not the mapped columns' match nothing.
        wrong = text("SELECT 1 AS a, 'n' AS b, 't' AS c, 1 AS d").columns(
            column("a"), column("b"), column("c"), column("d")
        )
        obs.error(
            "unmatched column()",
            lambda: session.scalars(select(entity).from_statement(wrong)).all(),
        )
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["positional"][1:] == ([("Employee", 3, "carol", "cfo", 1)], True)
    assert facts["named"][1] == [("Employee", 4, "dave", "dev", 2)]
    assert facts["unmatched column()"][1:] == ("raises", "NoSuchColumnError")


@pytest.mark.parametrize("how", HOW)
def test_from_core_select_and_union(engine: Engine, ref_engine: Engine, how: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        t = Employee.__table__
        session = api.Session(engine)
        carol = session.get(Employee, 3)
        reordered = select(t.c.manager_id, t.c.name.label("who"), t.c.id, t.c.job_title).where(
            t.c.id == 3
        )
        obs.rec.clear()
        objs = session.scalars(select(entity).from_statement(reordered)).all()
        obs.sql("core select: SQL")
        obs.append(("core select", seen(objs), objs[0] is carol))
        both = union(select(t).where(t.c.id == 1), select(t).where(t.c.id == 3)).order_by("id")
        objs = session.scalars(select(entity).from_statement(both)).all()
        obs.append(("union", seen(objs), objs[1] is carol))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert first_sql(obs, "core select: SQL").startswith(
        "SELECT employee.manager_id, employee.name AS who, employee.id, employee.job_title \n"
    )
    assert facts["core select"][1:] == ([("Employee", 3, "carol", "cfo", 1)], True)
    assert facts["union"][1:] == (
        [("Employee", 1, "alice", "ceo", None), ("Employee", 3, "carol", "cfo", 1)],
        True,
    )


@pytest.mark.parametrize("how", HOW)
def test_from_statement_with_columns_and_two_entities(
    engine: Engine, ref_engine: Engine, how: str
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        other = aliased(api)(Employee, name="other")
        session = api.Session(engine)
        sql = text("SELECT id, name, job_title, manager_id FROM employee WHERE id = 2")
        result = session.execute(select(entity, Employee.name).from_statement(sql))
        obs.append(("keys", list(result.keys())))
        row = result.one()
        obs.append(("entity and column", seen([row])[0], row._fields))
        row = session.execute(select(entity, other).from_statement(sql)).one()
        obs.append(("two entities", seen([row])[0], row[0] is row[1]))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    bob = ("Employee", 2, "bob", "cto", 1)
    assert facts["entity and column"][1] == (bob, "bob")
    assert facts["two entities"][1:] == ((bob, bob), True)


@pytest.mark.parametrize("how", HOW)
def test_from_statement_execution_options_and_autoflush(
    engine: Engine, ref_engine: Engine, how: str
) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        session = api.Session(engine)
        sql = text("SELECT id, name, job_title, manager_id FROM employee WHERE id = 2")
        bob = session.get(Employee, 2)
        session.execute(text("UPDATE employee SET name = 'robert' WHERE id = 2"))
        session.scalars(select(entity).from_statement(sql)).one()
        obs.append(("not overwritten", bob.name))
        populate = select(entity).execution_options(populate_existing=True).from_statement(sql)
        session.scalars(populate).one()
        obs.append(("select's option", bob.name))
        session.execute(text("UPDATE employee SET name = 'bobby' WHERE id = 2"))
        stmt = select(entity).from_statement(sql).execution_options(populate_existing=True)
        session.scalars(stmt).one()
        obs.append(("from_statement's option", bob.name))
        session.add(Employee(id=5, name="erin", title="ops", manager_id=1))
        obs.rec.clear()
        erin = session.scalars(
            select(entity).from_statement(text("SELECT * FROM employee WHERE id = 5"))
        ).one()
        obs.append(("autoflushed", event_kinds(obs.rec.without_pool()), seen([erin])))
        session.rollback()
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["not overwritten"][1] == "bob"
    assert facts["select's option"][1] == "robert"
    assert facts["from_statement's option"][1] == "bobby"
    assert facts["autoflushed"][1:] == (["INSERT", "SELECT"], [("Employee", 5, "erin", "ops", 1)])


@pytest.mark.parametrize("how", HOW)
def test_rows_without_the_primary_key(engine: Engine, ref_engine: Engine, how: str) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        entity = entity_for(api, Employee, how)
        session = api.Session(engine)
        stmt = select(entity).from_statement(
            text("SELECT name, job_title, manager_id FROM employee")
        )
        err = obs.error("no id", lambda: session.scalars(stmt).all())
        obs.append(("words", str(err).split(";")[0]))
        session.close()

    facts = by_label(compare(scen, engine, ref_engine))
    assert facts["no id"][1:] == ("raises", "NoSuchColumnError")


def test_rows_without_a_mapped_column_are_refused(engine: Engine) -> None:
    """The ORM loads them as objects with the attribute unloaded; sessionkit refuses."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = sessionkit.aliased(Employee)
        session = api.Session(engine)
        sql = text("SELECT id, name FROM employee")
        with pytest.raises(NoSuchColumnError) as err:
            session.scalars(select(ea).from_statement(sql)).all()
        words = str(err.value)
        assert words.startswith(
            "Could not locate column in row for column 'Anonymous alias of employee.job_title'"
        ), words
        assert "alias of employee.job_title (Employee.title)" in words
        assert "alias of employee.manager_id (Employee.manager_id)" in words
        assert "the statement's columns are (id, name)" in words
        session.close()

    run(SK, engine, scen)


def test_ambiguous_names_are_refused(engine: Engine) -> None:
    """The ORM takes the last of two same-named columns; sessionkit refuses to guess."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Employee = setup_staff(api, engine)
        ea = sessionkit.aliased(Employee)
        session = api.Session(engine)
        sql = text("SELECT e.*, m.id FROM employee e JOIN employee m ON m.id = e.manager_id")
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            session.scalars(select(ea).from_statement(sql)).all()
        session.close()

    run(SK, engine, scen)


def test_clauses_from_statement_would_drop_are_refused() -> None:
    """The ORM ignores the select's WHERE, ORDER BY, joins... in from_statement(); sessionkit
    refuses them instead of running a statement without them."""
    _, Employee = employee_model(SK)
    ea = sessionkit.aliased(Employee)
    sql = text("SELECT * FROM employee")
    with pytest.raises(ArgumentError, match=r"WHERE.*ORDER BY"):
        select(ea).where(ea.id == 1).order_by(ea.id).from_statement(sql)
    with pytest.raises(ArgumentError, match="has no sessionkit entity"):
        select(ea).with_only_columns(Employee.__table__.c.id).from_statement(sql)
    with pytest.raises(ArgumentError, match=r"from_statement\(<Insert>\)"):
        select(ea).from_statement(Employee.__table__.insert())  # type: ignore[arg-type]


def test_a_from_statement_runs_on_a_core_connection_as_its_statement(engine: Engine) -> None:
    _, Employee = employee_model(SK)
    ea = sessionkit.aliased(Employee)
    stmt = select(ea).from_statement(text("SELECT 1 AS id, 'n' AS name"))
    with engine.connect() as conn:
        assert conn.execute(stmt).all() == [(1, "n")]
