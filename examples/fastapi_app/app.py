"""A FastAPI service on sessionkit's AsyncSession: one session per request.

The session comes from a dependency that opens it for the request and closes it after
the response, whatever happened (an exception, a client that went away). Objects expire
at commit as with the ORM's defaults; what the response needs is loaded inside awaited
calls (``await session.refresh(obj)``, ``await obj.awaitable_attrs.books``, or a loader
option in the query), so nothing is ever read from the database outside an await.

Run it: ``uvicorn --factory examples.fastapi_app.app:create_app`` (SQLite file ``example.db``), or
``create_app("postgresql+asyncpg://...")``. (No ``from __future__ import annotations``:
FastAPI reads the endpoints' annotations, which name the per-app ``Session`` dependency.)
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessionkit import (
    AsyncAttrs,
    AsyncSession,
    DeclarativeBase,
    Mapped,
    async_sessionmaker,
    mapped_column,
    relationship,
    selectinload,
)


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "example_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    books: Mapped[list["Book"]] = relationship(
        back_populates="author", cascade="all, delete-orphan", order_by="Book.id"
    )


class Book(Base):
    __tablename__ = "example_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("example_author.id"))
    author: Mapped["Author"] = relationship(back_populates="books")


class AuthorIn(BaseModel):
    name: str
    books: list[str] = []


class AuthorOut(BaseModel):
    id: int
    name: str
    books: list[str]


async def author_out(author: Author) -> AuthorOut:
    """The response, every value read inside an await (loaded if it is expired)."""
    books = await author.awaitable_attrs.books
    name = await author.awaitable_attrs.name
    return AuthorOut(id=author.id, name=name, books=[b.title for b in books])


def create_app(bind: str | AsyncEngine = "sqlite+aiosqlite:///example.db") -> FastAPI:
    engine = create_async_engine(bind) if isinstance(bind, str) else bind
    sessions = async_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:  # closed after the response, in every case
            yield session

    Session = Annotated[AsyncSession, Depends(get_session)]

    @app.post("/authors", status_code=201)
    async def create_author(data: AuthorIn, session: Session) -> AuthorOut:
        author = Author(name=data.name, books=[Book(title=t) for t in data.books])
        session.add(author)  # the books go with it (cascade)
        await session.commit()  # expires author; author_out() loads it back, awaited
        return await author_out(author)

    @app.get("/authors")
    async def list_authors(session: Session) -> list[AuthorOut]:
        stmt = select(Author).options(selectinload(Author.books)).order_by(Author.id)
        return [await author_out(a) for a in await session.scalars(stmt)]

    @app.get("/authors/{author_id}")
    async def get_author(author_id: int, session: Session) -> AuthorOut:
        author = await session.get(Author, author_id)
        if author is None:
            raise HTTPException(status_code=404, detail=f"no author {author_id}")
        return await author_out(author)

    @app.post("/authors/{author_id}/books", status_code=201)
    async def add_book(author_id: int, title: str, session: Session) -> AuthorOut:
        author = await session.get(Author, author_id)
        if author is None:
            raise HTTPException(status_code=404, detail=f"no author {author_id}")
        (await author.awaitable_attrs.books).append(Book(title=title))
        await session.commit()
        return await author_out(author)

    @app.delete("/authors/{author_id}", status_code=204)
    async def delete_author(author_id: int, session: Session) -> None:
        author = await session.get(Author, author_id)
        if author is None:
            raise HTTPException(status_code=404, detail=f"no author {author_id}")
        await session.delete(author)  # its books too (cascade); awaited: it may load them
        await session.commit()

    return app
