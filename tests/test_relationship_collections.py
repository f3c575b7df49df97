"""Relationships: writing through a one-to-many collection (``ann.books.append(book)``) and
the cascades along it (``cascade="all, delete-orphan"``, ``passive_deletes=True``).

Each scenario builds its models for both libraries from one factory (``shelf`` below),
inserts its rows with Core (``seed``: ann (1), bob (2); b1 (1) and b3 (3) by ann, b2 (2) by
bob), then runs on sessionkit (``fk_engine``) and on the SQLAlchemy ORM (``fk_ref_engine``);
foreign keys are enforced on every backend.

Observed per step: the statements other than SELECT, with their parameters, in order, and
the number of SELECTs apart; object states; the column values in ``__dict__``; collection
contents; at the end the committed rows, read back with Core. Where the libraries agree,
the facts must be equal; the ORM's facts are also asserted, so that a fault shared by both
runs cannot hide.

New rows of one table are INSERTed one per statement or several per statement, as each
backend allows, and the recorder cannot read the values of a several-row statement: there
the INSERTs are compared as a kind and a table (``outline``), every other statement in
full, and the order of the rows by the keys the database generated (``columns()`` after
the flush, the committed rows).
"""

import re
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from models_rel import Names
from sqlalchemy import Engine, ForeignKey, String
from test_relationship_loading import both, error, titles
from test_relationship_writes import MOVED, SEEDED, Sql, Writes, columns, committed, seed, shape

from support import statement_kind

Facts = dict[str, Any]
Factory = Callable[[Names], Any]
Outline = list[tuple[str, str, Any]]


def shelf(ns: Names, cascade: str | None = None, passive_deletes: bool = False) -> Any:
    """``Author.books`` / ``Book.author`` with ``back_populates``; ``cascade`` and
    ``passive_deletes`` of ``Author.books`` (None: the library's default cascade).
    ``passive_deletes`` also declares the foreign key ``ON DELETE CASCADE``."""
    Mapped, mapped_column, relationship = ns.Mapped, ns.mapped_column, ns.relationship
    options: dict[str, Any] = {} if cascade is None else {"cascade": cascade}
    if passive_deletes:
        options["passive_deletes"] = True
    fk = ForeignKey("author.id", ondelete="CASCADE") if passive_deletes else ForeignKey("author.id")

    class Base(ns.DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = "author"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))
        books: Mapped[list["Book"]] = relationship(
            back_populates="author", order_by="Book.id", **options
        )

    class Book(Base):
        __tablename__ = "book"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(50))
        author_id: Mapped[int | None] = mapped_column(fk)
        author: Mapped["Author | None"] = relationship(back_populates="books")

    return SimpleNamespace(Base=Base, Author=Author, Book=Book)


orphans: Factory = partial(shelf, cascade="all, delete-orphan")
passive: Factory = partial(shelf, cascade="all, delete-orphan", passive_deletes=True)
CASCADES = pytest.mark.parametrize(
    "factory", [shelf, orphans], ids=["save-update", "delete-orphan"]
)
LOADED = pytest.mark.parametrize("loaded", [True, False], ids=["books loaded", "books unloaded"])


def outline(writes: Writes) -> Outline:
    """``shape()`` of each statement; the INSERTs of one table in a row are one entry
    ``("INSERT", table, None)``, however many statements the backend took."""
    out: Outline = []
    for kind, table, params in shape(writes):
        if kind == "INSERT":
            if out[-1:] != [(kind, table, None)]:
                out.append((kind, table, None))
        else:
            out.append((kind, table, params))
    return out


def flush_facts(sql: Sql) -> tuple[Outline, Writes, int]:
    """What the flush sent: its ``outline``, its statements other than INSERT, in full,
    and its SELECT count."""
    writes, selects = sql.take()
    return outline(writes), [w for w in writes if statement_kind(w[0]) != "INSERT"], selects


def states(ns: Names, objs: dict[str, Any]) -> dict[str, str]:
    return {k: ns.api.state(o) for k, o in objs.items()}


def book_rows(removed: list[int], orphaned: bool, moved: list[int], new: list[str]) -> Any:
    """The committed rows: ``SEEDED`` with the ``removed`` books' foreign keys NULL (or the
    rows gone, ``orphaned``), the ``moved`` books ann's, the ``new`` titles ann's."""
    rows = [
        (i, t, 1 if i in moved else None if i in removed else a)
        for i, t, a in SEEDED["book"]
        if not (orphaned and i in removed)
    ]
    return {**SEEDED, "book": rows + [(i, t, 1) for i, t in enumerate(new, 4)]}


