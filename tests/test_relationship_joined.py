"""Joined eager loading: ``joinedload()`` and ``lazy="joined"``, against the ORM.

Each scenario runs on sessionkit (``engine``) and on the SQLAlchemy ORM (``ref_engine``),
from one model source (``models_rel.py``). Joined loading is the one strategy whose SQL
sessionkit reproduces statement for statement (the same LEFT OUTER JOINs to the same
anonymous aliases, the same columns in the same order, the same ORDER BY), so these
tests compare the statements themselves, not only their number.

Where the ORM wraps a statement with LIMIT in a subquery to join a collection,
sessionkit refuses instead (README, "Relationships"); the last tests pin the refusals.
"""

from __future__ import annotations

from typing import Any

import pytest
from models_rel import Names, library, names, tree
from sqlalchemy import Engine, select, text
from test_relationship_loading import PARENTS, Facts, Selects, authors, books, both, build, error

import sessionkit
import sessionkit.exc as sk_exc


def tag_rows() -> dict[str, list[dict[str, Any]]]:
    """Authors 1-4; authors 1-3 with 2 books each; tags on some books; reviews."""
    return {
        "author": authors(4),
        "book": books(3, 2),
        "tag": [{"id": t, "label": f"tag {t}"} for t in range(1, 4)],
        "book_tag": [
            {"book_id": b, "tag_id": t}
            for b, t in [(10, 1), (10, 2), (11, 3), (20, 2), (31, 1), (31, 3)]
        ],
        "review": [
            {"id": r, "book_id": b, "stars": r % 5}
            for r, b in [(1, 10), (2, 10), (3, 20), (4, 21), (5, 21)]
        ],
        "profile": [{"id": 1, "author_id": 2, "bio": "bio 2"}],
    }


def shape(found: list[Any]) -> list[Any]:
    """Authors as (name, [(title, [tag labels], [review stars])...], profile bio)."""
    return [
        (
            a.name,
            [(b.title, [t.label for t in b.tags], [r.stars for r in b.reviews]) for b in a.books],
            None if a.profile is None else a.profile.bio,
        )
        for a in found
    ]


def chain(ns: Names, engine: Engine, how: str) -> Facts:
    """Authors with books -> tags, books -> reviews, and profile joined."""
    m = library(ns)
    build(engine, m, **tag_rows())
    opts = [
        ns.joinedload(m.Author.books).joinedload(m.Book.tags),
        ns.joinedload(m.Author.books).joinedload(m.Book.reviews),
        ns.joinedload(m.Author.profile),
    ]
    stmt = select(m.Author).options(*opts).order_by(m.Author.id)
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        f["without unique"] = type(error(lambda: s.scalars(stmt).all())).__name__
        sql.take()
        if how == "scalars":
            found = s.scalars(stmt).unique().all()
        elif how == "execute":
            found = [row[0] for row in s.execute(stmt).unique().all()]
        else:
            found = s.query(m.Author).options(*opts).order_by(m.Author.id).all()
        f["sql"] = sql.take()
        f["unloaded"] = sorted(ns.inspect(found[0]).unloaded)
        f["shape"] = shape(found)
        f["read sql"] = sql.count()
        f["states"] = {ns.api.state(a) for a in found}
    return f


@pytest.mark.parametrize("how", ["scalars", "execute", "query"])
def test_joined_chain_same_sql_one_statement(engine: Engine, ref_engine: Engine, how: str) -> None:
    sk, orm = both(chain, engine, ref_engine, how)
    assert sk["without unique"] == orm["without unique"] == "InvalidRequestError"
    assert sk["sql"] == orm["sql"]
    assert len(sk["sql"]) == 1 and sk["sql"][0][0].count("LEFT OUTER JOIN") == 4
    assert sk["shape"] == orm["shape"]
    assert sk["shape"][1] == (
        "author 2",
        [("book 2.0", ["tag 2"], [3]), ("book 2.1", [], [4, 0])],
        "bio 2",
    )
    assert sk["shape"][3] == ("author 4", [], None)
    assert sk["read sql"] == orm["read sql"] == 0
    assert sk["unloaded"] == orm["unloaded"] == []
    assert sk["states"] == orm["states"] == {"persistent"}


def many_to_one(ns: Names, engine: Engine) -> Facts:
    """Books with their author joined (one book without an author); LIMIT is fine."""
    m = library(ns)
    rows = tag_rows()
    rows["book"].append({"id": 99, "title": "orphan", "author_id": None})
    build(engine, m, **rows)
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        stmt = select(m.Book).options(ns.joinedload(m.Book.author)).order_by(m.Book.id)
        found = s.scalars(stmt).all()  # no collection: unique() is not needed
        limited = s.scalars(stmt.limit(2)).all()
        f["sql"] = sql.take()
        f["authors"] = [None if b.author is None else b.author.name for b in found]
        f["limited"] = [b.title for b in limited]
        f["read sql"] = sql.count()
        f["back"] = ns.inspect(found[0].author).unloaded
    return f


