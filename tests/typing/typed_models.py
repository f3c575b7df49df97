"""A typed application of sessionkit: what mypy --strict and pyright (strict) must see.

Each ``assert_type`` is checked by both type checkers in CI (``nox -s typecheck``), and
the module also runs (``tests/test_typed_example.py``), so every line here is true at
runtime as well. The lines marked as errors must stay errors: their ignore comments are
reported as unused (``warn_unused_ignores``, ``reportUnnecessaryTypeIgnoreComment``) the
day a checker stops seeing the mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sqlalchemy import Column, Engine, ForeignKey, Row, String, create_engine, select
from sqlalchemy.engine import ScalarResult
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import BinaryExpression, ColumnElement
from typing_extensions import assert_type

from sessionkit import (
    AsyncSession,
    DeclarativeBase,
    Mapped,
    MappedAsDataclass,
    Query,
    Session,
    async_sessionmaker,
    mapped_column,
    sessionmaker,
)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    nickname: Mapped[str | None]


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    balance: Mapped[int] = mapped_column(default=0)


class AuditedSession(Session):
    """An application's own Session class, given to sessionmaker(class_=...)."""


class DataclassBase(MappedAsDataclass, DeclarativeBase):
    pass


class Note(DataclassBase):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(init=False, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(String(500), default="")


def _raises(error: type[Exception], call: Callable[[], object]) -> None:
    """The mistakes the checkers see fail at runtime too."""
    try:
        call()
    except error:
        return
    raise AssertionError(f"{call} did not raise {error.__name__}")


def check_models() -> None:
    """Class access is the Core column, instance access its value."""
    user = User(name="sandy")
    assert_type(user, User)
    assert_type(user.name, str)
    assert_type(user.nickname, str | None)
    assert_type(User.name, Column[str])
    assert_type(User.nickname, Column[str | None])
    assert_type(User.name == "x", ColumnElement[bool])
    assert_type(User.id.in_([1, 2]), BinaryExpression[bool])
    assert_type(User.name.like("a%"), BinaryExpression[bool])
    user.nickname = None
    user.name = "patrick"
    user.name = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]

    # MappedAsDataclass: both checkers see the generated __init__(title, body="").
    note = Note("groceries")
    assert_type(note.title, str)
    assert_type(Note("groceries", body="milk"), Note)
    assert_type(Note(title="groceries"), Note)
    _raises(TypeError, lambda: Note())  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Note(title=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def check_session(engine: Engine) -> None:
    maker = sessionmaker(engine)
    assert_type(maker, sessionmaker[Session])
    with maker() as session:
        assert_type(session, Session)
        with session.no_autoflush as same:
            assert_type(same, Session)
    audited = sessionmaker(engine, class_=AuditedSession)
    assert_type(audited, sessionmaker[AuditedSession])
    with audited() as own:
        assert_type(own, AuditedSession)
    with maker.begin() as session:
        assert_type(session, Session)
        session.add_all([User(name="sandy"), User(name="patrick", nickname="pat")])
        session.add(Note("groceries"))
        session.flush()
        session.add(Account(user_id=1, balance=10))

    with Session(engine) as session:
        assert_type(session, Session)
        assert_type(session.get(User, 1), User | None)
        assert session.get(User, 99) is None
        sandy = session.get_one(User, 1)
        assert_type(sandy, User)
        assert sandy.name == "sandy"

        users = session.scalars(select(User).order_by(User.id)).all()
        assert_type(users, Sequence[User])
        assert [u.name for u in users] == ["sandy", "patrick"]

        one = session.execute(select(User).where(User.name == "sandy")).scalar_one()
        assert_type(one, User)
        assert one is sandy

        rows = session.execute(select(User, Account).join(Account)).all()
        assert_type(rows, Sequence[Row[User, Account]])
        user, account = rows[0]
        assert_type(user, User)
        assert_type(account, Account)
        assert (user, account.balance) == (sandy, 10)

        name = session.scalar(select(User.name).where(User.id == 2))
        assert_type(name, str | None)
        assert name == "patrick"
        assert_type(session.scalars(select(User.id)).all(), Sequence[int])
        row = session.execute(select(User.name, User.nickname).where(User.id == 2)).one()
        assert_type(row, Row[str, str | None])
        row_name, nickname = row  # a Row unpacks with its types
        assert_type(nickname, str | None)
        assert (row_name, nickname) == ("patrick", "pat")

        merged = session.merge(User(id=2, name="pat"))
        assert_type(merged, User)
        assert merged is session.get_one(User, 2) and merged.name == "pat"

        query = session.query(User)
        assert_type(query, Query[User])
        assert_type(query.all(), list[User])
        assert_type(query.first(), User | None)
        assert_type(query.filter(User.id == 1).one(), User)
        for each in query.order_by(User.id):
            assert_type(each, User)

        note = session.scalars(select(Note)).one()
        assert_type(note, Note)
        assert (note.title, note.body) == ("groceries", "")


async def check_async_session(engine: AsyncEngine) -> None:
    """The AsyncSession's reads are typed as the Session's."""
    maker = async_sessionmaker(engine)
    assert_type(maker, async_sessionmaker[AsyncSession])
    async with maker() as session:
        users = await session.scalars(select(User).order_by(User.id))
        assert_type(users, ScalarResult[User])
        first = users.first()
        assert first is not None
        one = await session.get(User, first.id)
        assert_type(one, User | None)
        row = (await session.execute(select(User.id, User.name).order_by(User.id))).first()
        assert row is not None
        assert_type(row, Row[int, str])
        name = await session.scalar(select(User.name).where(User.id == first.id))
        assert_type(name, str | None)
        streamed = [u.name async for u in await session.stream_scalars(select(User))]
        assert_type(streamed, list[str])
        assert name == row[1] and one is first and streamed


def main(engine: Engine | None = None) -> None:
    engine = engine if engine is not None else create_engine("sqlite://")
    Base.metadata.create_all(engine)
    DataclassBase.metadata.create_all(engine)
    check_models()
    check_session(engine)
    database = engine.url.database
    if database:  # the same file, through the async driver
        async_engine = create_async_engine(f"sqlite+aiosqlite:///{database}")

        async def run() -> None:
            await check_async_session(async_engine)
            await async_engine.dispose()

        asyncio.run(run())


if __name__ == "__main__":
    main()