# -- 1, 2. appending a new book ------------------------------------------------------------


def append_new(ns: Names, engine: Engine, loaded: bool) -> Facts:
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann = s.get(m.Author, 1)
        if loaded:
            titles(ann.books)
        sql.take()
        book = m.Book(title="n")
        ann.books.append(book)
        f["append"] = sql.take()
        f["book"] = (ns.api.state(book), book in s, book in s.new, book.author is ann)
        f["before"] = (columns(book), titles(ann.books), ann in s.dirty, sql.take())
        s.flush()
        f["flush"] = sql.take()
        f["after"] = (ns.api.state(book), columns(book), ann in s.dirty, sql.take())
        s.commit()
    f["rows"] = committed(engine, m)
    return f


@LOADED
def test_append_new_book_is_pending_at_once_and_inserted(
    fk_engine: Engine, fk_ref_engine: Engine, loaded: bool
) -> None:
    sk, orm = both(append_new, fk_engine, fk_ref_engine, loaded)
    # An unloaded collection is loaded by the read of ``ann.books`` itself, before the append.
    assert sk["append"] == orm["append"] == ([], 0 if loaded else 1)
    # Cascade save-update on append; back_populates sets book.author in Python.
    assert sk["book"] == orm["book"] == ("pending", True, True, True)
    assert sk["before"] == orm["before"] == ({"title": "n"}, ["b1", "b3", "n"], True, ([], 0))
    assert sk["flush"] == orm["flush"]
    assert shape(orm["flush"][0]) == [("INSERT", "book", ("n", 1))] and orm["flush"][1] == 0
    after = ("persistent", {"title": "n", "author_id": 1, "id": 4}, False, ([], 0))
    assert sk["after"] == orm["after"] == after
    assert sk["rows"] == orm["rows"] == book_rows([], False, [], ["n"])


# -- 3. moving a persistent book -----------------------------------------------------------


def move(ns: Names, engine: Engine, ann_loaded: bool) -> Facts:
    """``bob.books.append(b1)``, bob's books loaded; ann's loaded or not."""
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, bob, b1 = s.get(m.Author, 1), s.get(m.Author, 2), s.get(m.Book, 1)
        if ann_loaded:
            titles(ann.books)
        titles(bob.books)
        sql.take()
        bob.books.append(b1)
        f["append"] = sql.take()
        f["moved"] = (b1.author is bob, columns(b1), titles(bob.books), "books" in vars(ann))
        f["states"] = (ns.api.state(b1), b1 in s.dirty, sql.take())
        f["ann"] = (titles(ann.books), sql.take())
        s.flush()
        f["flush"] = sql.take()
        f["after"] = (columns(b1), titles(ann.books), titles(bob.books), sql.take())
        s.commit()
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("ann_loaded", [True, False], ids=["ann's loaded", "ann's unloaded"])
def test_append_moves_persistent_book_to_the_other_author(
    fk_engine: Engine, fk_ref_engine: Engine, ann_loaded: bool
) -> None:
    sk, orm = both(move, fk_engine, fk_ref_engine, ann_loaded)
    assert sk["append"] == orm["append"] == ([], 0)
    b1 = {"id": 1, "title": "b1", "author_id": 1}
    assert sk["moved"] == orm["moved"] == (True, b1, ["b2", "b1"], ann_loaded)
    assert sk["states"] == orm["states"] == ("persistent", True, ([], 0))
    # Removed from ann's loaded books in Python; an unloaded one is read after the
    # autoflush.
    assert sk["ann"] == orm["ann"]
    update = [("UPDATE", "book", (2, 1))]
    if ann_loaded:
        assert orm["ann"] == (["b3"], ([], 0)) and shape(orm["flush"][0]) == update
    else:
        assert orm["ann"][0] == ["b3"] and shape(orm["ann"][1][0]) == update
        assert orm["ann"][1][1] == 1 and orm["flush"] == ([], 0)
    assert sk["flush"] == orm["flush"]
    after = ({**b1, "author_id": 2}, ["b3"], ["b2", "b1"], ([], 0))
    assert sk["after"] == orm["after"] == after
    assert sk["rows"] == orm["rows"] == MOVED


# -- 4. removing a persistent book ---------------------------------------------------------