def test_many_to_one_joined(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(many_to_one, engine, ref_engine)
    assert sk["sql"] == orm["sql"]
    assert sk["authors"] == orm["authors"] == [*(f"author {i}" for i in (1, 1, 2, 2, 3, 3)), None]
    assert sk["limited"] == orm["limited"] == ["book 1.0", "book 1.1"]
    assert sk["read sql"] == orm["read sql"] == 0
    assert sk["back"] == orm["back"]


def self_referential(ns: Names, engine: Engine) -> Facts:
    m = tree(ns)
    build(engine, m, node=[{"id": i, "parent_id": p} for i, p in PARENTS.items()])
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        opt = ns.joinedload(m.Node.children).joinedload(m.Node.children)
        stmt = select(m.Node).where(m.Node.parent_id.is_(None)).options(opt)
        root = s.scalars(stmt).unique().one()
        f["sql"] = sql.take()
        f["tree"] = [(c.id, [g.id for g in c.children]) for c in root.children]
        f["read sql"] = sql.count()
    with ns.Session(engine) as s, Selects(engine) as sql:
        stmt = select(m.Node).options(ns.joinedload(m.Node.parent)).order_by(m.Node.id)
        nodes = s.scalars(stmt).all()
        f["parents sql"] = sql.take()
        f["parents"] = [None if n.parent is None else n.parent.id for n in nodes]
        f["parents read"] = sql.count()
    return f


def test_self_referential_joined(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(self_referential, engine, ref_engine)
    assert sk["sql"] == orm["sql"] and sk["parents sql"] == orm["parents sql"]
    assert sk["tree"] == orm["tree"] == [(2, [4, 5]), (3, [6])]
    assert sk["parents"] == orm["parents"] == list(PARENTS.values())
    assert (sk["read sql"], sk["parents read"]) == (orm["read sql"], orm["parents read"]) == (0, 0)


def mixed(ns: Names, engine: Engine, order: str) -> Facts:
    """joinedload under selectinload, and the other way round."""
    m = library(ns)
    build(engine, m, **tag_rows())
    if order == "joined first":
        opt = ns.joinedload(m.Author.books).selectinload(m.Book.tags)
    else:
        opt = ns.selectinload(m.Author.books).joinedload(m.Book.tags)
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).options(opt).order_by(m.Author.id)).unique().all()
        statements = sql.take()
        tags = [[[t.label for t in b.tags] for b in a.books] for a in found]
        return {
            "count": len(statements),
            "joins": [q.count("JOIN") for q, _ in statements],
            "tags": tags,
            "read": sql.count(),
        }


@pytest.mark.parametrize("order", ["joined first", "selectin first"])
def test_joined_and_selectin_combined(engine: Engine, ref_engine: Engine, order: str) -> None:
    sk, orm = both(mixed, engine, ref_engine, order)
    assert (sk["count"], sk["read"]) == (orm["count"], orm["read"]) == (2, 0)
    assert sk["tags"] == orm["tags"]
    assert sk["tags"][0] == [["tag 1", "tag 2"], ["tag 3"]]
    joined_at = 0 if order == "joined first" else 1
    assert sk["joins"][joined_at] >= 1 and orm["joins"][joined_at] >= 1


def default_joined(ns: Names, engine: Engine) -> Facts:
    """``lazy="joined"`` on Author.books: every select of authors joins them; so does
    the batched load of a book's author (sessionkit) or the ORM's lazy load."""
    m = library(ns, books_lazy="joined")
    build(engine, m, **tag_rows())
    f: Facts = {}
    with ns.Session(engine) as s, Selects(engine) as sql:
        found = s.scalars(select(m.Author).order_by(m.Author.id)).unique().all()
        f["sql"] = sql.take()
        f["books"] = [[b.title for b in a.books] for a in found]
        f["read"] = sql.count()
        f["lazy"] = type(error(lambda: s.scalars(select(m.Author)).all())).__name__
        sql.take()
        f["override"] = len(s.scalars(select(m.Author).options(ns.lazyload(m.Author.books))).all())
        f["override sql"] = [q.count("JOIN") for q, _ in sql.take()]
    with ns.Session(engine) as s, Selects(engine) as sql:
        book = s.scalars(select(m.Book).where(m.Book.id == 20)).one()
        sql.take()
        f["via m2o"] = [b.title for b in book.author.books]
        f["via m2o sql"] = [q.count("JOIN") for q, _ in sql.take()]
    return f


