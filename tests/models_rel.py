"""Models with relationships, written once for sessionkit and for the SQLAlchemy ORM.

Each factory takes a ``Names`` (``names("sessionkit")`` or ``names("orm")``) and declares
new classes on a new base (its own ``MetaData``) with that library's ``DeclarativeBase``,
``Mapped``, ``mapped_column``, ``relationship``... The annotations are evaluated when the
class statement runs (this module does not use ``from __future__ import annotations``), so
``Mapped`` is the factory's local name; targets not declared yet are quoted, as the ORM
documents (``Mapped[list["Book"]]``).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import reference
import sqlalchemy.orm as orm
import sqlalchemy.orm.exc as orm_exc
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table


@dataclass(frozen=True)
class Names:
    """One library's names for declaring and loading relationships."""

    name: str
    api: reference.Api
    Session: Any
    DeclarativeBase: Any
    Mapped: Any
    mapped_column: Any
    declarative_base: Any
    relationship: Any
    selectinload: Any
    joinedload: Any
    raiseload: Any
    lazyload: Any
    inspect: Any
    # A new ``map_imperatively(cls, table, properties=...)``; the ORM's maps through a
    # registry, and classes related by ``properties`` must share one.
    imperative: Callable[[], Callable[..., Any]]
    DetachedInstanceError: type[BaseException]


@functools.cache
def names(library: str) -> Names:
    """``Names`` of ``"sessionkit"`` or ``"orm"``, read when first asked for."""
    if library == "orm":
        return Names(
            name="orm",
            api=reference.ORM,
            Session=orm.Session,
            DeclarativeBase=orm.DeclarativeBase,
            Mapped=orm.Mapped,
            mapped_column=orm.mapped_column,
            declarative_base=orm.declarative_base,
            relationship=orm.relationship,
            selectinload=orm.selectinload,
            joinedload=orm.joinedload,
            raiseload=orm.raiseload,
            lazyload=orm.lazyload,
            inspect=reference.ORM.inspect,
            imperative=lambda: orm.registry().map_imperatively,
            DetachedInstanceError=orm_exc.DetachedInstanceError,
        )
    if library != "sessionkit":
        raise ValueError(f"unknown library {library!r}")
    import sessionkit
    import sessionkit.exc

    return Names(
        name="sessionkit",
        api=reference.SK,
        Session=sessionkit.Session,
        DeclarativeBase=sessionkit.DeclarativeBase,
        Mapped=sessionkit.Mapped,
        mapped_column=sessionkit.mapped_column,
        declarative_base=sessionkit.declarative_base,
        relationship=sessionkit.relationship,
        selectinload=sessionkit.selectinload,
        joinedload=sessionkit.joinedload,
        raiseload=sessionkit.raiseload,
        lazyload=sessionkit.lazyload,
        inspect=sessionkit.inspect,
        imperative=lambda: sessionkit.map_imperatively,
        DetachedInstanceError=sessionkit.exc.DetachedInstanceError,
    )


def library(ns: Names, *, books_lazy: str | None = None, books_order: str = "Book.id") -> Any:
    """``Author`` -< ``Book`` -< ``Review``; ``Author`` -- ``Profile`` (one-to-one);
    ``Book`` >-< ``Tag`` through table ``book_tag``.

    ``books_lazy``: the ``lazy=`` of ``Author.books`` (None: the library's default).
    """
    Mapped, mapped_column, relationship = ns.Mapped, ns.mapped_column, ns.relationship
    lazy: dict[str, Any] = {} if books_lazy is None else {"lazy": books_lazy}

    class Base(ns.DeclarativeBase):
        pass

    book_tag = Table(
        "book_tag",
        Base.metadata,
        Column("book_id", ForeignKey("book.id"), primary_key=True),
        Column("tag_id", ForeignKey("tag.id"), primary_key=True),
    )

    class Author(Base):
        __tablename__ = "author"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))
        books: Mapped[list["Book"]] = relationship(
            back_populates="author", order_by=books_order, **lazy
        )
        profile: Mapped["Profile | None"] = relationship(back_populates="author", uselist=False)

    class Book(Base):
        __tablename__ = "book"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(50))
        author_id: Mapped[int | None] = mapped_column(ForeignKey("author.id"))
        author: Mapped["Author | None"] = relationship(back_populates="books")
        reviews: Mapped[list["Review"]] = relationship(back_populates="book", order_by="Review.id")
        tags: Mapped[list["Tag"]] = relationship(
            secondary=book_tag, back_populates="books", order_by="Tag.id"
        )

    class Review(Base):
        __tablename__ = "review"
        id: Mapped[int] = mapped_column(primary_key=True)
        book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
        stars: Mapped[int]
        book: Mapped["Book"] = relationship(back_populates="reviews")

    class Tag(Base):
        __tablename__ = "tag"
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str] = mapped_column(String(20))
        books: Mapped[list["Book"]] = relationship(
            secondary=book_tag, back_populates="tags", order_by="Book.id"
        )

    class Profile(Base):
        __tablename__ = "profile"
        id: Mapped[int] = mapped_column(primary_key=True)
        author_id: Mapped[int] = mapped_column(ForeignKey("author.id"), unique=True)
        bio: Mapped[str] = mapped_column(String(50))
        author: Mapped["Author"] = relationship(back_populates="profile")

    return SimpleNamespace(
        Base=Base,
        Author=Author,
        Book=Book,
        Review=Review,
        Tag=Tag,
        Profile=Profile,
        book_tag=book_tag,
    )