def remove(ns: Names, engine: Engine, factory: Factory) -> Facts:
    m = factory(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, b1 = s.get(m.Author, 1), s.get(m.Book, 1)
        titles(ann.books)
        sql.take()
        ann.books.remove(b1)
        f["remove"] = sql.take()
        f["before"] = (titles(ann.books), b1.author, columns(b1), ns.api.state(b1), b1 in s)
        f["read"] = sql.take()
        s.flush()
        f["flush"] = sql.take()
        f["flushed"] = (ns.api.state(b1), b1 in s, columns(b1))
        s.commit()
        f["committed"] = (ns.api.state(b1), b1 in s)
    f["rows"] = committed(engine, m)
    return f


@CASCADES
def test_remove_sets_null_or_deletes_the_orphan(
    fk_engine: Engine, fk_ref_engine: Engine, factory: Factory
) -> None:
    sk, orm = both(remove, fk_engine, fk_ref_engine, factory)
    deleting = factory is orphans
    b1 = {"id": 1, "title": "b1", "author_id": 1}
    assert sk["remove"] == orm["remove"] == sk["read"] == orm["read"] == ([], 0)
    # Orphans are found by the flush: until then b1 stays persistent.
    assert sk["before"] == orm["before"] == (["b3"], None, b1, "persistent", True)
    assert sk["flush"] == orm["flush"]
    expected = ("DELETE", "book", (1,)) if deleting else ("UPDATE", "book", (None, 1))
    assert shape(orm["flush"][0]) == [expected] and orm["flush"][1] == 0
    if deleting:
        assert orm["flushed"] == ("deleted", False, b1)
        assert orm["committed"] == ("detached", False)
    else:
        assert orm["flushed"] == ("persistent", True, {**b1, "author_id": None})
        assert orm["committed"] == ("persistent", True)
    assert sk["flushed"] == orm["flushed"] and sk["committed"] == orm["committed"]
    assert sk["rows"] == orm["rows"] == book_rows([1], deleting, [], [])


# -- 5. assigning the collection -----------------------------------------------------------


def replace(ns: Names, engine: Engine, factory: Factory, loaded: bool) -> Facts:
    m = factory(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, b1, b3 = s.get(m.Author, 1), s.get(m.Book, 1), s.get(m.Book, 3)
        if loaded:
            titles(ann.books)
        sql.take()
        n1, n2 = m.Book(title="n1"), m.Book(title="n2")
        ann.books = [n1, n2]
        f["assign"] = sql.take()
        objs = {"b1": b1, "b3": b3, "n1": n1, "n2": n2}
        f["before"] = (titles(ann.books), states(ns, objs), [b.author for b in (b1, b3)])
        f["old"] = ([columns(b) for b in (b1, b3)], sql.take())
        s.flush()
        f["flush"] = flush_facts(sql)
        f["flushed"] = (states(ns, objs), [columns(b) for b in (n1, n2)])
        s.commit()
    f["rows"] = committed(engine, m)
    return f


@LOADED
@CASCADES
def test_assigning_the_collection_replaces_its_members(
    fk_engine: Engine, fk_ref_engine: Engine, factory: Factory, loaded: bool
) -> None:
    sk, orm = both(replace, fk_engine, fk_ref_engine, factory, loaded)
    deleting = factory is orphans
    # The old members are loaded first, to be removed.
    assert sk["assign"] == orm["assign"] == ([], 0 if loaded else 1)
    before = {"b1": "persistent", "b3": "persistent", "n1": "pending", "n2": "pending"}
    assert sk["before"] == orm["before"] == (["n1", "n2"], before, [None, None])
    old = [{"id": 1, "title": "b1", "author_id": 1}, {"id": 3, "title": "b3", "author_id": 1}]
    assert sk["old"] == orm["old"] == (old, ([], 0))
    assert sk["flush"] == orm["flush"]
    # The ORM: UPDATEs of a table before its INSERTs, its DELETEs after.
    if deleting:
        expected = [("INSERT", "book", None), ("DELETE", "book", [(1,), (3,)])]
    else:
        expected = [("UPDATE", "book", [(None, 1), (None, 3)]), ("INSERT", "book", None)]
    assert orm["flush"][0] == expected and orm["flush"][2] == 0
    gone = "deleted" if deleting else "persistent"
    new = [{"title": t, "author_id": 1, "id": i} for i, t in ((4, "n1"), (5, "n2"))]
    flushed = ({"b1": gone, "b3": gone, "n1": "persistent", "n2": "persistent"}, new)
    assert sk["flushed"] == orm["flushed"] == flushed
    assert sk["rows"] == orm["rows"] == book_rows([1, 3], deleting, [], ["n1", "n2"])


# -- 6, 7, 8. deleting the author ----------------------------------------------------------


def delete_author(ns: Names, engine: Engine, factory: Factory, loaded: bool) -> Facts:
    """ann deleted; b1 and b3 are in the session, ann's books loaded or not."""
    m = factory(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, b1, b3 = s.get(m.Author, 1), s.get(m.Book, 1), s.get(m.Book, 3)
        if loaded:
            titles(ann.books)
        sql.take()
        s.delete(ann)
        f["delete"] = sql.take()
        f["marked"] = (sorted(getattr(o, "title", "ann") for o in s.deleted), "books" in vars(ann))
        s.flush()
        f["flush"] = sql.take()
        f["flushed"] = [ns.api.state(o) for o in (ann, b1, b3)]
        f["columns"] = [columns(b) for b in (b1, b3)]
        s.commit()
        f["committed"] = [ns.api.state(o) for o in (ann, b1, b3)]
    f["rows"] = committed(engine, m)
    return f


OLD = [{"id": 1, "title": "b1", "author_id": 1}, {"id": 3, "title": "b3", "author_id": 1}]
WITHOUT_ANN = {"author": [(2, "bob")], "book": [(2, "b2", 2)]}


def assert_books_deleted_first(sk: Facts, orm: Facts) -> None:
    assert sk["flush"] == orm["flush"]
    delete = [("DELETE", "book", [(1,), (3,)]), ("DELETE", "author", (1,))]
    assert shape(orm["flush"][0]) == delete and orm["flush"][1] == 0
    assert sk["flushed"] == orm["flushed"] == ["deleted"] * 3
    assert sk["columns"] == orm["columns"] == OLD
    assert sk["committed"] == orm["committed"] == ["detached"] * 3
    assert sk["rows"] == orm["rows"] == WITHOUT_ANN


@LOADED
def test_delete_cascade_deletes_books_before_author(
    fk_engine: Engine, fk_ref_engine: Engine, loaded: bool
) -> None:
    sk, orm = both(delete_author, fk_engine, fk_ref_engine, orphans, loaded)
    # delete() cascades at once: an unloaded collection is loaded by delete() itself.
    assert sk["delete"] == orm["delete"] == ([], 0 if loaded else 1)
    assert sk["marked"] == orm["marked"] == (["ann", "b1", "b3"], True)
    assert_books_deleted_first(sk, orm)


@LOADED
def test_delete_without_cascade_sets_foreign_keys_to_null(
    fk_engine: Engine, fk_ref_engine: Engine, loaded: bool
) -> None:
    sk, orm = both(delete_author, fk_engine, fk_ref_engine, shelf, loaded)
    # Only ann is marked; an unloaded collection is loaded by the flush.
    assert sk["delete"] == orm["delete"] == ([], 0)
    assert sk["marked"] == orm["marked"] == (["ann"], loaded)
    assert sk["flush"] == orm["flush"]
    nulls = [("UPDATE", "book", [(None, 1), (None, 3)]), ("DELETE", "author", (1,))]
    assert shape(orm["flush"][0]) == nulls and orm["flush"][1] == (0 if loaded else 1)
    assert sk["flushed"] == orm["flushed"] == ["deleted", "persistent", "persistent"]
    assert sk["columns"] == orm["columns"] == [{**b, "author_id": None} for b in OLD]
    assert sk["committed"] == orm["committed"] == ["detached", "persistent", "persistent"]
    rows = {"author": [(2, "bob")], "book": book_rows([1, 3], False, [], [])["book"]}
    assert sk["rows"] == orm["rows"] == rows


@LOADED
def test_passive_deletes_leaves_unloaded_books_to_the_database(
    fk_engine: Engine, fk_ref_engine: Engine, loaded: bool
) -> None:
    sk, orm = both(delete_author, fk_engine, fk_ref_engine, passive, loaded)
    assert sk["delete"] == orm["delete"] == ([], 0)
    if loaded:
        # Loaded books are deleted by the flush as without passive_deletes.
        assert sk["marked"] == orm["marked"] == (["ann", "b1", "b3"], True)
        assert_books_deleted_first(sk, orm)
        return
    # Nothing loaded: only the author's DELETE, ON DELETE CASCADE removes the books. The
    # books in the session are not told: still persistent, their keys unchanged.
    assert sk["marked"] == orm["marked"] == (["ann"], False)
    assert sk["flush"] == orm["flush"]
    assert shape(orm["flush"][0]) == [("DELETE", "author", (1,))] and orm["flush"][1] == 0
    assert sk["flushed"] == orm["flushed"] == ["deleted", "persistent", "persistent"]
    assert sk["columns"] == orm["columns"] == OLD
    assert sk["committed"] == orm["committed"] == ["detached", "persistent", "persistent"]
    assert sk["rows"] == orm["rows"] == WITHOUT_ANN


# -- 9. a new author with its books --------------------------------------------------------


def constructed(ns: Names, engine: Engine) -> Facts:
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        a, b = m.Book(title="a"), m.Book(title="b")
        new = m.Author(name="n", books=[a, b])
        f["built"] = (titles(new.books), a.author is new, b.author is new, sql.take())
        s.add(new)
        f["added"] = ([ns.api.state(o) for o in (new, a, b)], sql.take())
        s.flush()
        writes, selects = sql.take()
        f["flush"] = (outline(writes), writes[0], selects)
        f["after"] = [columns(o) for o in (new, a, b)]
        s.commit()
    f["rows"] = committed(engine, m)
    return f


def test_new_author_with_books_in_the_constructor(fk_engine: Engine, fk_ref_engine: Engine) -> None:
    sk, orm = both(constructed, fk_engine, fk_ref_engine)
    assert sk["built"] == orm["built"] == (["a", "b"], True, True, ([], 0))
    # add() of the author alone cascades to its books.
    assert sk["added"] == orm["added"] == (["pending"] * 3, ([], 0))
    # The author's INSERT first (one row: the same statement), then the books with its key.
    assert sk["flush"] == orm["flush"]
    assert orm["flush"][0] == [("INSERT", "author", None), ("INSERT", "book", None)]
    assert shape([orm["flush"][1]]) == [("INSERT", "author", ("n",))] and orm["flush"][2] == 0
    after = [
        {"name": "n", "id": 3},
        {"title": "a", "author_id": 3, "id": 4},
        {"title": "b", "author_id": 3, "id": 5},
    ]
    assert sk["after"] == orm["after"] == after
    book = [*SEEDED["book"], (4, "a", 3), (5, "b", 3)]
    assert sk["rows"] == orm["rows"] == {"author": [*SEEDED["author"], (3, "n")], "book": book}


# -- 10. rollback --------------------------------------------------------------------------


def rolled_back(ns: Names, engine: Engine, flushed: bool) -> Facts:
    """A new book appended to ann's books and b1 removed, then rolled back."""
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, b1 = s.get(m.Author, 1), s.get(m.Book, 1)
        titles(ann.books)
        n = m.Book(title="n")
        ann.books.append(n)
        ann.books.remove(b1)
        if flushed:
            s.flush()
        sql.take()
        s.rollback()
        f["rollback"] = (sql.take(), ns.api.state(n), ns.api.state(b1), "books" in vars(ann))
        f["new"] = (columns(n), n.author is ann)
        # ann's row first, then her books: one SELECT each in both libraries.
        f["ann"] = (ann.name, sql.take())
        f["books"] = (titles(ann.books), sql.take())
        f["b1"] = (b1.author is ann, columns(b1), sql.take())
        s.commit()
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("flushed", [False, True], ids=["not flushed", "flushed"])
def test_rollback_restores_the_committed_collection(
    fk_engine: Engine, fk_ref_engine: Engine, flushed: bool
) -> None:
    sk, orm = both(rolled_back, fk_engine, fk_ref_engine, flushed)
    assert sk["rollback"] == orm["rollback"] == (([], 0), "transient", "persistent", False)
    # The new book, transient again, keeps what it had: its author, and after a flush the
    # key and foreign key it was given.
    new = {"title": "n", "author_id": 1, "id": 4} if flushed else {"title": "n"}
    assert sk["new"] == orm["new"] == (new, True)
    assert sk["ann"] == orm["ann"] == ("ann", ([], 1))
    assert sk["books"] == orm["books"] == (["b1", "b3"], ([], 1))
    # b1's expired row came with ann's books.
    b1 = {"id": 1, "title": "b1", "author_id": 1}
    assert sk["b1"] == orm["b1"] == (True, b1, ([], 0))
    assert sk["rows"] == orm["rows"] == SEEDED


def rolled_back_pending(ns: Names, engine: Engine, flushed: bool) -> Facts:
    """A book appended to a pending author, then rolled back: both become transient."""
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        p = m.Author(name="p")
        s.add(p)
        x = m.Book(title="x")
        p.books.append(x)
        f["appended"] = [ns.api.state(o) for o in (p, x)]
        if flushed:
            s.flush()
        sql.take()
        s.rollback()
        f["rollback"] = (sql.take(), [ns.api.state(o) for o in (p, x)], p in s, x in s)
        f["kept"] = (titles(p.books), x.author is p, columns(p), columns(x), sql.take())
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("flushed", [False, True], ids=["not flushed", "flushed"])
def test_rollback_of_pending_author_keeps_its_collection(
    fk_engine: Engine, fk_ref_engine: Engine, flushed: bool
) -> None:
    sk, orm = both(rolled_back_pending, fk_engine, fk_ref_engine, flushed)
    assert sk["appended"] == orm["appended"] == ["pending", "pending"]
    rollback = (([], 0), ["transient", "transient"], False, False)
    assert sk["rollback"] == orm["rollback"] == rollback
    p, x = {"name": "p"}, {"title": "x"}
    if flushed:
        p, x = {**p, "id": 3}, {**x, "author_id": 3, "id": 4}
    assert sk["kept"] == orm["kept"] == (["x"], True, p, x, ([], 0))
    assert sk["rows"] == orm["rows"] == SEEDED


# -- 11. a value of the wrong class --------------------------------------------------------


def wrong_class(ns: Names, engine: Engine) -> Facts:
    m = shelf(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann = s.get(m.Author, 1)
        titles(ann.books)
        sql.take()
        f["append"] = error(lambda: ann.books.append(ann))
        f["kept"] = ([getattr(o, "title", None) for o in ann.books], ns.inspect(ann).modified)
        f["flush"] = error(s.flush)
        f["writes"] = sql.take()
        s.rollback()
    f["rows"] = committed(engine, m)
    return f


def test_wrong_class_appended_is_refused(fk_engine: Engine, fk_ref_engine: Engine) -> None:
    sk, orm = both(wrong_class, fk_engine, fk_ref_engine)
    # The ORM: a bare KeyError from the back reference (Author has no 'author'), raised at
    # the append; nothing appended, nothing to flush.
    assert type(orm["append"]) is KeyError
    assert sk["kept"] == orm["kept"] == (["b1", "b3"], False)
    assert sk["flush"] is orm["flush"] is None
    assert sk["writes"] == orm["writes"] == ([], 0)
    assert sk["rows"] == orm["rows"] == SEEDED
    # sessionkit only: refused at the append, naming the relationship.
    err = sk["append"]
    assert isinstance(err, (sa_exc.InvalidRequestError, sa_exc.ArgumentError)), err
    assert "Author.books" in str(err)


# -- 12. the other list operations ---------------------------------------------------------


Operation = Callable[[Any, Any, Any], Any]
# (models, ann, b2) -> what the operation returns. ``del ann.books[0]`` and ``ann.books[0] =
# b2`` are the calls of ``__delitem__`` and ``__setitem__`` below.
LIST_OPERATIONS: dict[str, Operation] = {
    "extend": lambda m, ann, b2: ann.books.extend([m.Book(title="n1"), m.Book(title="n2")]),
    "insert": lambda m, ann, b2: ann.books.insert(0, m.Book(title="n")),
    "pop": lambda m, ann, b2: ann.books.pop().title,
    "clear": lambda m, ann, b2: ann.books.clear(),
    "del [0]": lambda m, ann, b2: ann.books.__delitem__(0),
    "[0] = b2": lambda m, ann, b2: ann.books.__setitem__(0, b2),
}


def list_operation(ns: Names, engine: Engine, factory: Factory, name: str) -> Facts:
    m = factory(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, bob = s.get(m.Author, 1), s.get(m.Author, 2)
        b1, b2, b3 = (s.get(m.Book, i) for i in (1, 2, 3))
        titles(ann.books), titles(bob.books)
        sql.take()
        f["result"] = LIST_OPERATIONS[name](m, ann, b2)
        f["op"] = sql.take()
        added = [o for o in ann.books if o not in (b1, b2, b3)]
        objs = {"b1": b1, "b2": b2, "b3": b3, **{o.title: o for o in added}}
        # Read without autoflush: what the flush sends is the next step's fact.
        with s.no_autoflush:
            owners = {k: (o.author.name if o.author else None) for k, o in objs.items()}
        f["before"] = (titles(ann.books), titles(bob.books), states(ns, objs), owners)
        f["read"] = sql.take()
        s.flush()
        f["flush"] = flush_facts(sql)
        f["flushed"] = states(ns, objs)
        s.commit()
        f["committed"] = states(ns, objs)
    f["rows"] = committed(engine, m)
    return f


INSERTED = [("INSERT", "book", None)]
# operation: (what it returns, ann's books after it, the flush with cascade save-update,
# the flush with delete-orphan).
EXPECTED: dict[str, tuple[Any, list[str], Outline, Outline]] = {
    "extend": (None, ["b1", "b3", "n1", "n2"], INSERTED, INSERTED),
    "insert": (None, ["n", "b1", "b3"], INSERTED, INSERTED),
    "pop": ("b3", ["b1"], [("UPDATE", "book", (None, 3))], [("DELETE", "book", (3,))]),
    "clear": (
        None,
        [],
        [("UPDATE", "book", [(None, 1), (None, 3)])],
        [("DELETE", "book", [(1,), (3,)])],
    ),
    "del [0]": (None, ["b3"], [("UPDATE", "book", (None, 1))], [("DELETE", "book", (1,))]),
    "[0] = b2": (
        None,
        ["b2", "b3"],
        [("UPDATE", "book", [(None, 1), (1, 2)])],
        [("UPDATE", "book", (1, 2)), ("DELETE", "book", (1,))],
    ),
}


@CASCADES
@pytest.mark.parametrize("name", list(LIST_OPERATIONS))
def test_list_operation_on_the_collection(
    fk_engine: Engine, fk_ref_engine: Engine, factory: Factory, name: str
) -> None:
    sk, orm = both(list_operation, fk_engine, fk_ref_engine, factory, name)
    returned, books, saved, orphaned = EXPECTED[name]
    deleting = factory is orphans
    assert sk["result"] == orm["result"] == returned
    assert sk["op"] == orm["op"] == sk["read"] == orm["read"] == ([], 0)
    new = [t for t in books if t not in ("b1", "b2", "b3")]
    removed = [t for t in ("b1", "b3") if t not in books]
    moved = ["b2"] if "b2" in books else []
    owners = {t: "ann" for t in ("b1", "b3", *new)} | {"b2": "bob"}
    owners |= {t: None for t in removed} | {t: "ann" for t in moved}
    before = {t: "persistent" for t in ("b1", "b2", "b3")} | {t: "pending" for t in new}
    bob = [] if moved else ["b2"]
    assert sk["before"] == orm["before"] == (books, bob, before, owners)
    assert sk["flush"] == orm["flush"]
    assert orm["flush"][0] == (orphaned if deleting else saved) and orm["flush"][2] == 0
    flushed = {t: "persistent" for t in before} | {t: "deleted" for t in removed if deleting}
    assert sk["flushed"] == orm["flushed"] == flushed
    committed_states = flushed | {t: "detached" for t in removed if deleting}
    assert sk["committed"] == orm["committed"] == committed_states
    ids = [int(t[1]) for t in (*removed, *moved)]
    expected = book_rows(ids[: len(removed)], deleting, ids[len(removed) :], new)
    assert sk["rows"] == orm["rows"] == expected


# -- 13. the expunge and refresh-expire cascades ---------------------------------------------


def detach_cascades(ns: Names, engine: Engine, factory: Factory, op: str) -> Facts:
    """expunge(ann) or expire(ann) with ann's books loaded: with cascade "all" the books
    follow (detached, or expired); with the default cascade they stay as they were."""
    m = factory(ns)
    seed(engine, m)
    f: Facts = {}
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann = s.get(m.Author, 1)
        b1, b3 = ann.books
        sql.take()
        (s.expunge if op == "expunge" else s.expire)(ann)
        f["books"] = [(ns.api.state(b), b in s, sorted(columns(b))) for b in (b1, b3)]
        f["sql"] = sql.take()
    return f


@pytest.mark.parametrize("op", ["expunge", "expire"])
@CASCADES
def test_expunge_and_expire_cascade(
    fk_engine: Engine, fk_ref_engine: Engine, factory: Factory, op: str
) -> None:
    sk, orm = both(detach_cascades, fk_engine, fk_ref_engine, factory, op)
    assert sk == orm
    followed = factory is orphans
    kept = ["author_id", "id", "title"]
    if op == "expunge":
        wanted = ("detached", False, kept) if followed else ("persistent", True, kept)
    else:
        wanted = ("persistent", True, [] if followed else kept)
    assert orm["books"] == [wanted, wanted]
    assert orm["sql"] == ([], 0)  # no statement, no SELECT


def deleted_member(ns: Names, engine: Engine, how: str) -> Facts:
    """b3 marked for deletion, then appended to bob's loaded books (or given bob as its
    author): the save-update cascade leaves an object the session holds as it is, so b3
    stays marked and its row is deleted."""
    m = shelf(ns)
    seed(engine, m)
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, bob, b3 = s.get(m.Author, 1), s.get(m.Author, 2), s.get(m.Book, 3)
        assert titles(ann.books) and titles(bob.books)  # both loaded
        s.delete(b3)
        if how == "append":
            bob.books.append(b3)
        else:
            b3.author = bob
        f: Facts = {"marked": b3 in s.deleted, "books": titles(bob.books)}
        sql.take()
        s.commit()
        writes, _ = sql.take()
        f["deletes"] = [w for w in writes if statement_kind(w[0]) == "DELETE"]
        f["state"] = ns.api.state(b3)
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("how", ["append", "assign"])
def test_cascade_leaves_a_deleted_object_marked(
    fk_engine: Engine, fk_ref_engine: Engine, how: str
) -> None:
    sk, orm = both(deleted_member, fk_engine, fk_ref_engine, how)
    assert sk == orm
    assert sk["marked"] and sk["books"] == ["b2", "b3"]
    assert sk["rows"] == {**SEEDED, "book": [r for r in SEEDED["book"] if r[0] != 3]}


def joined_deleted_parent(ns: Names, engine: Engine, how: str) -> Facts:
    """ann marked for deletion (no delete cascade), then b2 given to her (or a new book
    appended to her books): the flush NULLs her other books' keys but writes hers into
    the newcomer, so the database refuses her DELETE; nothing is kept."""
    m = shelf(ns)
    seed(engine, m)
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, b2 = s.get(m.Author, 1), s.get(m.Book, 2)
        assert titles(ann.books) == ["b1", "b3"]
        s.delete(ann)
        if how == "assign":
            b2.author = ann
        else:
            ann.books.append(m.Book(title="new"))
        sql.take()
        f: Facts = {"error": type(error(s.commit)).__name__}
        f["flush"] = flush_facts(sql)
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("how", ["assign", "append new"])
def test_child_joined_to_a_deleted_parent_keeps_its_key(
    fk_engine: Engine, fk_ref_engine: Engine, how: str
) -> None:
    sk, orm = both(joined_deleted_parent, fk_engine, fk_ref_engine, how)
    assert sk == orm
    assert sk["error"] == "IntegrityError" and sk["rows"] == SEEDED


def orphaned_or_moved(ns: Names, engine: Engine, how: str) -> Facts:
    """``b1.author = None`` with ann's books loaded and delete-orphan: an orphan, deleted;
    b1 moved to bob while ann's books are unloaded, then ann deleted: the move is kept
    (her other books get NULL)."""
    m = orphans(ns) if how == "orphaned" else shelf(ns)
    seed(engine, m)
    with ns.Session(engine) as s, Sql(engine) as sql:
        ann, bob, b1 = s.get(m.Author, 1), s.get(m.Author, 2), s.get(m.Book, 1)
        if how == "orphaned":
            assert titles(ann.books) == ["b1", "b3"]
            b1.author = None
        else:
            b1.author = bob
            s.delete(ann)
        sql.take()
        s.commit()
        f: Facts = {"flush": flush_facts(sql)}
    f["rows"] = committed(engine, m)
    return f


@pytest.mark.parametrize("how", ["orphaned", "moved off a deleted parent"])
def test_many_to_one_side_orphans_and_moves(
    fk_engine: Engine, fk_ref_engine: Engine, how: str
) -> None:
    sk, orm = both(orphaned_or_moved, fk_engine, fk_ref_engine, how)
    assert sk == orm
    if how == "orphaned":
        assert sk["rows"]["book"] == [(2, "b2", 2), (3, "b3", 1)]
    else:
        assert sk["rows"] == {
            "author": [(2, "bob")],
            "book": [(1, "b1", 2), (2, "b2", 2), (3, "b3", None)],
        }


def to_a_deleted_row(ns: Names, engine: Engine, how: str) -> Facts:
    """An object whose DELETE was flushed, appended to ann's loaded books (or given as
    b1's author): the cascade refuses it, before anything changes."""
    m = shelf(ns)
    seed(engine, m)
    with ns.Session(engine) as s:
        ann, b1 = s.get(m.Author, 1), s.get(m.Book, 1)
        assert titles(ann.books) == ["b1", "b3"]
        gone = s.get(m.Book, 2) if how == "append" else s.get(m.Author, 2)
        if how == "assign":
            for book in list(gone.books):  # bob's book first, so that bob can go
                s.delete(book)
        s.delete(gone)
        s.flush()
        err = error(
            lambda: ann.books.append(gone) if how == "append" else setattr(b1, "author", gone)
        )
        return {
            "error": (type(err).__name__, re.sub("0x[0-9a-f]+", "0x", str(err))[:60]),
            "books": titles(ann.books),
            "author": b1.author is ann,
        }


@pytest.mark.parametrize("how", ["append", "assign"])
def test_cascade_refuses_a_deleted_row_before_changing(
    fk_engine: Engine, fk_ref_engine: Engine, how: str
) -> None:
    sk, orm = both(to_a_deleted_row, fk_engine, fk_ref_engine, how)
    assert sk == orm
    assert sk["error"][0] == "InvalidRequestError" and sk["books"] == ["b1", "b3"] and sk["author"]
