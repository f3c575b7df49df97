"""Relationships: declaring them and loading them.

Each scenario builds its models from one source for both libraries (``models_rel.py``),
creates them with ``Base.metadata.create_all``, inserts its rows with Core, then runs on
sessionkit (``engine``) and on the SQLAlchemy ORM (``ref_engine``, a database of its own).
Both runs return their facts: SELECTs counted per step, what was loaded, states, errors.

Where the two libraries load alike, the facts must be equal. sessionkit's default
(``lazy="batch"``) differs on purpose from the ORM's (``lazy="select"``): reading one
object's unloaded relationship loads it for every object of the same result (or expired by
the same event) in one ``SELECT ... IN``; those tests state both counts side by side.

The last section pins the refusal of writes to collections (sessionkit only): assigning
or deleting a collection, mutating a loaded one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from models_rel import Names, classic, imperative, library, mail, names, tree
from sqlalchemy import Engine, insert, select

import sessionkit.exc as sk_exc
from support import SQLRecorder

Facts = dict[str, Any]
Rows = list[dict[str, Any]]


class Selects:
    """The SELECT statements an engine runs, taken step by step."""

    def __init__(self, engine: Engine) -> None:
        self.rec = SQLRecorder(engine)

    def take(self) -> list[tuple[str, Any]]:
        """The SELECTs since the last take."""
        out = [(q, p) for q, p in self.rec.statements() if q.lstrip().upper().startswith("SELECT")]
        self.rec.clear()
        return out

    def count(self) -> int:
        return len(self.take())

    def __enter__(self) -> Selects:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rec.detach()


def both(scenario: Callable[..., Facts], engine: Engine, ref_engine: Engine, *args: Any) -> Any:
    """``(sessionkit's facts, the ORM's facts)``."""
    return scenario(names("sessionkit"), engine, *args), scenario(names("orm"), ref_engine, *args)


def build(engine: Engine, m: Any, **rows: Rows) -> None:
    """Create the tables of ``m`` and insert ``rows`` by table name, in the order given."""
    m.Base.metadata.create_all(engine)
    with engine.begin() as conn:
        for table, data in rows.items():
            if data:
                conn.execute(insert(m.Base.metadata.tables[table]), data)


def authors(n: int) -> Rows:
    return [{"id": i, "name": f"author {i}"} for i in range(1, n + 1)]


def books(n: int, each: int) -> Rows:
    """``each`` books for each of authors 1..n; book ``10*i + j`` is ``"book i.j"``."""
    return [
        {"id": 10 * i + j, "title": f"book {i}.{j}", "author_id": i}
        for i in range(1, n + 1)
        for j in range(each)
    ]


def titles_of(n: int, each: int) -> list[list[str]]:
    return [[f"book {i}.{j}" for j in range(each)] for i in range(1, n + 1)]


def titles(objs: Any) -> list[str]:
    return [b.title for b in objs]


def error(fn: Callable[[], Any]) -> BaseException | None:
    try:
        fn()
    except Exception as err:
        return err
    return None


# -- one-to-many ---------------------------------------------------------------------------


def o2m_loop(
    ns: Names, engine: Engine, books_lazy: str | None = None, option: str | None = None
) -> Facts:
    """10 authors x 3 books: query the authors, read each one's ``books``."""
    m = library(ns, books_lazy=books_lazy)
    build(engine, m, author=authors(10), book=books(10, 3))
    stmt = select(m.Author).order_by(m.Author.id)
    if option is not None:
        stmt = stmt.options(getattr(ns, option)(m.Author.books))
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(stmt).all()
        f["query"] = sql.count()
        f["unloaded"] = sorted(ns.inspect(found[0]).unloaded)
        f["error"] = error(lambda: found[0].books)
        first = sql.take()
        f["error sql"] = len(first)
        if f["error"] is None:
            f["books"] = [titles(a.books) for a in found]
            f["batches"] = first + sql.take()
            f["loop"] = len(f["batches"])
            f["again"] = ([titles(a.books) for a in found], sql.count())
            f["after"] = sorted(ns.inspect(found[0]).unloaded)
            f["list"] = all(isinstance(a.books, list) for a in found)
        f["states"] = {ns.api.state(a) for a in found}
    return f


