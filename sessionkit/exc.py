"""Exceptions raised by sessionkit.

The ORM-level errors are declared here with the same names, bases and error codes as
``sqlalchemy.orm.exc`` so that code written against the ORM (``except
sqlalchemy.exc.InvalidRequestError``, ``except sqlalchemy.exc.SQLAlchemyError``) keeps
working. Core errors are re-exported unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InvalidRequestError,
    MissingGreenlet,
    MultipleResultsFound,
    NoResultFound,
    PendingRollbackError,
    ResourceClosedError,
    SAWarning,
    SQLAlchemyError,
    StatementError,
    UnboundExecutionError,
)

__all__ = [
    "ArgumentError",
    "DetachedInstanceError",
    "FlushError",
    "ImplicitIOError",
    "IntegrityError",
    "InvalidRequestError",
    "MissingGreenlet",
    "MultipleResultsFound",
    "NoResultFound",
    "ObjectDeletedError",
    "PendingRollbackError",
    "RejectedValueError",
    "ResourceClosedError",
    "SAWarning",
    "SQLAlchemyError",
    "StaleDataError",
    "StatementError",
    "UnboundExecutionError",
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


class ImplicitIOError(MissingGreenlet):
    """An attribute of an ``AsyncSession``'s object needed the database outside an
    awaited call. A ``MissingGreenlet``, so that code catching the reference's error
    catches it, raised before any SQL whatever the driver (the reference's arrives
    wrapped in a ``StatementError`` on most drivers, after a connection was taken)."""


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


class RejectedValueError(Exception):
    """A value of a mapped object that the database or its driver refused during flush.

    Never raised as such: the flush raises a class that derives from this one *and* from
    the class of the original error (``sqlalchemy.exc.DataError``, ``IntegrityError``,
    ``ProgrammingError``, ``StatementError``, or a driver's ``UnicodeEncodeError`` /
    ``OverflowError``) and has the same name, so ``except`` clauses written for the ORM
    keep working. The original error is ``__cause__``; ``instance`` and ``attribute``
    name the object and the attribute, and the message says what to do.
    """

    instance: Any = None
    attribute: str = ""
    explanation: str = ""


_rejected_classes: dict[type[BaseException], type[RejectedValueError]] = {}


def rejected_value_class(base: type[BaseException]) -> type[RejectedValueError]:
    """The ``RejectedValueError`` flavour of ``base`` (created once, then reused); also
    reachable as ``RejectedValueError.<name>``, e.g. ``RejectedValueError.DataError``."""
    cls = _rejected_classes.get(base)
    if cls is None:
        name = base.__name__
        namespace: dict[str, Any] = {
            "__module__": __name__,
            "__qualname__": f"RejectedValueError.{name}",
            "__doc__": f"{name} raised by a flush, naming the object and attribute at fault.",
        }
        if not issubclass(base, SQLAlchemyError):
            # A driver's own error formats its message from its fields: append ours.
            namespace["__str__"] = _str_with_explanation
        cls = _rejected_classes[base] = type(name, (RejectedValueError, base), namespace)
        if name not in RejectedValueError.__dict__:
            setattr(RejectedValueError, name, cls)
    return cls


def _str_with_explanation(self: RejectedValueError) -> str:
    base = super(RejectedValueError, self).__str__()
    return f"{base}\n{self.explanation}" if self.explanation else base


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
