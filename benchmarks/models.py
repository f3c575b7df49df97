"""The classes each implementation loads rows into, all mapped to the same Table.

sessionkit and the SQLAlchemy ORM map ``schema.user_table`` itself (``__table__``), so
both emit SQL against exactly the same columns; ``SkTypedUser`` declares the same table
with typed annotations, to show that typed models cost the same. ``SlotUser`` is the
hand-written floor: the least an application could spend on one object per row.

S9's and S10's ``Author``/``Book`` pair is declared once, in :func:`declare_library`,
and mapped by each library with its own ``relationship``: the declarations cannot differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy.orm
from sqlalchemy import Double, String
from sqlalchemy.orm import DeclarativeBase

import sessionkit

from .schema import TABLE_NAME, author_table, book_table, user_table

SkBase: Any = sessionkit.declarative_base()


class SkUser(SkBase):  # type: ignore[misc]
    """``user_account`` mapped by sessionkit."""

    __table__ = user_table


class SkTypedBase(sessionkit.DeclarativeBase):
    """Typed models get their own MetaData: the table is the same, declared again."""


class SkTypedUser(SkTypedBase):
    """``user_account`` declared the 2.0 way (``Mapped[]``, ``mapped_column()``).

    It must cost exactly what ``SkUser`` costs: the declarations are gone once the
    class is mapped, and the same loader, flush and descriptors run.
    """

    __tablename__ = TABLE_NAME
    id: sessionkit.Mapped[int] = sessionkit.mapped_column(primary_key=True)
    name: sessionkit.Mapped[str] = sessionkit.mapped_column(String(100))
    fullname: sessionkit.Mapped[str] = sessionkit.mapped_column(String(100))
    email: sessionkit.Mapped[str] = sessionkit.mapped_column(String(100))
    age: sessionkit.Mapped[int]
    score: sessionkit.Mapped[float] = sessionkit.mapped_column(Double)
    visits: sessionkit.Mapped[int]


class OrmBase(DeclarativeBase):
    pass


class OrmUser(OrmBase):
    """``user_account`` mapped by the SQLAlchemy ORM (declarative, same Table)."""

    __table__ = user_table


class SlotUser:
    """The floor: one plain ``__slots__`` object per row, no bookkeeping at all."""

    __slots__ = ("age", "email", "fullname", "id", "name", "score", "visits")

    def __init__(
        self,
        id: int,
        name: str,
        fullname: str,
        email: str,
        age: int,
        score: float,
        visits: int,
    ) -> None:
        self.id = id
        self.name = name
        self.fullname = fullname
        self.email = email
        self.age = age
        self.score = score
        self.visits = visits


@dataclass(frozen=True)
class Library:
    """The mapped ``Author`` and ``Book`` classes of one library."""

    author: Any
    book: Any


def declare_library(base: Any, relationship: Callable[..., Any]) -> Library:
    """``Author.books`` / ``Book.author``, declared on ``base`` with ``relationship``.

    No ``lazy=``: each library loads ``Author.books`` its default way (sessionkit
    batched, the ORM one SELECT per author).
    """

    class Author(base):  # type: ignore[misc]
        __table__ = author_table
        books = relationship("Book", back_populates="author", order_by="Book.id")

    class Book(base):  # type: ignore[misc]
        __table__ = book_table
        author = relationship("Author", back_populates="books")

    return Library(Author, Book)


class OrmLibraryBase(DeclarativeBase):
    pass


ORM_LIBRARY = declare_library(OrmLibraryBase, sqlalchemy.orm.relationship)


@functools.cache
def sessionkit_library() -> Library:
    """sessionkit's ``Author``/``Book``, mapped on first use (after the import check)."""
    from sessionkit import relationship

    return declare_library(sessionkit.declarative_base(), relationship)


def row_of(obj: Any) -> tuple[Any, ...]:
    """An object's column values as a row tuple (attribute access, as an app would)."""
    return (obj.id, obj.name, obj.fullname, obj.email, obj.age, obj.score, obj.visits)
