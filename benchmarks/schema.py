"""The benchmark tables, their deterministic data, and Core helpers to set up and read back.

Every implementation works on the same ``user_account`` table and the same rows, so
that the only difference between them is the code path. Values are chosen to round-trip
exactly on every backend (floats are multiples of 0.25), which lets the checks compare
with ``==``. S9 and S10 (a one-to-many relationship) use ``author`` and ``book`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
)

TABLE_NAME = "user_account"
COLUMNS: tuple[str, ...] = ("id", "name", "fullname", "email", "age", "score", "visits")
DATA_COLUMNS: tuple[str, ...] = COLUMNS[1:]

Row = tuple[int, str, str, str, int, float, int]
AuthorRow = tuple[int, str]  # id, name
BookRow = tuple[int, str, int]  # id, title, author_id
#: An author as S9 reads it: id, name, and its books' (id, title) in ``book.id`` order.
LibraryRow = tuple[int, str, tuple[tuple[int, str], ...]]
#: An author as S10 inserts it: its name and its books' titles (keys are generated).
AuthorSource = tuple[str, tuple[str, ...]]

metadata = MetaData()

user_table = Table(
    TABLE_NAME,
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("fullname", String(100), nullable=False),
    Column("email", String(100), nullable=False),
    Column("age", Integer, nullable=False),
    Column("score", Double, nullable=False),
    Column("visits", Integer, nullable=False),
)

author_table = Table(
    "author",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)

# The foreign key is indexed, as an application's would be: without the index every
# per-author SELECT of the ORM's lazy loading would scan the whole table.
book_table = Table(
    "book",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(50), nullable=False),
    Column("author_id", Integer, ForeignKey("author.id"), index=True),
)


def make_row(i: int) -> Row:
    """Row ``i``: distinct strings of realistic length, small and large numbers."""
    return (
        i,
        f"user{i:07d}",
        f"User Number {i}",
        f"user{i}@example.com",
        18 + i % 60,
        i * 0.25,
        i % 1000,
    )


def make_rows(n: int) -> list[Row]:
    """Rows with ids ``1..n``."""
    return [make_row(i) for i in range(1, n + 1)]


def create(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def truncate(conn: Connection) -> None:
    """Empty the table and restart generated keys at 1 (so every repeat starts alike)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text(f"TRUNCATE {TABLE_NAME} RESTART IDENTITY"))
    elif dialect in ("mysql", "mariadb"):
        conn.execute(text(f"TRUNCATE TABLE {TABLE_NAME}"))
    else:
        conn.execute(user_table.delete())


def reset(engine: Engine, rows: Sequence[Row]) -> None:
    """Table holds exactly ``rows`` (committed), nothing else."""
    with engine.begin() as conn:
        truncate(conn)
        if rows:
            conn.execute(insert(user_table), [dict(zip(COLUMNS, r, strict=True)) for r in rows])


def empty(engine: Engine) -> None:
    with engine.begin() as conn:
        truncate(conn)


def read_back(engine: Engine) -> list[Row]:
    """All rows in primary-key order, read with Core on a fresh connection."""
    with engine.connect() as conn:
        result = conn.execute(select(user_table).order_by(user_table.c.id))
        return [tuple(r) for r in result]


def make_authors(n: int) -> list[AuthorRow]:
    """Authors with ids ``1..n``."""
    return [(i, f"Author Number {i}") for i in range(1, n + 1)]


def make_books(authors: Sequence[AuthorRow], per_author: int) -> list[BookRow]:
    """``per_author`` books for each author, dealt out in turn.

    Book ``j`` belongs to author ``j mod n``, so no author's books are neighbours in the
    table: grouping them (and ``order_by``) has real work to do.
    """
    n = len(authors)
    return [
        (j + 1, f"Book {j + 1:06d} of author {authors[j % n][0]}", authors[j % n][0])
        for j in range(n * per_author)
    ]


def reset_library(engine: Engine, authors: Sequence[AuthorRow], per_author: int) -> None:
    """``author`` holds exactly ``authors`` and ``book`` their books (committed)."""
    books = make_books(authors, per_author)
    with engine.begin() as conn:
        conn.execute(book_table.delete())
        conn.execute(author_table.delete())
        if authors:
            conn.execute(insert(author_table), [{"id": i, "name": n} for i, n in authors])
            conn.execute(
                insert(book_table),
                [{"id": i, "title": t, "author_id": a} for i, t, a in books],
            )


def library_rows(authors: Sequence[AuthorRow], per_author: int) -> list[LibraryRow]:
    """What S9 must read from ``reset_library(engine, authors, per_author)``'s tables."""
    books: dict[int, list[tuple[int, str]]] = {a[0]: [] for a in authors}
    for book_id, title, author_id in make_books(authors, per_author):
        books[author_id].append((book_id, title))
    return [(i, name, tuple(books[i])) for i, name in authors]


def library_source(authors: Sequence[AuthorRow], per_author: int) -> list[AuthorSource]:
    """S10's input: each author's name and its books' titles, as ``make_books`` deals them.

    Names and titles are all distinct, so the rows read back can be matched to them.
    """
    titles: dict[int, list[str]] = {a[0]: [] for a in authors}
    for _, title, author_id in make_books(authors, per_author):
        titles[author_id].append(title)
    return [(name, tuple(titles[i])) for i, name in authors]


def truncate_library(conn: Connection) -> None:
    """Empty ``book`` and ``author`` and restart their generated keys at 1."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("TRUNCATE book, author RESTART IDENTITY"))
        return
    conn.execute(book_table.delete())
    conn.execute(author_table.delete())
    if dialect in ("mysql", "mariadb"):
        # TRUNCATE TABLE author is refused while book references it; on an empty table
        # this puts AUTO_INCREMENT back to 1. (SQLite restarts at 1 by itself: no
        # AUTOINCREMENT keyword, so the next key is max(id) + 1.)
        conn.execute(text("ALTER TABLE book AUTO_INCREMENT = 1"))
        conn.execute(text("ALTER TABLE author AUTO_INCREMENT = 1"))


def empty_library(engine: Engine) -> None:
    with engine.begin() as conn:
        truncate_library(conn)


def read_library(engine: Engine) -> tuple[list[AuthorRow], list[BookRow]]:
    """All authors and all books in primary-key order, read with Core on a fresh connection."""
    with engine.connect() as conn:
        authors = conn.execute(select(author_table).order_by(author_table.c.id))
        author_rows: list[AuthorRow] = [(r.id, r.name) for r in authors]
        books = conn.execute(select(book_table).order_by(book_table.c.id))
        book_rows: list[BookRow] = [(r.id, r.title, r.author_id) for r in books]
    return author_rows, book_rows