def test_o2m_default_batches_where_orm_loads_one_by_one(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(o2m_loop, engine, ref_engine)
    assert (sk["query"] + sk["loop"], orm["query"] + orm["loop"]) == (2, 11)
    assert sk["books"] == orm["books"] == titles_of(10, 3)
    assert sk["again"] == orm["again"] == (titles_of(10, 3), 0)
    assert sk["unloaded"] == orm["unloaded"] == ["books", "profile"]
    assert sk["after"] == orm["after"] == ["profile"]
    assert (sk["list"], orm["list"]) == (True, True)
    assert sk["states"] == orm["states"] == {"persistent"}
    ((batch, params),) = sk["batches"]
    assert set(range(1, 11)) <= batch_keys(engine, batch, params)


def batch_keys(engine: Engine, sql: str, params: Any) -> set[Any]:
    """The keys one batched SELECT asked for: an array on PostgreSQL, a JSON list read by
    json_each on SQLite, an expanded IN list elsewhere (README, Batched refresh)."""
    if engine.dialect.name == "postgresql":
        assert " = ANY (" in sql
        return set(params[0])
    if engine.dialect.name == "sqlite":
        assert "IN (SELECT anon_1.value \nFROM json_each(?)" in sql
        return set(json.loads(params[0]))
    assert " IN (" in sql
    return set(params)


def test_o2m_lazy_select_loads_one_by_one_as_orm(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(o2m_loop, engine, ref_engine, "select")
    assert (sk["query"], sk["loop"]) == (orm["query"], orm["loop"]) == (1, 10)
    assert sk["books"] == orm["books"] == titles_of(10, 3)


@pytest.mark.parametrize(("books_lazy", "option"), [(None, "selectinload"), ("selectin", None)])
def test_selectin_loads_at_query_time(
    engine: Engine, ref_engine: Engine, books_lazy: str | None, option: str | None
) -> None:
    sk, orm = both(o2m_loop, engine, ref_engine, books_lazy, option)
    assert (sk["query"], sk["loop"]) == (orm["query"], orm["loop"]) == (2, 0)
    assert sk["unloaded"] == orm["unloaded"] == ["profile"]
    assert sk["books"] == orm["books"] == titles_of(10, 3)


@pytest.mark.parametrize(("books_lazy", "option"), [(None, "raiseload"), ("raise", None)])
def test_raise_refuses_to_load(
    engine: Engine, ref_engine: Engine, books_lazy: str | None, option: str | None
) -> None:
    sk, orm = both(o2m_loop, engine, ref_engine, books_lazy, option)
    for err in (orm["error"], sk["error"]):
        assert isinstance(err, sa_exc.InvalidRequestError)
        assert "'Author.books' is not available due to lazy='raise'" in str(err)
    assert isinstance(sk["error"], sk_exc.InvalidRequestError)
    assert (sk["query"], sk["error sql"]) == (orm["query"], orm["error sql"]) == (1, 0)


def test_lazyload_option_overrides_lazy_raise(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(o2m_loop, engine, ref_engine, "raise", "lazyload")
    assert (sk["error"], orm["error"]) == (None, None)
    assert sk["books"] == orm["books"] == titles_of(10, 3)
    assert (orm["query"], orm["loop"]) == (1, 10)


def results_split(ns: Names, engine: Engine, n: int, parts: int) -> Facts:
    """n authors with one book each, queried in ``parts`` results; each one's books read."""
    m = library(ns)
    build(engine, m, author=authors(n), book=books(n, 1))
    size = n // parts + (n % parts > 0)
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = [
            a
            for k in range(parts)
            for a in s.scalars(
                select(m.Author).where(m.Author.id.between(k * size + 1, (k + 1) * size))
            ).all()
        ]
        found.sort(key=lambda a: a.id)
        return {"books": [titles(a.books) for a in found], "selects": sql.count()}


def test_batch_is_per_result(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(results_split, engine, ref_engine, 10, 2)
    assert (sk["selects"], orm["selects"]) == (2 + 2, 2 + 10)
    assert sk["books"] == orm["books"] == titles_of(10, 1)


def test_batch_is_chunked_at_500_keys(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(results_split, engine, ref_engine, 501, 1)
    assert (sk["selects"], orm["selects"]) == (1 + 2, 1 + 501)
    assert sk["books"] == orm["books"] == titles_of(501, 1)


def chained(ns: Names, engine: Engine) -> Facts:
    """Author.books -> Book.reviews, both selectin-loaded by one chained option."""
    m = library(ns)
    reviews = [
        {"id": 10 * b["id"] + k, "book_id": b["id"], "stars": (b["id"] + k) % 5}
        for b in books(4, 2)
        for k in range(2)
    ]
    build(engine, m, author=authors(4), book=books(4, 2), review=reviews)
    opt = ns.selectinload(m.Author.books).selectinload(m.Book.reviews)
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).options(opt).order_by(m.Author.id)).all()
        query = sql.count()
        stars = [[[r.stars for r in b.reviews] for b in a.books] for a in found]
        return {"query": query, "read": sql.count(), "stars": stars}


def test_chained_selectinload_two_levels(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(chained, engine, ref_engine)
    assert (sk["query"], sk["read"]) == (orm["query"], orm["read"]) == (3, 0)
    expected = [[[(10 * i + j + k) % 5 for k in range(2)] for j in range(2)] for i in range(1, 5)]
    assert sk["stars"] == orm["stars"] == expected


def ordered(ns: Names, engine: Engine, option: str | None) -> Facts:
    """order_by="Book.title", titles running against the ids."""
    m = library(ns, books_order="Book.title")
    rows = [{**r, "title": f"{'cba'[r['id'] % 10]} by {r['author_id']}"} for r in books(5, 3)]
    build(engine, m, author=authors(5), book=rows)
    stmt = select(m.Author).order_by(m.Author.id)
    if option is not None:
        stmt = stmt.options(getattr(ns, option)(m.Author.books))
    with ns.Session(engine) as s:
        return {"books": [titles(a.books) for a in s.scalars(stmt)]}


@pytest.mark.parametrize("option", [None, "selectinload"])
def test_order_by_is_respected(engine: Engine, ref_engine: Engine, option: str | None) -> None:
    sk, orm = both(ordered, engine, ref_engine, option)
    expected = [[f"{c} by {i}" for c in "abc"] for i in range(1, 6)]
    assert sk["books"] == orm["books"] == expected


# -- many-to-one ---------------------------------------------------------------------------


def m2o_in_map(ns: Names, engine: Engine) -> Facts:
    m = library(ns)
    build(engine, m, author=authors(10), book=books(10, 3))
    with ns.Session(engine) as s, Selects(engine) as sql:
        by_id = {a.id: a for a in s.scalars(select(m.Author))}
        found = s.scalars(select(m.Book).order_by(m.Book.id)).all()
        query = sql.count()
        same = [b.author is by_id[b.author_id] for b in found]
        return {"query": query, "read": sql.count(), "same": same}


def test_m2o_in_identity_map_costs_no_sql(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(m2o_in_map, engine, ref_engine)
    assert (sk["query"], sk["read"]) == (orm["query"], orm["read"]) == (2, 0)
    assert sk["same"] == orm["same"] == [True] * 30


def m2o_loop(ns: Names, engine: Engine) -> Facts:
    """10 books with 10 distinct unloaded authors, and one book without an author."""
    m = library(ns)
    orphan = {"id": 500, "title": "orphan", "author_id": None}
    build(engine, m, author=authors(10), book=[*books(10, 1), orphan])
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Book).order_by(m.Book.id)).all()
        query = sql.count()
        unloaded = sorted(ns.inspect(found[0]).unloaded)
        names_ = [None if b.author is None else b.author.name for b in found]
        return {"query": query, "read": sql.count(), "names": names_, "unloaded": unloaded}


def test_m2o_default_batches_where_orm_loads_one_by_one(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(m2o_loop, engine, ref_engine)
    assert (sk["query"] + sk["read"], orm["query"] + orm["read"]) == (2, 11)
    assert sk["names"] == orm["names"] == [f"author {i}" for i in range(1, 11)] + [None]
    assert sk["unloaded"] == orm["unloaded"] == ["author", "reviews", "tags"]


# -- many-to-many, one-to-one --------------------------------------------------------------


def m2m(ns: Names, engine: Engine) -> Facts:
    """10 books, 4 tags through ``book_tag``; book 10.0 has no tag."""
    m = library(ns)
    tags = [{"id": t, "label": f"tag {t}"} for t in range(1, 5)]
    links = [
        {"book_id": b["id"], "tag_id": t}
        for b in books(9, 1)
        for t in range(1, 5)
        if (b["author_id"] + t) % 3
    ]
    build(engine, m, author=authors(10), book=books(10, 1), tag=tags, book_tag=links)
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Book).order_by(m.Book.id)).all()
        f["book tags"] = [[t.label for t in b.tags] for b in found]
        f["by book"] = sql.take()
        f["by book n"] = len(f["by book"])
    with ns.Session(engine) as s, Selects(engine) as sql:
        found_tags = s.scalars(select(m.Tag).order_by(m.Tag.id)).all()
        f["tag books"] = [titles(t.books) for t in found_tags]
        f["by tag"] = sql.count()
    f["links"] = links
    return f


def test_many_to_many_secondary(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(m2m, engine, ref_engine)
    assert (sk["by book n"], orm["by book n"]) == (2, 11)
    assert (sk["by tag"], orm["by tag"]) == (2, 5)
    links = orm["links"]
    expected = [
        [f"tag {t}" for t in range(1, 5) if {"book_id": 10 * i, "tag_id": t} in links]
        for i in range(1, 11)
    ]
    assert sk["book tags"] == orm["book tags"] == expected
    assert expected[-1] == [] and all(expected[:-1])
    by_tag = [
        [f"book {i}.0" for i in range(1, 11) if {"book_id": 10 * i, "tag_id": t} in links]
        for t in range(1, 5)
    ]
    assert sk["tag books"] == orm["tag books"] == by_tag
    assert "book_tag" in sk["by book"][1][0]


def one_to_one(ns: Names, engine: Engine) -> Facts:
    """5 authors, profiles for authors 1-4."""
    m = library(ns)
    profiles = [{"id": i, "author_id": i, "bio": f"bio {i}"} for i in range(1, 5)]
    build(engine, m, author=authors(5), profile=profiles)
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).order_by(m.Author.id)).all()
        query = sql.count()
        bios = [None if a.profile is None else a.profile.bio for a in found]
        read = sql.count()
        back = [a.profile.author is a for a in found if a.profile is not None]
        return {"query": query, "read": read, "bios": bios, "back": (back, sql.count())}


def test_one_to_one_uselist_false(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(one_to_one, engine, ref_engine)
    assert (sk["query"] + sk["read"], orm["query"] + orm["read"]) == (2, 6)
    assert sk["bios"] == orm["bios"] == ["bio 1", "bio 2", "bio 3", "bio 4", None]
    assert sk["back"] == orm["back"] == ([True] * 4, 0)


# -- self-referential, two foreign keys, other declarations --------------------------------

# 1 -< 2, 3; 2 -< 4, 5; 3 -< 6
PARENTS = {1: None, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3}


def adjacency(ns: Names, engine: Engine) -> Facts:
    m = tree(ns)
    build(engine, m, node=[{"id": i, "parent_id": p} for i, p in PARENTS.items()])
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        nodes = s.scalars(select(m.Node).order_by(m.Node.id)).all()
        sql.take()
        f["parents"] = ([None if n.parent is None else n.parent.id for n in nodes], sql.count())
        f["children"] = [[c.id for c in n.children] for n in nodes]
        f["children sql"] = sql.count()
    with ns.Session(engine) as s, Selects(engine) as sql:
        leaves = s.scalars(select(m.Node).where(m.Node.id >= 4).order_by(m.Node.id)).all()
        sql.take()
        f["leaf parents"] = [n.parent.id for n in leaves]
        f["leaf parents sql"] = sql.count()
        f["grandparents"] = ([n.parent.parent.id for n in leaves], sql.count())
    return f


def test_self_referential_adjacency_list(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(adjacency, engine, ref_engine)
    assert sk["parents"] == orm["parents"] == (list(PARENTS.values()), 0)
    kids = [[c for c, p in PARENTS.items() if p == n] for n in PARENTS]
    assert sk["children"] == orm["children"] == kids
    assert (sk["children sql"], orm["children sql"]) == (1, 6)
    assert sk["leaf parents"] == orm["leaf parents"] == [2, 2, 3]
    assert (sk["leaf parents sql"], orm["leaf parents sql"]) == (1, 2)
    assert sk["grandparents"] == orm["grandparents"] == ([1, 1, 1], 1)


MESSAGES = [(1, 2), (1, 3), (2, 3), (3, 1), (3, 2)]


def two_fks(ns: Names, engine: Engine) -> Facts:
    m = mail(ns)
    people = [{"id": i, "name": f"p{i}"} for i in range(1, 4)]
    rows = [{"id": k, "sender_id": a, "recipient_id": b} for k, (a, b) in enumerate(MESSAGES, 1)]
    build(engine, m, person=people, message=rows)
    with ns.Session(engine) as s, Selects(engine) as sql:
        persons = s.scalars(select(m.Person).order_by(m.Person.id)).all()
        msgs = s.scalars(select(m.Message).order_by(m.Message.id)).all()
        sql.take()
        ends = [(x.sender.name, x.recipient.name) for x in msgs]
        ends_sql = sql.count()
        boxes = [([x.id for x in p.sent], [x.id for x in p.received]) for p in persons]
        return {"ends": (ends, ends_sql), "boxes": boxes, "boxes sql": sql.count()}


def test_two_foreign_keys_to_one_table(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(two_fks, engine, ref_engine)
    ends = [(f"p{a}", f"p{b}") for a, b in MESSAGES]
    assert sk["ends"] == orm["ends"] == (ends, 0)
    boxes = [
        (
            [k for k, (a, _) in enumerate(MESSAGES, 1) if a == p],
            [k for k, (_, b) in enumerate(MESSAGES, 1) if b == p],
        )
        for p in range(1, 4)
    ]
    assert sk["boxes"] == orm["boxes"] == boxes
    assert (sk["boxes sql"], orm["boxes sql"]) == (2, 6)


def other_declarations(ns: Names, engine: Engine, factory: Callable[[Names], Any]) -> Facts:
    m = factory(ns)
    build(engine, m, author=authors(4), book=books(4, 2))
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).order_by(m.Author.id)).all()
        contents = [sorted(titles(a.books)) for a in found]
        loaded = sql.count()
        back = [b.author is a for a in found for b in a.books]
        return {"books": contents, "selects": loaded, "back": (back, sql.count())}


@pytest.mark.parametrize("factory", [classic, imperative], ids=["declarative_base", "imperative"])
def test_declarative_base_and_map_imperatively(
    engine: Engine, ref_engine: Engine, factory: Callable[[Names], Any]
) -> None:
    sk, orm = both(other_declarations, engine, ref_engine, factory)
    assert (sk["selects"], orm["selects"]) == (2, 5)
    assert sk["books"] == orm["books"] == titles_of(4, 2)
    assert sk["back"] == orm["back"] == ([True] * 8, 0)


# -- transient and pending -----------------------------------------------------------------


def new_objects(ns: Names, engine: Engine) -> Facts:
    m = library(ns)
    build(engine, m, author=authors(2), book=books(2, 2))
    with ns.Session(engine) as s, Selects(engine) as sql:
        a, b = m.Author(name="new"), m.Book(title="new", author_id=1)
        f: Facts = {"transient": (a.books, a.profile, b.author, b.tags, b.reviews)}
        f["transient sql"] = sql.count()
        pa, pb = m.Author(id=7, name="pending"), m.Book(id=70, title="pending", author_id=1)
        s.add_all([pa, pb])
        f["pending"] = (pa.books, pa.profile, pb.author, pb.tags, pb.reviews)
        f["states"] = [ns.api.state(o) for o in (a, b, pa, pb)]
        f["pending sql"] = sql.count()
        s.rollback()
    return f


def test_transient_and_pending_read_empty_without_sql(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(new_objects, engine, ref_engine)
    empty = ([], None, None, [], [])
    assert sk["transient"] == orm["transient"] == empty
    assert sk["pending"] == orm["pending"] == empty
    assert sk["states"] == orm["states"] == ["transient"] * 2 + ["pending"] * 2
    assert (sk["transient sql"], sk["pending sql"]) == (orm["transient sql"], orm["pending sql"])
    assert (orm["transient sql"], orm["pending sql"]) == (0, 0)


# -- lifecycle -----------------------------------------------------------------------------


def expire_everything(ns: Names, engine: Engine, how: str) -> Facts:
    """Books read for 10 authors; commit/rollback/expire_all; books read again."""
    m = library(ns)
    build(engine, m, author=authors(10), book=books(10, 3))
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).order_by(m.Author.id)).all()
        first = [titles(a.books) for a in found]
        sql.take()
        getattr(s, how)()
        f: Facts = {"unloaded": [sorted(ns.inspect(a).unloaded) for a in found]}
        f["states"] = {ns.api.state(a) for a in found}
        f["end sql"] = sql.count()
        # Only relationships are read, no column of an author.
        again = [titles(a.books) for a in found]
        f["reload"] = sql.count()
        f["same"] = (first == again, again == titles_of(10, 3))
        f["names"] = ([a.name for a in found], sql.count())
    return f


@pytest.mark.parametrize("how", ["commit", "rollback", "expire_all"])
def test_commit_rollback_expire_all_drop_loaded_relationships(
    engine: Engine, ref_engine: Engine, how: str
) -> None:
    sk, orm = both(expire_everything, engine, ref_engine, how)
    unloaded = [["books", "id", "name", "profile"]] * 10
    assert sk["unloaded"] == orm["unloaded"] == unloaded
    assert sk["states"] == orm["states"] == {"persistent"}
    assert sk["end sql"] == orm["end sql"] == 0
    # The ORM first refreshes each expired author's row (its lazy clause reads the
    # author's id attribute), then loads its books: 2 SELECTs per author. sessionkit
    # takes the keys from the identities: one batch for the authors expired together.
    assert (sk["reload"], orm["reload"]) == (1, 20)
    assert sk["same"] == orm["same"] == (True, True)
    assert sk["names"][0] == orm["names"][0] == [f"author {i}" for i in range(1, 11)]


def expire_some(ns: Names, engine: Engine, how: str) -> Facts:
    """``expire(a1, ["books"])`` or ``refresh(a1)`` after every author's books were read."""
    m = library(ns)
    build(engine, m, author=authors(3), book=books(3, 2))
    with ns.Session(engine) as s, Selects(engine) as sql:
        a1, a2, a3 = s.scalars(select(m.Author).order_by(m.Author.id)).all()
        for a in (a1, a2, a3):
            titles(a.books)
        sql.take()
        if how == "expire":
            s.expire(a1, ["books"])
        else:
            s.refresh(a1)
        f: Facts = {"step sql": sql.count()}
        f["unloaded"] = [sorted(ns.inspect(a).unloaded) for a in (a1, a2, a3)]
        f["name"] = (a1.name, sql.count())
        f["a1"] = (titles(a1.books), sql.count())
        f["others"] = ([titles(a.books) for a in (a2, a3)], sql.count())
    return f


def test_expire_attribute_drops_only_that_relationship(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(expire_some, engine, ref_engine, "expire")
    assert sk["step sql"] == orm["step sql"] == 0
    assert sk["unloaded"] == orm["unloaded"] == [["books", "profile"], ["profile"], ["profile"]]
    assert sk["name"] == orm["name"] == ("author 1", 0)
    assert sk["a1"] == orm["a1"] == (["book 1.0", "book 1.1"], 1)
    assert (
        sk["others"] == orm["others"] == ([["book 2.0", "book 2.1"], ["book 3.0", "book 3.1"]], 0)
    )


def test_refresh_drops_the_objects_relationships(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(expire_some, engine, ref_engine, "refresh")
    assert sk["step sql"] == orm["step sql"] == 1
    assert sk["unloaded"] == orm["unloaded"] == [["books", "profile"], ["profile"], ["profile"]]
    assert sk["name"] == orm["name"] == ("author 1", 0)
    assert sk["a1"] == orm["a1"] == (["book 1.0", "book 1.1"], 1)
    assert (
        sk["others"] == orm["others"] == ([["book 2.0", "book 2.1"], ["book 3.0", "book 3.1"]], 0)
    )


def detach(ns: Names, engine: Engine, how: str) -> Facts:
    """a1's books read, a2's not (a1 came from a result of its own); the session closed
    (or both expunged); then re-added."""
    m = library(ns)
    build(engine, m, author=authors(3), book=books(3, 2))
    f: Facts = {}
    with Selects(engine) as sql:
        s = ns.Session(engine)
        # a1 from a result of its own: reading its books does not batch-load a2's.
        a1 = s.scalars(select(m.Author).where(m.Author.id == 1)).one()
        a2, a3 = s.scalars(select(m.Author).where(m.Author.id > 1).order_by(m.Author.id)).all()
        b1 = a1.books[0]
        if how == "close":
            s.close()
        else:
            for o in (a1, a2, a3, *a1.books):
                s.expunge(o)
        sql.take()
        f["states"] = [ns.api.state(o) for o in (a1, a2, b1)]
        f["loaded"] = (titles(a1.books), sql.count())
        f["errors"] = [error(lambda: a2.books), error(lambda: b1.author)]
        f["error sql"] = sql.count()
        f["unloaded"] = [sorted(ns.inspect(o).unloaded) for o in (a1, a2, b1)]
        s.close()
        with ns.Session(engine) as s2:
            s2.add(a2)
            sql.take()
            f["re-added"] = (ns.api.state(a2), titles(a2.books), sql.count())
    return f


@pytest.mark.parametrize("how", ["close", "expunge"])
def test_detached_loaded_reads_unloaded_raises_readd_loads(
    engine: Engine, ref_engine: Engine, how: str
) -> None:
    sk, orm = both(detach, engine, ref_engine, how)
    assert sk["states"] == orm["states"] == ["detached"] * 3
    assert sk["loaded"] == orm["loaded"] == (["book 1.0", "book 1.1"], 0)
    assert sk["error sql"] == orm["error sql"] == 0
    assert sk["unloaded"] == orm["unloaded"]
    assert orm["unloaded"] == [["profile"], ["books", "profile"], ["author", "reviews", "tags"]]
    assert sk["re-added"] == orm["re-added"] == ("persistent", ["book 2.0", "book 2.1"], 1)
    # The error, its class and attribute: a2.books, then b1.author.
    wanted = [("Author", "books"), ("Book", "author")]
    for err, (cls, attr) in zip(orm["errors"], wanted, strict=True):
        assert isinstance(err, names("orm").DetachedInstanceError)
        assert cls in str(err) and f"'{attr}'" in str(err)
    for err, (cls, attr) in zip(sk["errors"], wanted, strict=True):
        assert isinstance(err, sk_exc.DetachedInstanceError)
        assert cls in str(err) and attr in str(err)


# -- writing many-to-many collections ---------------------------------------------------------


def tag_writes(ns: Names, engine: Engine, write: str) -> Facts:
    """Books 10 and 11, tags 1 and 2; book 10 tagged 1. One change to a collection, then
    commit: what each side shows (no SQL for the other side's loaded collection) and the
    association rows written."""
    m = library(ns)
    build(
        engine,
        m,
        author=authors(1),
        book=books(1, 2),
        tag=[{"id": 1, "label": "t1"}, {"id": 2, "label": "t2"}],
    )
    with engine.begin() as conn:
        conn.execute(insert(m.book_tag), [{"book_id": 10, "tag_id": 1}])
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        b10, b11 = s.scalars(select(m.Book).order_by(m.Book.id)).all()
        t1, t2 = s.scalars(select(m.Tag).order_by(m.Tag.id)).all()
        loaded = (b10.tags, b11.tags, t1.books, t2.books)  # both sides loaded
        assert all(isinstance(x, list) for x in loaded)
        sql.take()
        changes = {
            "append": lambda: b11.tags.append(t1),
            "append new": lambda: b11.tags.append(m.Tag(id=3, label="t3")),
            "remove": lambda: b10.tags.remove(t1),
            "assign": lambda: setattr(b10, "tags", [t2]),
            "clear": lambda: b10.tags.clear(),
            "other side": lambda: t2.books.append(b10),
            "add and remove": lambda: (b11.tags.append(t2), b11.tags.remove(t2)),
        }
        changes[write]()
        f["python"] = ([t.id for t in b10.tags], [b.id for b in t1.books], sql.count())
        s.commit()
    with engine.connect() as conn:
        f["rows"] = sorted(map(tuple, conn.execute(select(m.book_tag))))
    return f


@pytest.mark.parametrize(
    "write",
    ["append", "append new", "remove", "assign", "clear", "other side", "add and remove"],
)
def test_many_to_many_writes(engine: Engine, ref_engine: Engine, write: str) -> None:
    sk, orm = both(tag_writes, engine, ref_engine, write)
    assert sk == orm


def test_viewonly_relationship_refuses_writes(engine: Engine) -> None:
    """sessionkit only: the ORM accepts a change to a viewonly relationship and drops it
    at the flush (with a warning); sessionkit refuses it, naming the attribute."""
    import sessionkit

    base: Any = sessionkit.declarative_base()

    class Owner(base):
        __tablename__ = "owner"
        id = sa.Column(sa.Integer, primary_key=True)
        pets = sessionkit.relationship("Pet", viewonly=True)

    class Pet(base):
        __tablename__ = "pet"
        id = sa.Column(sa.Integer, primary_key=True)
        owner_id = sa.Column(sa.ForeignKey("owner.id"))

    base.metadata.create_all(engine)
    with sessionkit.Session(engine) as s:
        owner = Owner(id=1)
        s.add(owner)
        s.flush()
        err = error(lambda: owner.pets.append(Pet(id=1)))
        assert isinstance(err, sk_exc.InvalidRequestError)
        assert "Owner.pets" in str(err) and "viewonly=True" in str(err)
        assert owner.pets == []


@pytest.mark.parametrize("how", ["copy", "deepcopy"])
def test_copies_come_back_with_relationships_unloaded(engine: Engine, how: str) -> None:
    """sessionkit only (rel-7): a copy's collections would be lists no session tracks, so
    they are left out; the copy is detached, its columns kept; merged, it loads them."""
    import copy

    ns = names("sessionkit")
    m = library(ns)
    build(engine, m, author=authors(1), book=books(1, 2))
    with ns.Session(engine) as s:
        a1 = s.get(m.Author, 1)
        assert titles(a1.books) == ["book 1.0", "book 1.1"]
        made = copy.copy(a1) if how == "copy" else copy.deepcopy(a1)
        assert "books" in a1.__dict__  # the original keeps them
        assert "books" not in a1.__getstate__()  # what pickle (and deepcopy) carry
    assert "books" not in made.__dict__ and made.__dict__["name"] == "author 1"
    assert isinstance(error(lambda: made.books), sk_exc.DetachedInstanceError)
    with ns.Session(engine) as s2:
        merged = s2.merge(made)
        assert titles(merged.books) == ["book 1.0", "book 1.1"]
