"""A refused value is blamed on an object and attribute only when that value is shown to
be the cause: bound alone through its column's type, it fails the same way. Otherwise the
database's error passes through unchanged.

Every test runs on every backend. The property-based test flushes objects with values of
mixed types in many columns and checks, for every ``RejectedValueError``, that the blamed
value is refused on its own: a fresh object with only that value set (or, for a value an
UPDATE sent, a seed row with only that attribute changed), flushed in a fresh session, gets
an error of the same class. Its example count comes from ``SESSIONKIT_HYPOTHESIS_EXAMPLES``
(default 60); with ``CI`` set the examples are derandomized unless
``SESSIONKIT_DIFFERENTIAL_RANDOM`` is set, as in ``tests/test_differential.py``.
"""

from __future__ import annotations

import datetime
import os
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ORM, SK, Api, Obs, compare
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    Text,
    create_engine,
    delete,
    event,
    insert,
)

from sessionkit import Session, declarative_base
from sessionkit.exc import RejectedValueError
from support import Backend, by_label, event_kinds

EXAMPLES = int(os.environ.get("SESSIONKIT_HYPOTHESIS_EXAMPLES", "60"))
DERANDOMIZE = bool(os.environ.get("CI")) and not os.environ.get("SESSIONKIT_DIFFERENTIAL_RANDOM")


class Opaque:
    """An object no driver can store."""

    def __repr__(self) -> str:
        return "<Opaque>"


def blame_model(api: Api) -> tuple[Any, Any]:
    """``T``: a client-chosen key and one column of each common type. ``r`` is NOT NULL
    with a server default, so a fresh object with one other value set is complete."""
    Base = api.declarative_base()

    class T(Base):
        __tablename__ = "blame_t"
        __table_args__ = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
        id = Column(Integer, primary_key=True, autoincrement=False)
        i = Column(Integer)
        bi = Column(BigInteger)
        f = Column(Float)
        n = Column(Numeric(10, 2))
        s = Column(String(20))
        t = Column(Text)
        dt = Column(DateTime)
        d = Column(Date)
        j = Column(sa.JSON)
        b = Column(Boolean)
        r = Column(String(10), nullable=False, server_default="r")

    return Base, T


ATTRS = ("i", "bi", "f", "n", "s", "t", "dt", "d", "j", "b", "r")
SEED = {"i": 1, "bi": 2, "f": 0.5, "n": Decimal("1.25"), "s": "seed", "t": "seed", "b": True}

# Values of many types, each of which some column on some backend refuses.
VALUES: list[Any] = [
    None,
    0,
    7,
    2**31,
    2**63,
    2**70,
    True,
    2.5,
    float("nan"),
    float("inf"),
    Decimal("3.25"),
    Decimal("1e20"),
    "",
    "abc",
    "12",
    "2020-01-02",
    "x" * 30,
    "a\x00b",
    "bad \udc80",
    b"\x00\xff",
    datetime.datetime(2020, 1, 2, 3, 4, 5),
    datetime.date(2020, 1, 2),
    datetime.time(3, 4),
    datetime.timedelta(days=1),
    {"a": 1},
    {"a": {1, 2}},
    {"a": datetime.date(2020, 1, 2)},
    {"a": float("nan")},
    [1, "two"],
    {1, 2},
    Opaque(),
]

rows = st.dictionaries(st.sampled_from(ATTRS), st.sampled_from(VALUES), min_size=1, max_size=4)


def _reset(engine: Engine, T: Any) -> None:
    """An empty table but for the two seed rows, ``T(id=1)`` and ``T(id=2)``."""
    with engine.begin() as conn:
        conn.execute(delete(T.__table__))
        conn.execute(insert(T.__table__), [{"id": 1, **SEED}, {"id": 2, **SEED}])


def _cause_class(err: BaseException) -> type[BaseException]:
    """The class the database or driver raised, without sessionkit's flavour."""
    if isinstance(err, RejectedValueError):
        assert err.__cause__ is not None
        return type(err.__cause__)
    return type(err)


