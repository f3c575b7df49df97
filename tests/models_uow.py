"""Extra models for the unit-of-work tests, built for either library."""

from __future__ import annotations

from typing import Any

from reference import Api
from sqlalchemy import Column, FetchedValue, ForeignKey, Integer, String, func


def note_model(api: Api) -> tuple[Any, Any]:
    """``Note(id INTEGER autoincrement, title, status DEFAULT 'new' on the server)``."""
    Base = api.declarative_base()

    class Note(Base):
        __tablename__ = "notes"
        id = Column(Integer, primary_key=True)
        title = Column(String(30))
        status = Column(String(20), server_default="new")

    return Base, Note


def tag_model(api: Api) -> tuple[Any, Any]:
    """``Tag(code VARCHAR client-assigned, label, color DEFAULT 'grey' on the server)``."""
    Base = api.declarative_base()

    class Tag(Base):
        __tablename__ = "tags"
        code = Column(String(10), primary_key=True)
        label = Column(String(30))
        color = Column(String(20), server_default="grey")

    return Base, Tag


def membership_model(api: Api) -> tuple[Any, Any]:
    """``Membership(group_id, member)``: a two-column primary key, both client-assigned."""
    Base = api.declarative_base()

    class Membership(Base):
        __tablename__ = "memberships"
        group_id = Column(Integer, primary_key=True, autoincrement=False)
        member = Column(String(20), primary_key=True)
        role = Column(String(20))

    return Base, Membership


def shop_model(api: Api) -> tuple[Any, Any, Any, Any]:
    """``customers <- orders <- line_items`` through bare foreign keys, no relationship().

    Declared children first, so that neither the class nor the table definition order
    matches the foreign-key order. Every primary key is client-assigned.
    """
    Base = api.declarative_base()

    class LineItem(Base):
        __tablename__ = "line_items"
        id = Column(Integer, primary_key=True, autoincrement=False)
        order_id = Column(Integer, ForeignKey("orders.id"), nullable=False)
        product = Column(String(30))

    class Order(Base):
        __tablename__ = "orders"
        id = Column(Integer, primary_key=True, autoincrement=False)
        customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
        note = Column(String(30))

    class Customer(Base):
        __tablename__ = "customers"
        id = Column(Integer, primary_key=True, autoincrement=False)
        name = Column(String(30))

    return Base, Customer, Order, LineItem


def revision_model(api: Api) -> tuple[Any, Any]:
    """``Doc``: a column for each way an UPDATE can set a value the object did not assign.

    ``edited`` has a Python-side ``onupdate``, ``stamp`` a SQL-expression ``onupdate``
    and ``rev`` a server-side default plus ``server_onupdate`` (a trigger, say).
    """
    Base = api.declarative_base()

    class Doc(Base):
        __tablename__ = "docs"
        id = Column(Integer, primary_key=True)
        title = Column(String(20))
        edited = Column(String(20), onupdate="edited")
        stamp = Column(String(20), onupdate=func.lower("STAMPED"))
        rev = Column(Integer, server_default="1", server_onupdate=FetchedValue())

    return Base, Doc