def tree(ns: Names) -> Any:
    """``Node``: an adjacency list, ``parent`` (``remote_side``) and ``children``."""
    Mapped, mapped_column, relationship = ns.Mapped, ns.mapped_column, ns.relationship

    class Base(ns.DeclarativeBase):
        pass

    class Node(Base):
        __tablename__ = "node"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
        parent: Mapped["Node | None"] = relationship(
            back_populates="children", remote_side="Node.id"
        )
        children: Mapped[list["Node"]] = relationship(back_populates="parent", order_by="Node.id")

    return SimpleNamespace(Base=Base, Node=Node)


def mail(ns: Names) -> Any:
    """``Message`` with two foreign keys to ``person``: ``sender`` and ``recipient``."""
    Mapped, mapped_column, relationship = ns.Mapped, ns.mapped_column, ns.relationship

    class Base(ns.DeclarativeBase):
        pass

    class Person(Base):
        __tablename__ = "person"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))
        sent: Mapped[list["Message"]] = relationship(
            foreign_keys="Message.sender_id", back_populates="sender", order_by="Message.id"
        )
        received: Mapped[list["Message"]] = relationship(
            primaryjoin="Person.id == Message.recipient_id",
            back_populates="recipient",
            order_by="Message.id",
        )

    class Message(Base):
        __tablename__ = "message"
        id: Mapped[int] = mapped_column(primary_key=True)
        sender_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
        recipient_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
        sender: Mapped["Person"] = relationship(foreign_keys=[sender_id], back_populates="sent")
        recipient: Mapped["Person"] = relationship(
            foreign_keys=[recipient_id], back_populates="received"
        )

    return SimpleNamespace(Base=Base, Person=Person, Message=Message)


def classic(ns: Names) -> Any:
    """``declarative_base()`` classes with ``Column``s; relationships named by string."""
    Base = ns.declarative_base()
    relationship = ns.relationship

    class Author(Base):
        __tablename__ = "author"
        id = Column(Integer, primary_key=True)
        name = Column(String(50))
        books = relationship("Book", back_populates="author")

    class Book(Base):
        __tablename__ = "book"
        id = Column(Integer, primary_key=True)
        title = Column(String(50))
        author_id = Column(ForeignKey("author.id"))
        author = relationship("Author", back_populates="books")

    return SimpleNamespace(Base=Base, Author=Author, Book=Book)


def imperative(ns: Names) -> Any:
    """Plain classes mapped onto ``Table``s, relationships given as ``properties``."""
    metadata = MetaData()
    author = Table(
        "author",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50)),
    )
    book = Table(
        "book",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("title", String(50)),
        Column("author_id", ForeignKey("author.id")),
    )

    class Author:
        pass

    class Book:
        pass

    map_imperatively = ns.imperative()
    map_imperatively(
        Book, book, properties={"author": ns.relationship(Author, back_populates="books")}
    )
    map_imperatively(
        Author,
        author,
        properties={
            "books": ns.relationship(Book, back_populates="author", order_by=book.c.id),
        },
    )
    return SimpleNamespace(Base=SimpleNamespace(metadata=metadata), Author=Author, Book=Book)
