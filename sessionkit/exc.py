"""Exceptions raised by sessionkit.

The ORM-level errors are declared here with the same names, bases and error codes as
``sqlalchemy.orm.exc`` so that code written against the ORM (``except
sqlalchemy.exc.InvalidRequestError``, ``except sqlalchemy.exc.SQLAlchemyError``) keeps
working. Core errors are re-exported unchanged.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    PendingRollbackError,
    ResourceClosedError,
    SAWarning,
    SQLAlchemyError,
    StatementError,
)

__all__ = [
    "ArgumentError",
    "DetachedInstanceError",
    "FlushError",
    "IntegrityError",
    "InvalidRequestError",
    "MultipleResultsFound",
    "NoResultFound",
    "ObjectDeletedError",
    "PendingRollbackError",
    "ResourceClosedError",
    "SAWarning",
    "SQLAlchemyError",
    "StaleDataError",
    "StatementError",
    "UnmappedClassError",
    "UnmappedError",
    "UnmappedInstanceError",
]


class DetachedInstanceError(SQLAlchemyError):
    """An attribute needed the database but the object belongs to no Session.

    Deliberately not an ``InvalidRequestError``: the reference declares it directly
    under ``SQLAlchemyError`` and code catching it relies on that.
    """

    code = "bhk3"


class UnmappedError(InvalidRequestError):
    """An object or class that sessionkit does not map was used as if it were."""


class UnmappedInstanceError(UnmappedError):
    """An instance of a class that is not mapped was given to a Session."""


class UnmappedClassError(UnmappedError):
    """A class that is not mapped was given where a mapped class is needed."""


class ObjectDeletedError(InvalidRequestError):
    """An expired object's row is no longer in the database."""


class StaleDataError(SQLAlchemyError):
    """An UPDATE or DELETE matched a different number of rows than expected."""


class FlushError(SQLAlchemyError):
    """The unit of work found the session's objects in an inconsistent state."""


def warn(message: str) -> None:
    """Issue an ``SAWarning`` attributed to the first caller outside sessionkit."""
    import sys
    import warnings

    level = 2
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("sessionkit"):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, SAWarning, stacklevel=level)
