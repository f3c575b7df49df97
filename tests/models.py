"""Model definitions shared by scenario tests, built for either library, and helpers that
create their tables and commit a few rows outside any recording."""

from __future__ import annotations

from typing import Any

from reference import Api
from sqlalchemy import Column, ForeignKey, Integer, String


def user_model(api: Api, tablename: str = "user_account") -> tuple[Any, Any]:
    """``User(id INTEGER autoincrement, name, fullname)`` and its Base."""
    Base = api.declarative_base()

    class User(Base):
        __tablename__ = tablename
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        fullname = Column(String(60))

    return Base, User


def item_model(api: Api) -> tuple[Any, Any]:
    """``Item(id VARCHAR client-assigned, name UNIQUE)`` and its Base."""
    Base = api.declarative_base()

    class Item(Base):
        __tablename__ = "items"
        id = Column(String(10), primary_key=True)
        name = Column(String(50), unique=True)

    return Base, Item


def parent_child_model(api: Api) -> tuple[Any, Any, Any]:
    Base = api.declarative_base()

    class Parent(Base):
        __tablename__ = "parents"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))

    class Child(Base):
        __tablename__ = "children"
        id = Column(Integer, primary_key=True)
        parent_id = Column(Integer, ForeignKey("parents.id"), nullable=False)
        name = Column(String(30))

    return Base, Parent, Child


def setup_users(
    api: Api, engine: Any, names: tuple[str, ...] = ("sandy", "patrick", "squidward")
) -> Any:
    """Create the table and commit one row per name (ids 1..n) outside any recording."""
    Base, User = user_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([User(name=n, fullname=n.title()) for n in names])
        s.commit()
    return User


def empty_users(api: Api, engine: Any) -> Any:
    """Create the ``user_account`` table of :func:`user_model`, empty."""
    Base, User = user_model(api)
    Base.metadata.create_all(engine)
    return User


def setup_users_table(api: Api, engine: Any, names: tuple[str, ...] = ("a", "b", "c", "d")) -> Any:
    """A ``users`` table (the name docs/behaviour.md uses), one committed row per name, ids 1..n."""
    Base, User = user_model(api, "users")
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all([User(name=n, fullname=n.upper()) for n in names])
        s.commit()
    return User


def setup_items(api: Api, engine: Any, rows: tuple[tuple[str, str], ...] = ()) -> Any:
    """The ``items`` table of :func:`item_model` with the committed ``(id, name)`` rows."""
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    if rows:
        with api.Session(engine) as s:
            s.add_all([Item(id=i, name=n) for i, n in rows])
            s.commit()
    return Item