def refused_alone(
    engine: Engine, T: Any, attr: str, value: Any, *, update: bool = False
) -> BaseException | None:
    """The error flushing only ``attr = value`` in a fresh session gets, or None if the
    database takes it: on a fresh object, or (``update=True``) on a seed row, since an
    INSERT leaves out None where the column has a server default."""
    _reset(engine, T)
    with Session(engine) as s:
        if update:
            setattr(s.get(T, 1), attr, value)
        else:
            s.add(T(id=99, **{attr: value}))
        try:
            s.flush()
        except Exception as err:
            return err
    return None


# By object id: whether it was UPDATEd (else INSERTed), and the values it was given.
Given = dict[int, tuple[bool, dict[str, Any]]]


def flush_mixed(
    engine: Engine, T: Any, updates: list[dict[str, Any]], inserts: list[dict[str, Any]]
) -> tuple[BaseException | None, Given]:
    """Assign ``updates`` to the seed rows and add ``inserts`` as ``T(id=10)``, ...; flush.
    Returns the error (or None) and what each object was given."""
    _reset(engine, T)
    given: Given = {}
    with Session(engine) as s:
        seeds = [s.get(T, pk) for pk in range(1, len(updates) + 1)]
        for obj, values in zip(seeds, updates, strict=True):
            for attr, value in values.items():
                setattr(obj, attr, value)
            given[id(obj)] = (True, values)
        for pk, values in enumerate(inserts, start=10):
            obj = T(id=pk, **values)
            s.add(obj)
            given[id(obj)] = (False, values)
        try:
            s.flush()
        except Exception as err:
            return err, given
    return None, given


def check_blame(engine: Engine, T: Any, err: BaseException, given: Given) -> None:
    """The blamed value, alone, is refused with an error of the same class."""
    assert isinstance(err, RejectedValueError)
    assert err.__cause__ is not None and not isinstance(err.__cause__, RejectedValueError)
    update, values = given[id(err.instance)]
    assert err.attribute in values, (err.attribute, values)
    value = values[err.attribute]
    alone = refused_alone(engine, T, err.attribute, value, update=update)
    assert alone is not None, (
        f"blamed {err.attribute}={value!r}, which commits on its own; the error was: {err}"
    )
    assert _cause_class(alone) is type(err.__cause__), (alone, err)


@pytest.fixture
def blame_table(engine: Engine) -> Any:
    Base, T = blame_model(SK)
    Base.metadata.create_all(engine)
    return T


def test_every_blamed_value_is_refused_on_its_own(engine: Engine, blame_table: Any) -> None:
    T = blame_table

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(updates=st.lists(rows, max_size=2), inserts=st.lists(rows, max_size=3))
    def mixed_values(updates: list[dict[str, Any]], inserts: list[dict[str, Any]]) -> None:
        err, given = flush_mixed(engine, T, updates, inserts)
        if isinstance(err, RejectedValueError):
            check_blame(engine, T, err, given)

    mixed_values()


# -- a value that is not the cause is not blamed ---------------------------------------------


def test_a_processor_failure_blames_the_value_the_processor_refused(
    engine: Engine, blame_table: Any, backend: Backend
) -> None:
    """``dt=5`` fails in the DateTime processor on SQLite; ``bi=datetime`` is stored."""
    T = blame_table
    err, given = flush_mixed(engine, T, [], [{"bi": datetime.datetime(2020, 1, 2), "dt": 5}])
    assert isinstance(err, RejectedValueError)
    check_blame(engine, T, err, given)
    if backend.is_sqlite:
        assert err.attribute == "dt"
        assert "T(id=10).dt is 5 (an int), which column blame_t.dt (DATETIME)" in str(err)


def test_an_update_is_not_blamed_on_another_objects_accepted_value(
    engine: Engine, blame_table: Any
) -> None:
    """Two objects in one UPDATE executemany; only ``T(id=2).f`` is wrong."""
    T = blame_table
    assert refused_alone(engine, T, "t", 2.5, update=True) is None
    err, given = flush_mixed(
        engine,
        T,
        [{"t": 2.5, "f": 1.5}, {"t": "fine", "f": datetime.datetime(2020, 1, 2)}],
        [],
    )
    assert isinstance(err, RejectedValueError)
    check_blame(engine, T, err, given)
    assert err.attribute == "f"
    assert given[id(err.instance)] == (True, {"t": "fine", "f": datetime.datetime(2020, 1, 2)})
    assert "T(id=2).f is datetime.datetime(2020, 1, 2, 0, 0) (a datetime)" in str(err)


