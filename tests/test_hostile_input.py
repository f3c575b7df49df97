"""Hostile and wrong values: they round-trip exactly or fail with an error that names the
object, the attribute and the fix, and nothing already committed is ever lost.

Every test runs on every backend (``engine``/``ref_engine``). Committed rows are always
checked through a separate Core connection, and a session whose flush failed must work
again after ``rollback()``. Where the ORM has the same concept, sessionkit's error is the
ORM's class (the same class name, a subclass of it) with a clearer message.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from reference import ORM, SK, Api
from sqlalchemy import Column, DateTime, Engine, Integer, String, Text, event, select
from sqlalchemy.dialects import mysql

from sessionkit import Session, declarative_base
from sessionkit.exc import PendingRollbackError, RejectedValueError
from support import Backend

# MariaDB/MySQL only: store any Unicode text and compare it byte for byte (no collation
# folding of emoji or case), and allow 10 MB in a Text column. Ignored elsewhere.
TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
BIG_TEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

HOSTILE = [
    "O'Reilly",
    "''",
    'say "hello"',
    "back\\slash \\' \\\\ \\n",
    "100% sure",
    "%s %(name)s %% %d",
    "who? what??",
    ":name :1 ::text",
    "a -- line comment",
    "/* block */ comment */",
    "'; DROP TABLE hostile_items; --",
    '"); DELETE FROM hostile_items; --',
    "1' OR '1'='1",
    "🐍 snake 🎉",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family",
    "\U0001d518\U0001d52b\U0001d526 \U0002070e \U0010fffd",  # non-BMP letters
    "line1\nline2\r\n\ttab",
    "e\u0301 \u202eRTL",
    "",
]


def hostile_model(api: Api) -> tuple[Any, Any]:
    """``Item(key VARCHAR PK, name, body TEXT, n INTEGER, req NOT NULL, when, data JSON)``."""
    Base = api.declarative_base()

    class Item(Base):
        __tablename__ = "hostile_items"
        __table_args__ = TABLE_ARGS
        key = Column(String(255), primary_key=True)
        name = Column(String(255))
        body = Column(BIG_TEXT)
        n = Column(Integer)
        req = Column(String(20), nullable=False)
        when = Column(DateTime)
        data = Column(sa.JSON)

    return Base, Item


def make_items(api: Api, engine: Engine) -> Any:
    Base, Item = hostile_model(api)
    Base.metadata.create_all(engine)
    return Item


def committed(engine: Engine, table: sa.Table) -> dict[Any, tuple[Any, ...]]:
    """Every row, read through a separate connection: what the database has committed."""
    with engine.connect() as conn:
        return {r[0]: tuple(r) for r in conn.execute(select(table))}


class StatementLog:
    """Every statement text and parameter set the engine sends, via before_cursor_execute."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.params: list[Any] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        self.statements.append(statement)
        self.params.append(params)

    def detach(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def param_values(self) -> Iterator[Any]:
        for p in self.params:
            sets = p if isinstance(p, list) else [p]
            for s in sets:
                yield from (s.values() if isinstance(s, dict) else s)


# -- 1. hostile text round-trips, always as bound parameters -------------------------------


def test_hostile_strings_round_trip_exactly_as_bound_parameters(engine: Engine) -> None:
    Item = make_items(SK, engine)
    log = StatementLog(engine)
    keys = [f"k{i}:{v}" for i, v in enumerate(HOSTILE)]
    bodies = [f"[body {i}] {v}" for i, v in enumerate(HOSTILE)]
    try:
        with Session(engine) as s:
            s.add_all(
                [
                    Item(key=k, name=v, body=b, req="r")
                    for k, v, b in zip(keys, HOSTILE, bodies, strict=True)
                ]
            )
            s.commit()
        with Session(engine) as s:  # fresh session: every value comes from the database
            for k, v, b in zip(keys, HOSTILE, bodies, strict=True):
                item = s.get(Item, k)
                assert item is not None, k
                assert (item.key, item.name, item.body) == (k, v, b)
            for k, v in zip(keys, HOSTILE, strict=True):  # a value in a WHERE clause
                if v:
                    assert s.query(Item).filter(Item.name == v).one().key == k
                    assert s.scalars(
                        select(Item).where(Item.body.contains(v, autoescape=True))
                    ).all()
        # UPDATE: each row takes another row's hostile text
        shifted = HOSTILE[1:] + HOSTILE[:1]
        with Session(engine) as s:
            items = [s.get(Item, k) for k in keys]
            for item, v in zip(items, shifted, strict=True):
                item.name = v
                item.body = f"updated {v}"
            s.commit()
        with Session(engine) as s:
            for k, v in zip(keys, shifted, strict=True):
                item = s.get(Item, k)
                assert (item.name, item.body) == (v, f"updated {v}")
            first = s.get(Item, keys[10])  # the DROP TABLE one: expire, refresh, delete
            s.expire(first)
            assert first.name == shifted[10]
            first.name = "changed"
            s.refresh(first)
            assert first.name == shifted[10]
            s.delete(first)
            s.commit()
    finally:
        log.detach()

    rows = committed(engine, Item.__table__)
    assert sorted(rows) == sorted(keys[:10] + keys[11:])  # the table and every other row
    assert rows[keys[0]][1:3] == (shifted[0], f"updated {shifted[0]}")
    # No value ever reached the SQL text; every one was sent as a parameter.
    sent = set(v for v in log.param_values() if isinstance(v, str))
    for value in [*keys, *bodies, *(f"updated {v}" for v in HOSTILE)]:
        assert not [s for s in log.statements if value in s], value
        assert value in sent, value
    assert log.statements and all(len(s) < 1000 for s in log.statements)


def test_ten_megabyte_text_round_trips(engine: Engine) -> None:
    Item = make_items(SK, engine)
    big = ("0123456789abcdef" * 64 + "é🐍'\"%s?:x--\n") * 10_000  # > 10 MB of characters
    assert len(big) > 10_000_000
    other = big[::-1]
    log = StatementLog(engine)
    try:
        with Session(engine) as s:
            s.add(Item(key="big", body=big, req="r"))
            s.commit()
        with Session(engine) as s:
            item = s.get(Item, "big")
            assert item.body == big
            item.body = other
            s.commit()
        with Session(engine) as s:
            assert s.get(Item, "big").body == other
    finally:
        log.detach()
    assert committed(engine, Item.__table__)["big"][2] == other
    assert all(len(s) < 1000 for s in log.statements)


# -- 2. NUL characters ----------------------------------------------------------------------


def test_nul_characters_round_trip_where_the_database_stores_them(
    engine: Engine, backend: Backend
) -> None:
    if backend.is_postgresql:
        pytest.skip("PostgreSQL text cannot store NUL; see the rejection tests")
    Item = make_items(SK, engine)
    with Session(engine) as s:
        s.add(Item(key="k\x00ey", name="a\x00b", body="\x00" * 3, req="\x00"))
        s.commit()
    with Session(engine) as s:
        item = s.get(Item, "k\x00ey")
        assert (item.name, item.body, item.req) == ("a\x00b", "\x00\x00\x00", "\x00")
        item.name = "\x00end\x00"
        s.commit()
    assert committed(engine, Item.__table__)["k\x00ey"][1] == "\x00end\x00"


def _baseline(Item: Any, engine: Engine, api: Api = SK) -> dict[Any, tuple[Any, ...]]:
    with api.Session(engine) as s:
        s.add_all(
            [
                Item(key="k0", name="zero", body="'; DROP TABLE hostile_items; --", req="r"),
                Item(key="k1", name="one", n=1, req="r"),
            ]
        )
        s.commit()
    return committed(engine, Item.__table__)


def assert_recovers(s: Any, engine: Engine, Item: Any, before: dict[Any, Any], err: Any) -> None:
    """A failed flush: rolled back, PendingRollbackError (quoting the error) until
    rollback(), committed rows untouched; afterwards the session works again."""
    assert not s.is_active
    with pytest.raises(PendingRollbackError) as pending:
        s.commit()
    assert str(err) in str(pending.value)
    assert committed(engine, Item.__table__) == before
    s.rollback()
    assert s.is_active
    s.add(Item(key="after", name="fine", req="r"))
    s.get(Item, "k0").name = "zero again"
    s.commit()
    after = committed(engine, Item.__table__)
    assert after["after"][1] == "fine"
    assert after["k0"][1] == "zero again"
    assert {k: v for k, v in after.items() if k not in ("after", "k0")} == {
        k: v for k, v in before.items() if k != "k0"
    }


def _nul_insert(s: Any, Item: Any) -> Any:
    bad = Item(key="k2", name="a\x00b", req="r")
    s.add(bad)
    s.flush()
    return bad


def _nul_among_many(s: Any, Item: Any) -> Any:
    s.add_all([Item(key=f"m{i}", name=f"fine {i}", req="r") for i in range(3)])
    bad = Item(key="m3", name="fine", body="text\x00with NUL", req="r")
    s.add_all([bad, Item(key="m4", name="fine", req="r")])
    s.flush()
    return bad


def _nul_update(s: Any, Item: Any) -> Any:
    bad = s.get(Item, "k1")
    bad.n = 2
    bad.name = "\x00"
    s.flush()
    return bad


def _nul_in_key(s: Any, Item: Any) -> Any:
    bad = Item(key="k\x00", req="r")
    s.add(bad)
    s.commit()
    return bad


def _nul_on_autoflush(s: Any, Item: Any) -> Any:
    bad = Item(key="k2", name="ok", req="before\x00after")
    s.add(bad)
    s.query(Item).all()
    return bad


NUL_CASES: dict[str, tuple[Callable[[Any, Any], Any], str, str]] = {
    "insert": (_nul_insert, "Item(key='k2').name", "at index 1"),
    "executemany": (_nul_among_many, "Item(key='m3').body", "at index 4"),
    "update": (_nul_update, "Item(key='k1').name", "at index 0"),
    "primary key": (_nul_in_key, "Item(key='k\\x00').key", "at index 1"),
    "autoflush": (_nul_on_autoflush, "Item(key='k2').req", "at index 6"),
}


@pytest.mark.parametrize("case", list(NUL_CASES))
def test_nul_character_on_postgresql_names_object_and_attribute(
    engine: Engine, ref_engine: Engine, backend: Backend, case: str
) -> None:
    if not backend.is_postgresql:
        pytest.skip("only PostgreSQL rejects NUL in text; elsewhere it round-trips")
    run, who, where = NUL_CASES[case]
    # The ORM lets the driver's error through: its class is the one to keep.
    OrmItem = make_items(ORM, ref_engine)
    _baseline(OrmItem, ref_engine, ORM)
    with ORM.Session(ref_engine) as orm_session, pytest.raises(sa.exc.StatementError) as orm:
        run(orm_session, OrmItem)

    Item = make_items(SK, engine)
    before = _baseline(Item, engine)
    s = Session(engine)
    with pytest.raises(RejectedValueError) as caught:
        run(s, Item)
    err = caught.value
    assert isinstance(err, type(orm.value))
    assert type(err).__name__ == type(orm.value).__name__ == "DataError"
    message = str(err)
    assert message.startswith(str(orm.value).splitlines()[0])  # the driver's words first
    assert (
        f"{who} contains a NUL character (\\x00) {where}, which PostgreSQL text columns "
        f"cannot store; strip it (value.replace('\\x00', '')) or use a LargeBinary column"
    ) in message
    assert err.attribute == who.rsplit(".", 1)[1]
    assert type(err.instance).__name__ == "Item"
    assert isinstance(err.__cause__, sa.exc.DataError)
    assert not isinstance(err.__cause__, RejectedValueError)
    if case == "autoflush":
        assert "raised as a result of Query-invoked autoflush" in message
    assert_recovers(s, engine, Item, before, err)
    s.close()


# -- 3. wrong Python types, None for NOT NULL ----------------------------------------------


class Opaque:
    """An arbitrary object no driver can store."""

    def __repr__(self) -> str:
        return "<Opaque>"


WRONG_VALUES: dict[str, tuple[str, Any]] = {
    "dict for Integer": ("n", {"a": 1}),
    "object for Integer": ("n", Opaque()),
    "str for Integer": ("n", "abc"),
    "list for Integer": ("n", [1, 2]),
    "huge int for Integer": ("n", 2**70),
    "dict for String": ("name", {"a": 1}),
    "object for String": ("name", Opaque()),
    "str for DateTime": ("when", "not a date"),
    "lone surrogate in String": ("name", "bad \udc80 text"),
    "too long for String(20)": ("req", "x" * 25),
    "set for JSON": ("data", {1, 2}),
    "None for NOT NULL": ("req", None),
}


def _wrong_value_run(api: Api, engine: Engine, how: str, attr: str, value: Any) -> Any:
    """Commit a baseline, then flush ``value`` into ``attr`` by INSERT or UPDATE.
    Returns (error or None, session, Item, committed rows before, the object)."""
    Item = make_items(api, engine)
    before = _baseline(Item, engine, api)
    s = api.Session(engine)
    if how == "insert":
        obj = Item(**{"key": "bad", "req": "r", attr: value})
        s.add_all([Item(key="good", req="r"), obj])
    else:
        s.get(Item, "k0").name = "changed first"
        obj = s.get(Item, "k1")
        setattr(obj, attr, value)
    try:
        s.flush()
    except Exception as err:
        return err, s, Item, before, obj
    return None, s, Item, before, obj


@pytest.mark.parametrize("how", ["insert", "update"])
@pytest.mark.parametrize("case", list(WRONG_VALUES))
def test_wrong_value_error_names_object_and_attribute(
    engine: Engine, ref_engine: Engine, case: str, how: str
) -> None:
    attr, value = WRONG_VALUES[case]
    key = "bad" if how == "insert" else "k1"
    orm_err, orm_s, OrmItem, _, _ = _wrong_value_run(ORM, ref_engine, how, attr, value)
    if orm_err is None:
        orm_s.commit()
    orm_s.close()
    err, s, Item, before, obj = _wrong_value_run(SK, engine, how, attr, value)
    if orm_err is None:
        # The database stored it for the ORM: it must store the same for sessionkit.
        assert err is None, f"the ORM stored {value!r}; sessionkit raised {err!r}"
        s.commit()
        s.close()
        ours = committed(engine, Item.__table__)
        assert ours == committed(ref_engine, OrmItem.__table__)
        assert key in ours
        return
    assert err is not None, f"the ORM raised {orm_err!r}; sessionkit stored the value"
    assert isinstance(err, RejectedValueError)
    assert isinstance(err, type(orm_err))
    assert type(err).__name__ == type(orm_err).__name__
    assert err.__cause__ is not None and type(err.__cause__) is type(orm_err)
    message = str(err)
    # The ORM's words first (MariaDB names the database, which differs between the two).
    assert _first_line(err, engine) == _first_line(orm_err, ref_engine)
    assert f"Item(key='{key}').{attr}" in message
    assert f"column hostile_items.{attr}" in message
    assert err.instance is obj and err.attribute == attr
    assert_recovers(s, engine, Item, before, err)
    s.close()


def _first_line(err: BaseException, engine: Engine) -> str:
    line = str(err).splitlines()[0]
    database = engine.url.database
    return line.replace(database, "<database>") if database else line


def test_none_for_not_null_message_says_what_to_do(engine: Engine) -> None:
    err, s, _Item, _before, _obj = _wrong_value_run(SK, engine, "insert", "req", None)
    assert isinstance(err, sa.exc.IntegrityError)
    assert (
        "Item(key='bad').req is None, but column hostile_items.req is NOT NULL; assign a "
        "value before flushing, or give the column a default"
    ) in str(err)
    s.rollback()
    s.close()


def test_wrong_type_message_says_what_to_do(engine: Engine) -> None:
    err, s, _Item, _before, _obj = _wrong_value_run(SK, engine, "update", "n", {"a": 1})
    assert isinstance(err, RejectedValueError)
    assert (
        "Item(key='k1').n is {'a': 1} (a dict), which column hostile_items.n (INTEGER) "
        "cannot store; assign an int (or None) before flushing"
    ) in str(err)
    s.rollback()
    s.close()


def test_a_new_object_without_a_key_is_named_by_its_address(engine: Engine) -> None:
    Base = declarative_base()

    class Row(Base):
        __tablename__ = "rows"
        id = Column(Integer, primary_key=True)
        n = Column(Integer)

    Base.metadata.create_all(engine)
    row = Row(n={"a": 1})
    with Session(engine) as s:
        s.add(row)
        with pytest.raises(RejectedValueError, match=rf"<Row at {hex(id(row))}>\.n is "):
            s.flush()


def test_rejected_value_error_classes() -> None:
    """One class per original class, named like it, subclassing it and RejectedValueError."""
    from sessionkit.exc import rejected_value_class

    data = rejected_value_class(sa.exc.DataError)
    assert data is rejected_value_class(sa.exc.DataError)
    assert data.__name__ == "DataError"
    assert issubclass(data, sa.exc.DataError) and issubclass(data, RejectedValueError)
    assert data.__module__ == "sessionkit.exc"
    assert RejectedValueError.DataError is data  # type: ignore[attr-defined]
    unicode_error = rejected_value_class(UnicodeEncodeError)
    assert issubclass(unicode_error, UnicodeEncodeError)
    assert not issubclass(RejectedValueError, sa.exc.SQLAlchemyError)


def test_errors_that_no_value_explains_pass_through_unchanged(engine: Engine) -> None:
    """A duplicate key is not a bad value: the database's IntegrityError, as in the ORM."""
    Item = make_items(SK, engine)
    before = _baseline(Item, engine)
    s = Session(engine)
    s.add(Item(key="k0", name="duplicate", req="r"))
    with pytest.raises(sa.exc.IntegrityError) as caught:
        s.flush()
    assert not isinstance(caught.value, RejectedValueError)
    assert_recovers(s, engine, Item, before, caught.value)
    s.close()


def test_a_datetime_column_round_trips_real_datetimes(engine: Engine) -> None:
    Item = make_items(SK, engine)
    when = datetime.datetime(2024, 2, 29, 23, 59, 58)
    with Session(engine) as s:
        s.add(Item(key="t", when=when, req="r"))
        s.commit()
    with Session(engine) as s:
        assert s.get(Item, "t").when == when


# -- 4. reserved words and mixed case as table and column names ----------------------------


def reserved_models() -> tuple[Any, Any, Any, Any]:
    """Tables ``"User"``, ``"order"`` and ``"select"``; columns ``from``, ``group``,
    ``select``, ``user``, ``Name``, ``UserId``, ``where``, ``table``, ``values``."""
    Base = declarative_base()

    class User(Base):
        __tablename__ = "User"
        __table_args__ = TABLE_ARGS
        UserId = Column(Integer, primary_key=True)
        Name = Column(String(30))
        user = Column(String(30))

    class Order(Base):
        __tablename__ = "order"
        __table_args__ = TABLE_ARGS
        id = Column(Integer, primary_key=True)
        select = Column(String(30))
        from_ = Column("from", String(30))
        group_ = Column("group", Integer)
        user_id = Column("User", Integer, sa.ForeignKey("User.UserId"))

    class Select(Base):
        __tablename__ = "select"
        __table_args__ = TABLE_ARGS
        where = Column(String(20), primary_key=True)
        table = Column(Integer, primary_key=True)
        values = Column(String(30))

    return Base, User, Order, Select


@pytest.mark.parametrize("batch_refresh", [False, True], ids=["default", "batch_refresh"])
def test_reserved_words_and_mixed_case_names_work_everywhere(
    engine: Engine, batch_refresh: bool
) -> None:
    Base, User, Order, Select = reserved_models()
    Base.metadata.create_all(engine)

    def session() -> Session:
        return Session(engine, batch_refresh=batch_refresh)

    with session() as s:  # add + flush (INSERT, generated and client keys, executemany)
        s.add_all([User(Name="Ann", user="ann"), User(Name="Bob", user="bob")])
        s.flush()
        s.add_all(
            [
                Order(select="first", from_="web", group_=1, user_id=1),
                Order(select="second", from_="shop", group_=2, user_id=2),
            ]
        )
        s.add_all([Select(where="w", table=1, values="v1"), Select(where="w", table=2)])
        s.commit()
    with session() as s:  # get (fresh), query, execute
        ann = s.get(User, 1)
        assert (ann.UserId, ann.Name, ann.user) == (1, "Ann", "ann")
        first = s.get(Order, 1)
        assert (first.select, first.from_, first.group_, first.user_id) == ("first", "web", 1, 1)
        assert s.get(Select, ("w", 1)).values == "v1"
        assert s.get(Select, {"where": "w", "table": 2}).values is None
        orders = s.query(Order).filter(Order.from_ == "shop", Order.group_ > 1).all()
        assert [o.select for o in orders] == ["second"]
        assert s.query(Order).order_by(Order.group_.desc()).first().select == "second"
        assert s.query(Select).filter_by(where="w").count() == 2
        joined = s.execute(
            select(Order, User.Name).join(User, Order.user_id == User.UserId).order_by(Order.id)
        ).all()
        assert [(o.select, name) for o, name in joined] == [("first", "Ann"), ("second", "Bob")]
        # update (executemany), expire + reload, refresh, primary-key change
        for o in s.query(Order).all():
            o.from_ = f"{o.from_}!"
            o.group_ += 10
        s.get(Select, ("w", 2)).values = "v2"
        s.commit()  # expires everything: the reads below reload (in a batch if enabled)
        assert [o.from_ for o in s.query(Order).order_by(Order.id)] == ["web!", "shop!"]
        assert first.group_ == 11
        s.expire(ann, ["Name"])
        assert ann.Name == "Ann"
        ann.user = "unsaved"
        s.refresh(ann)
        assert ann.user == "ann"
        sel = s.get(Select, ("w", 1))
        sel.table = 3
        s.commit()
        assert s.get(Select, ("w", 3)) is sel and s.get(Select, ("w", 1)) is None
        s.delete(s.get(Order, 2))  # delete
        s.delete(sel)
        s.commit()

    with engine.connect() as conn:  # read back through Core
        assert conn.execute(
            select(Order.id, Order.select, Order.from_, Order.group_).order_by(Order.id)
        ).all() == [(1, "first", "web!", 11)]
        assert conn.execute(select(Select.__table__)).all() == [("w", 2, "v2")]
        assert conn.execute(select(User.__table__).order_by(User.UserId)).all() == [
            (1, "Ann", "ann"),
            (2, "Bob", "bob"),
        ]


class BadRepr:
    """A value whose repr() itself fails."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_a_value_that_cannot_even_be_described_keeps_the_original_error(
    engine: Engine, ref_engine: Engine
) -> None:
    orm_err, orm_s, _, _, _ = _wrong_value_run(ORM, ref_engine, "insert", "n", BadRepr())
    orm_s.close()
    err, s, Item, before, _ = _wrong_value_run(SK, engine, "insert", "n", BadRepr())
    assert orm_err is not None and err is not None
    assert type(err) is type(orm_err)  # not wrapped: explaining it failed, nothing is hidden
    assert not s.is_active
    assert committed(engine, Item.__table__) == before
    s.rollback()
    s.add(Item(key="after", req="r"))
    s.commit()
    assert sorted(committed(engine, Item.__table__)) == sorted([*before, "after"])
    s.close()
