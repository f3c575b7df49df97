"""sessionkit and the SQLAlchemy ORM, measured through one shared code path.

sessionkit's public API mirrors ``sqlalchemy.orm``, so each scenario is written once and
run against both; the only differences are the Session class, the mapped class and the
``inspect`` used by the (untimed) checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
import sqlalchemy.orm
from sqlalchemy import Engine, select

import sessionkit

from ..harness import CheckFailed, Trial
from ..models import Library, OrmUser, SkTypedUser, SkUser, row_of
from ..schema import AuthorSource, LibraryRow, Row

#: How many objects the rollback check reloads from the database (the rest it inspects).
RELOAD_SAMPLE = 50


@dataclass(frozen=True)
class SessionApi:
    """What differs between sessionkit and the ORM: nothing but these three names."""

    impl: str
    session: Callable[..., Any]
    user: Any
    inspect: Callable[[Any], Any]


SESSIONKIT = SessionApi("sessionkit", sessionkit.Session, SkUser, sessionkit.inspect)
SESSIONKIT_TYPED = SessionApi(
    "sessionkit_typed", sessionkit.Session, SkTypedUser, sessionkit.inspect
)
ORM = SessionApi("orm", sqlalchemy.orm.Session, OrmUser, sqlalchemy.inspect)


def batch_refresh_unavailable(engine: Engine) -> str | None:
    """None if ``sessionkit.Session(engine, batch_refresh=True)`` works, else why not."""
    options: dict[str, Any] = {"batch_refresh": True}  # may not exist in this version
    try:
        session = sessionkit.Session(engine, **options)
    except TypeError as err:
        return f"Session(batch_refresh=True) is not available: {err}"
    session.close()
    return None


def relationship_unavailable() -> str | None:
    """None if ``from sessionkit import relationship`` works, else why not."""
    try:
        from sessionkit import relationship  # noqa: F401
    except ImportError as err:
        return f"sessionkit.relationship is not available: {err}"
    return None


def load(api: SessionApi, engine: Engine) -> Trial:
    """S1: ``session.execute(select(User)).scalars().all()``."""
    session = api.session(engine)
    User = api.user

    def run() -> list[Any]:
        return session.execute(select(User)).scalars().all()  # type: ignore[no-any-return]

    return Trial(run, lambda objs: [row_of(o) for o in objs], session.close)


def bulk_insert(api: SessionApi, engine: Engine, rows: Sequence[Row], client_keys: bool) -> Trial:
    """S2: build the objects, ``add_all``, ``commit``; observe the keys they got."""
    session = api.session(engine)
    User = api.user

    def run() -> list[Any]:
        if client_keys:
            objs = [
                User(id=i, name=n, fullname=f, email=e, age=a, score=s, visits=v)
                for i, n, f, e, a, s, v in rows
            ]
        else:
            objs = [
                User(name=n, fullname=f, email=e, age=a, score=s, visits=v)
                for _, n, f, e, a, s, v in rows
            ]
        session.add_all(objs)
        session.commit()
        return objs

    def observe(objs: list[Any]) -> list[Any]:
        # The identity, not obj.id: reading an expired attribute would run a SELECT.
        out = []
        for obj in objs:
            identity = api.inspect(obj).identity
            out.append(None if identity is None else identity[0])
        return out

    return Trial(run, observe, session.close)


def single_insert(api: SessionApi, engine: Engine, rows: Sequence[Row]) -> Trial:
    """S3: one long-lived session; per row ``add`` then ``commit`` (keys generated)."""
    session = api.session(engine)
    User = api.user

    def run() -> None:
        for _, n, f, e, a, s, v in rows:
            session.add(User(name=n, fullname=f, email=e, age=a, score=s, visits=v))
            session.commit()

    return Trial(run, close=session.close)


def get_cold(api: SessionApi, engine: Engine, keys: Sequence[int]) -> Trial:
    """S4 cold: an empty session, so every ``get`` is one SELECT."""
    session = api.session(engine)
    User = api.user

    def run() -> list[Any]:
        return [session.get(User, k) for k in keys]

    return Trial(run, lambda objs: [row_of(o) for o in objs], session.close)


def get_warm(api: SessionApi, engine: Engine, keys: Sequence[int]) -> Trial:
    """S4 warm: every object already loaded, so every ``get`` is an identity-map hit."""
    session = api.session(engine)
    User = api.user
    loaded = session.execute(select(User)).scalars().all()
    by_pk = {o.id: o for o in loaded}

    def run() -> list[Any]:
        return [session.get(User, k) for k in keys]

    def observe(objs: list[Any]) -> list[Row]:
        for k, obj in zip(keys, objs, strict=True):
            if obj is not by_pk.get(k):
                raise CheckFailed(f"get({k}) did not return the object already loaded")
        return [row_of(o) for o in objs]

    return Trial(run, observe, session.close)


def update(api: SessionApi, engine: Engine) -> Trial:
    """S5: load every row, ``visits += 1`` on each object, commit."""
    session = api.session(engine)
    User = api.user

    def run() -> None:
        for obj in session.execute(select(User)).scalars().all():
            obj.visits = obj.visits + 1
        session.commit()

    return Trial(run, close=session.close)


def refresh(api: SessionApi, engine: Engine, **session_kw: Any) -> Trial:
    """S6: objects loaded beforehand; commit (expires them), then read one attribute each."""
    session = api.session(engine, **session_kw)
    objs = session.execute(select(api.user)).scalars().all()
    ids = [o.id for o in objs]

    def run() -> list[int]:
        session.commit()
        return [o.visits for o in objs]

    return Trial(run, lambda visits: list(zip(ids, visits, strict=True)), session.close)


def rollback(api: SessionApi, engine: Engine) -> Trial:
    """S7: objects loaded and changed beforehand; only ``rollback()`` is measured."""
    session = api.session(engine)
    objs = session.execute(select(api.user)).scalars().all()
    original = [o.visits for o in objs]
    for obj in objs:
        obj.visits = obj.visits + 1

    def run() -> None:
        session.rollback()

    def observe(_: None) -> int:
        if len(session.dirty):
            raise CheckFailed(f"{len(session.dirty)} objects still dirty after rollback()")
        for obj, old in zip(objs, original, strict=True):
            # Expired (reloads on access) or reverted in place: both are correct.
            if "visits" not in api.inspect(obj).unloaded and obj.visits != old:
                raise CheckFailed(f"visits of id={obj.id} is {obj.visits}, expected {old}")
        step = max(1, len(objs) // RELOAD_SAMPLE)
        for obj, old in list(zip(objs, original, strict=True))[::step]:
            if obj.visits != old:  # reloads from the database when expired
                raise CheckFailed(f"reloaded visits of id={obj.id} is {obj.visits}, not {old}")
        return len(objs)

    return Trial(run, observe, session.close)


def memory(api: SessionApi, engine: Engine) -> Trial:
    """S8: a session holding every loaded object; the result list is kept alive."""
    held: list[Any] = []

    def run() -> list[Any]:
        session = api.session(engine)
        held.append(session)
        return session.execute(select(api.user)).scalars().all()  # type: ignore[no-any-return]

    def close() -> None:
        for session in held:
            session.close()

    return Trial(run, lambda objs: [row_of(o) for o in objs], close)


def load_with_books(api: SessionApi, author: Any, engine: Engine, *options: Any) -> Trial:
    """S9: load every author in one query, then each author's ``books`` and every title.

    ``options`` go on the query (``selectinload(Author.books)``); without them each
    library loads ``books`` its default way.
    """
    session = api.session(engine)

    def run() -> tuple[list[Any], list[list[str]]]:
        stmt = select(author).options(*options) if options else select(author)
        authors = session.execute(stmt).scalars().all()
        return authors, [[b.title for b in a.books] for a in authors]

    def observe(result: tuple[list[Any], list[list[str]]]) -> list[LibraryRow]:
        authors, titles = result
        out: list[LibraryRow] = []
        for a, ts in zip(authors, titles, strict=True):
            books = list(a.books)
            if len(books) != len(ts):
                raise CheckFailed(f"author {a.id}: {len(ts)} titles read, {len(books)} books")
            for b in books:
                if b.author is not a:
                    raise CheckFailed(f"book {b.id}: .author is not the author it was loaded by")
            out.append((a.id, a.name, tuple((b.id, t) for b, t in zip(books, ts, strict=True))))
        return out

    return Trial(run, observe, session.close)


def insert_with_books(
    api: SessionApi, library: Library, engine: Engine, source: Sequence[AuthorSource]
) -> Trial:
    """S10: ``Author(name=..., books=[Book(title=...), ...])`` per author, ``add_all``,
    ``commit``: the books reach the session through the collection, their ``author_id``
    is filled at flush from their author's generated key.

    Each author's list of books is also kept aside, so the (untimed) check can read the
    keys every book got without loading the expired collections again.
    """
    session = api.session(engine)
    Author, Book = library.author, library.book

    def run() -> tuple[list[Any], list[list[Any]]]:
        books = [[Book(title=title) for title in titles] for _, titles in source]
        authors = [Author(name=name, books=bs) for (name, _), bs in zip(source, books, strict=True)]
        session.add_all(authors)
        session.commit()
        return authors, books

    def key(obj: Any) -> Any:
        # The identity, not obj.id: reading an expired attribute would run a SELECT.
        identity = api.inspect(obj).identity
        return None if identity is None else identity[0]

    def observe(result: tuple[list[Any], list[list[Any]]]) -> list[tuple[Any, list[Any]]]:
        authors, books = result
        return [(key(a), [key(b) for b in bs]) for a, bs in zip(authors, books, strict=True)]

    return Trial(run, observe, session.close)