# -- refusals shown to come from one value are explained -----------------------------------------

PROVABLE: dict[str, tuple[str, Any, str]] = {
    "set inside JSON": (
        "j",
        {"a": {1, 2}},
        "T(id=10).j holds {1, 2} (a set) at ['a'], which JSON cannot represent, so column "
        "blame_t.j (JSON) cannot store it; convert it to a list before flushing.",
    ),
    "date inside JSON": (
        "j",
        {"a": [datetime.date(2020, 1, 2)]},
        "T(id=10).j holds datetime.date(2020, 1, 2) (a date) at ['a'][0], which JSON cannot "
        "represent, so column blame_t.j (JSON) cannot store it; convert it to an ISO string "
        "(value.isoformat()) before flushing.",
    ),
    "NaN inside JSON": (
        "j",
        {"a": float("nan")},
        "T(id=10).j holds nan at ['a'], which column blame_t.j (JSON) cannot store: JSON has "
        "no NaN or Infinity; use None or a string instead before flushing.",
    ),
    "True for BigInteger": (
        "bi",
        True,
        "T(id=10).bi is True (a bool), which column blame_t.bi (BIGINT) cannot store; assign "
        "int(value) (or None) before flushing.",
    ),
    "Numeric overflow": (
        "n",
        Decimal("123456789.5"),
        "T(id=10).n is Decimal('123456789.5'), too large for column blame_t.n "
        "(NUMERIC(10, 2)), which holds at most 8 digits before the decimal point; use a "
        "Numeric with more precision, or a smaller value.",
    ),
}


def _insert_one(api: Api, engine: Engine, attr: str, value: Any) -> BaseException | None:
    Base, T = blame_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([T(id=9), T(id=10, **{attr: value})])
        try:
            s.flush()
        except Exception as err:
            return err
        s.commit()
    return None


def _first_line(err: BaseException, engine: Engine) -> str:
    """The driver's words (MariaDB names the database, which differs between the runs)."""
    line = str(err).splitlines()[0]
    database = engine.url.database
    return line.replace(database, "<database>") if database else line


@pytest.mark.parametrize("case", list(PROVABLE))
def test_a_provable_refusal_is_explained(engine: Engine, ref_engine: Engine, case: str) -> None:
    attr, value, sentence = PROVABLE[case]
    orm_err = _insert_one(ORM, ref_engine, attr, value)
    err = _insert_one(SK, engine, attr, value)
    if orm_err is None:
        assert err is None, f"the ORM stored {value!r}; sessionkit raised {err!r}"
        return
    assert isinstance(err, RejectedValueError), f"not explained: {err!r}"
    assert isinstance(err, type(orm_err)) and type(err).__name__ == type(orm_err).__name__
    assert type(err.__cause__) is type(orm_err)
    assert _first_line(err, engine) == _first_line(orm_err, ref_engine)
    assert sentence in str(err)
    assert err.attribute == attr and err.instance is not None


def test_postgresql_refusals_of_single_values_are_explained(
    engine: Engine, backend: Backend
) -> None:
    """Each value PostgreSQL refuses is explained there (other backends may store it)."""
    if not backend.is_postgresql:
        pytest.skip("these values are refused by PostgreSQL")
    for attr, value, sentence in PROVABLE.values():
        err = _insert_one(SK, engine, attr, value)
        assert isinstance(err, RejectedValueError), (attr, value, err)
        assert sentence in str(err)


# -- the proof stays out of the application's way -------------------------------------------