def test_lazy_joined_default(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(default_joined, engine, ref_engine)
    assert sk["sql"] == orm["sql"]
    assert sk["books"] == orm["books"]
    assert sk["read"] == orm["read"] == 0
    assert sk["lazy"] == orm["lazy"] == "InvalidRequestError"
    assert sk["override"] == orm["override"] == 4
    assert sk["override sql"] == orm["override sql"] == [0]
    assert sk["via m2o"] == orm["via m2o"] == ["book 2.0", "book 2.1"]
    assert sk["via m2o sql"] == orm["via m2o sql"] == [1]


def existing(ns: Names, engine: Engine, populate: bool) -> Facts:
    """A collection loaded (and changed in Python) before the joined query keeps its
    contents; ``populate_existing`` replaces a loaded, unchanged one."""
    m = library(ns)
    build(engine, m, **tag_rows())
    with ns.Session(engine) as s:
        a1, a2 = s.scalars(select(m.Author).where(m.Author.id < 3).order_by(m.Author.id)).all()
        kept = a1.books[0]
        a1.books.remove(kept)
        assert len(a2.books) == 2  # loaded, not changed
        # A row the loaded collection of author 2 does not show.
        s.execute(text("INSERT INTO book (id, title, author_id) VALUES (22, 'new', 2)"))
        stmt = select(m.Author).options(ns.joinedload(m.Author.books)).order_by(m.Author.id)
        if populate:
            stmt = stmt.execution_options(populate_existing=True)
        with s.no_autoflush:
            s.scalars(stmt).unique().all()
        return {
            "a1": [b.title for b in a1.books],
            "a2": [b.title for b in a2.books],
            "kept": ns.api.state(kept),
        }


@pytest.mark.parametrize("populate", [False, True])
def test_loaded_collections_kept_unless_populate_existing(
    engine: Engine, ref_engine: Engine, populate: bool
) -> None:
    sk, orm = both(existing, engine, ref_engine, populate)
    assert sk["a2"] == orm["a2"]
    assert sk["a2"] == (["book 2.0", "book 2.1", "new"] if populate else ["book 2.0", "book 2.1"])
    # A collection with a change waiting for the flush is kept even then.
    assert sk["a1"] == orm["a1"] == ["book 1.1"]
    assert sk["kept"] == orm["kept"] == "persistent"


def eager_get(ns: Names, engine: Engine, lazy: str) -> Facts:
    """get() of a class whose relationship loads with it."""
    m = library(ns, books_lazy=lazy)
    build(engine, m, **tag_rows())
    with ns.Session(engine) as s, Selects(engine) as sql:
        a = s.get(m.Author, 2)
        missing = s.get(m.Author, 9)
        statements = sql.take()
        return {
            "sql": statements if lazy == "joined" else len(statements),
            "books": [b.title for b in a.books],
            "missing": missing,
            "read": sql.count(),
        }


@pytest.mark.parametrize("lazy", ["joined", "selectin"])
def test_get_loads_eager_relationships(engine: Engine, ref_engine: Engine, lazy: str) -> None:
    sk, orm = both(eager_get, engine, ref_engine, lazy)
    assert sk == orm
    assert sk["books"] == ["book 2.0", "book 2.1"] and sk["read"] == 0


# -- what is refused -----------------------------------------------------------------------


def yield_per(ns: Names, engine: Engine) -> Facts:
    m = library(ns)
    build(engine, m, **tag_rows())
    with ns.Session(engine) as s, Selects(engine) as sql:
        stmt = select(m.Author).options(ns.joinedload(m.Author.books))
        err = error(lambda: s.scalars(stmt.execution_options(yield_per=2)).all())
        return {"error": type(err).__name__, "sql": sql.count()}


def test_yield_per_with_joined_collection_refused(engine: Engine, ref_engine: Engine) -> None:
    sk, orm = both(yield_per, engine, ref_engine)
    assert sk["error"] == orm["error"] == "InvalidRequestError"
    assert (sk["sql"], orm["sql"]) == (0, 1)  # sessionkit refuses before the SELECT


def test_limit_with_joined_collection_refused(engine: Engine, ref_engine: Engine) -> None:
    """The ORM wraps the LIMITed statement in a subquery; sessionkit refuses before any
    SQL, naming the collection and selectinload()."""
    ns = names("sessionkit")
    m = library(ns)
    build(engine, m, **tag_rows())
    with ns.Session(engine) as s, Selects(engine) as sql:
        for cut in ("limit", "offset", "distinct", "group_by"):
            stmt = select(m.Author).options(ns.joinedload(m.Author.books))
            stmt = getattr(stmt, cut)(*([1] if cut in ("limit", "offset") else []))
            if cut == "group_by":
                stmt = select(m.Author).group_by(m.Author.id, m.Author.name)
                stmt = stmt.options(ns.joinedload(m.Author.books))
            with pytest.raises(sk_exc.ArgumentError, match=r"Author\.books.*selectinload"):
                s.scalars(stmt).all()
        assert sql.count() == 0


def test_joinedload_refusals(engine: Engine) -> None:
    ns = names("sessionkit")
    m = library(ns)
    build(engine, m, **tag_rows())
    with pytest.raises(sk_exc.ArgumentError, match="innerjoin=True"):
        sessionkit.joinedload(m.Author.books, innerjoin=True)
    with ns.Session(engine) as s, Selects(engine) as sql:
        stmt = select(m.Author).options(ns.joinedload(m.Author.books))
        fs = stmt.from_statement(select(m.Author.__table__))
        with pytest.raises(sk_exc.ArgumentError, match=r"from_statement.*Author\.books"):
            s.scalars(fs).all()
        bad = select(m.Book).options(ns.joinedload(m.Author.books))
        with pytest.raises(sk_exc.ArgumentError, match="root entities"):
            s.scalars(bad).all()
        assert sql.count() == 0
