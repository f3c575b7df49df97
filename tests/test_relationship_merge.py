"""Relationships: ``session.merge()`` of a detached author with its loaded books (the
``merge`` cascade, part of the default ``"save-update, merge"``), and ``refresh()`` along
``refresh-expire``, against the ORM.

The author is loaded with its books in one session and closed; its books are changed
while detached (a title changed, a book removed, a new one appended), then it is merged
into a second session and committed. Observed: the merged objects (the session's own,
not the detached ones), their states and collections, the statements of the flush (as in
test_relationship_collections.py: INSERTs outlined, the rest in full, SELECTs counted)
and the committed rows.
"""

from typing import Any

from models_rel import Names
from sqlalchemy import Engine, select
from test_relationship_collections import CASCADES, Factory, flush_facts, orphans, shelf, states
from test_relationship_loading import both, titles
from test_relationship_writes import SEEDED, Sql, committed, seed

Facts = dict[str, Any]


def detached_author(ns: Names, engine: Engine, m: Any) -> Any:
    """ann with her books loaded, detached."""
    with ns.Session(engine) as s:
        ann = s.scalars(select(m.Author).where(m.Author.id == 1)).one()
        assert titles(ann.books) == ["b1", "b3"]
        assert all(b.author is ann for b in ann.books)  # loaded too: from the identity map
    return ann


def merge_changed(ns: Names, engine: Engine, factory: Factory, load: bool) -> Facts:
    m = factory(ns)
    seed(engine, m)
    ann = detached_author(ns, engine, m)
    f: Facts = {}
    if load:
        ann.books[0].title = "b1 changed"
        ann.books.remove(ann.books[1])
        ann.books.append(m.Book(title="new"))
    with ns.Session(engine) as s, Sql(engine) as sql:
        merged = s.merge(ann, load=load)
        f["merge sql"] = sql.take()
        f["copies"] = merged is not ann and all(
            a is not b for a, b in zip(merged.books, ann.books, strict=True)
        )
        f["books"] = titles(merged.books)
        f["back"] = [b.author is merged for b in merged.books]
        f["states"] = states(ns, {"ann": merged, **{b.title: b for b in merged.books}})
        f["detached"] = states(ns, {"ann": ann, **{b.title: b for b in ann.books}})
        f["dirty"] = sorted(type(o).__name__ for o in s.dirty)
        f["new"] = sorted(type(o).__name__ for o in s.new)
        s.commit()
        f["flush"] = flush_facts(sql)
    f["rows"] = committed(engine, m)
    return f


@CASCADES
def test_merge_detached_author_with_changed_books(
    fk_engine: Engine, fk_ref_engine: Engine, factory: Factory
) -> None:
    sk, orm = both(merge_changed, fk_engine, fk_ref_engine, factory, True)
    assert sk == orm
    assert sk["copies"] and sk["books"] == ["b1 changed", "new"] and sk["back"] == [True, True]
    assert sk["states"] == {"ann": "persistent", "b1 changed": "persistent", "new": "pending"}
    # get(ann), then her books: the merged books come from the identity map.
    assert sk["merge sql"] == ([], 2)
    orphaned = factory is not shelf
    b3 = [] if orphaned else [(3, "b3", None)]
    assert sk["rows"] == {
        **SEEDED,
        "book": [(1, "b1 changed", 1), (2, "b2", 2), *b3, (4, "new", 1)],
    }


def test_merge_load_false_sets_loaded_state(fk_engine: Engine, fk_ref_engine: Engine) -> None:
    """merge(load=False): the books become the merged author's loaded collection, with no
    SQL and nothing to flush."""
    sk, orm = both(merge_changed, fk_engine, fk_ref_engine, shelf, False)
    assert sk == orm
    assert sk["merge sql"] == ([], 0) and sk["books"] == ["b1", "b3"]
    assert sk["dirty"] == sk["new"] == []
    assert sk["rows"] == SEEDED


def merge_cycle(ns: Names, engine: Engine, factory: Factory) -> Facts:
    """A detached book whose loaded author's loaded books contain the book again: the
    author is merged along ``Book.author``, but not back along ``Author.books`` (the
    relationship's other side): the merged author's books load from the database."""
    m = factory(ns)
    seed(engine, m)
    ann = detached_author(ns, engine, m)
    book = ann.books[0]
    with ns.Session(engine) as s, Sql(engine) as sql:
        merged = s.merge(book)
        merge_sql = sql.take()
        return {
            "merge sql": merge_sql,
            "same": merged.author.books[0] is merged,
            "books": titles(merged.author.books),
            "sql": sql.take(),
            "states": states(ns, {"book": merged, "ann": merged.author}),
        }


def test_merge_follows_cycles_once(fk_engine: Engine, fk_ref_engine: Engine) -> None:
    sk, orm = both(merge_cycle, fk_engine, fk_ref_engine, shelf)
    assert sk == orm
    assert sk["merge sql"] == ([], 2) and sk["sql"] == ([], 1)
    assert sk["same"] and sk["books"] == ["b1", "b3"]


def refresh_cascade(ns: Names, engine: Engine) -> Facts:
    """refresh(ann) with cascade "all" (refresh-expire): her loaded books expire too,
    a change of one is forgotten, and they load again one by one when read."""
    m = orphans(ns)
    seed(engine, m)
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann = s.scalars(select(m.Author).where(m.Author.id == 1)).one()
        books = list(ann.books)
        sql.take()
        books[0].title = "changed"
        s.refresh(ann)
        f: Facts = {"refresh sql": sql.take()}
        f["unloaded"] = [sorted(ns.inspect(o).unloaded) for o in (ann, *books)]
        f["dirty"] = len(s.dirty)
        f["titles"] = titles(books)
        f["read sql"] = sql.take()
    return f


def test_refresh_follows_refresh_expire(fk_engine: Engine, fk_ref_engine: Engine) -> None:
    sk, orm = both(refresh_cascade, fk_engine, fk_ref_engine)
    assert sk == orm
    assert sk["refresh sql"] == ([], 1) and sk["read sql"] == ([], 2)
    assert sk["unloaded"][0] == ["books"] and sk["dirty"] == 0 and sk["titles"] == ["b1", "b3"]