def test_the_proof_is_invisible_to_the_engine(engine: Engine, ref_engine: Engine) -> None:
    """The same statements, transaction and pool events as the ORM: the value is bound on
    a private connection, outside the engine's pool and listeners."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Base = api.declarative_base()

        class Row(Base):
            __tablename__ = "blame_rows"
            id = Column(Integer, primary_key=True, autoincrement=False)
            i = Column(Integer)

        Base.metadata.create_all(engine)
        session = api.Session(engine)
        session.add_all([Row(id=1, i=1), Row(id=2, i={"not": "an int"})])
        obs.rec.clear()
        obs.error("flush", session.flush)
        obs.sql("the INSERT, then ROLLBACK; nothing else", pool=True)
        session.close()
        obs.sql("close", pool=True)

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    assert facts["flush"][1] == "raises"
    kinds = event_kinds(facts["the INSERT, then ROLLBACK; nothing else"][1])
    assert kinds[0] == "checkout" and kinds[-1] == "ROLLBACK"
    assert kinds.count("checkout") == 1
    assert event_kinds(facts["close"][1]) == ["checkin"]


def test_an_in_memory_sqlite_database_is_explained_and_its_savepoint_kept(
    backend: Backend,
) -> None:
    """One DBAPI connection for everything (SingletonThreadPool): the proof must not run
    on it, nor roll back the transaction around the failed SAVEPOINT."""
    if not backend.is_sqlite:
        pytest.skip("an in-memory database is SQLite's")
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    Base, T = blame_model(SK)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(T(id=1, s="outer"))
        s.flush()
        nested = s.begin_nested()
        s.add(T(id=2, i={"not": "an int"}))
        with pytest.raises(RejectedValueError, match=r"T\(id=2\)\.i is \{'not': 'an int'\}"):
            s.flush()
        nested.rollback()
        s.commit()
    with engine.connect() as conn:
        assert conn.execute(sa.select(T.id, T.s)).all() == [(1, "outer")]
    engine.dispose()


def test_a_failed_flush_inside_a_savepoint_keeps_the_outer_work(
    engine: Engine, blame_table: Any
) -> None:
    """PostgreSQL aborts the transaction until ROLLBACK TO SAVEPOINT; the proof needs no
    statement of it, and the outer work commits."""
    T = blame_table
    _reset(engine, T)
    with Session(engine) as s:
        s.get(T, 1).s = "outer"
        s.flush()
        nested = s.begin_nested()
        s.add(T(id=10, dt="not a date"))
        with pytest.raises(RejectedValueError):
            s.flush()
        nested.rollback()
        s.commit()
    with engine.connect() as conn:
        assert conn.execute(sa.select(T.id, T.s).order_by(T.id)).all() == [
            (1, "outer"),
            (2, "seed"),
        ]


def test_a_refusal_no_single_value_reproduces_passes_through(engine: Engine) -> None:
    """A refusal that depends on the row (here a CHECK constraint across two columns) is
    the database's error, unchanged."""
    Base = declarative_base()

    class Pair(Base):
        __tablename__ = "blame_pairs"
        id = Column(Integer, primary_key=True, autoincrement=False)
        lo = Column(Integer)
        hi = Column(Integer)
        __table_args__ = (sa.CheckConstraint("lo < hi", name="lo_below_hi"),)

    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Pair(id=1, lo=5, hi=1))
        with pytest.raises(sa.exc.DBAPIError) as caught:
            s.flush()
    assert not isinstance(caught.value, RejectedValueError)
    assert "lo_below_hi" in str(caught.value) or "CHECK" in str(caught.value)


def test_a_duplicate_key_is_not_blamed_on_a_none_in_the_named_column(
    engine: Engine, ref_engine: Engine
) -> None:
    """SQLite and MariaDB name the unique column of a duplicate; another object's None in
    that column is not the cause."""

    def run(api: Api, engine: Engine) -> BaseException | None:
        Base = api.declarative_base()

        class Coded(Base):
            __tablename__ = "blame_coded"
            id = Column(Integer, primary_key=True, autoincrement=False)
            code = Column(String(10), unique=True)

        Base.metadata.create_all(engine)
        with api.Session(engine) as s:
            s.add(Coded(id=1, code="a"))
            s.commit()
            s.add_all([Coded(id=2, code="a"), Coded(id=3, code=None)])
            try:
                s.flush()
            except Exception as err:
                return err
        return None

    orm_err = run(ORM, ref_engine)
    err = run(SK, engine)
    assert isinstance(orm_err, sa.exc.IntegrityError)
    assert type(err) is type(orm_err)
