"""Attribute validators: ``@validates("email")`` on a method of a mapped class.

The decorator only marks the function; the class's mapping (``mapping.py``) collects the
marked methods once, checks that each names a mapped attribute, and installs a validating
``__setattr__`` only on classes that have validators, so that a class without them pays
nothing on attribute set or in its constructor. A validator runs on what the application
assigns (the constructor, ``obj.attr = value``, ``Session.merge()``), never on values
loaded from the database, as in the ORM.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

from .exc import ArgumentError, InvalidRequestError

_Fn = TypeVar("_Fn", bound=Callable[..., Any])

# The marks @validates puts on the function. Not the ORM's names: a method marked by the
# ORM's decorator is refused, never silently taken for one of these.
NAMES_MARK = "__sk_validators__"
OPTIONS_MARK = "__sk_validation_opts__"
_ORM_MARK = "__sa_validators__"

Validator = tuple[Callable[..., Any], dict[str, Any]]


def validates(
    *names: str, include_removes: bool = False, include_backrefs: bool = True
) -> Callable[[_Fn], _Fn]:
    """Mark ``def v(self, key, value)`` as the validator of the named attributes.

    It is called with each value assigned to them and returns the value to store (the
    same, or a replacement); raising rejects the assignment and leaves the object as it
    was. ``include_backrefs`` is accepted for the ORM's sake and has no effect (there are
    no relationships); ``include_removes=True`` is refused (there are no collections).
    """
    if not names or any(callable(n) for n in names):
        raise ArgumentError(
            "validates() takes the names of the attributes to validate and decorates the "
            "method: write @validates('email') (with parentheses and the attribute name "
            "as a string) above def validate_email(self, key, value)."
        )
    for name in names:
        if not isinstance(name, str):
            raise ArgumentError(
                f"validates() takes attribute names as strings, got {name!r}; write "
                f"@validates('email'), not @validates(User.email)."
            )
    written = ", ".join(map(repr, names))
    if include_removes:
        raise ArgumentError(
            f"@validates({written}, include_removes=True): remove events come from "
            f"relationships and collections, which sessionkit does not support yet. Leave "
            f"include_removes out; a column validator is called for every assignment "
            f"(del obj.attr sets NULL without calling it)."
        )

    def wrap(fn: _Fn) -> _Fn:
        if not isinstance(fn, types.FunctionType):
            raise ArgumentError(
                f"@validates({written}) decorates a method def name(self, key, value), got "
                f"{fn!r}; put @validates first, above any other decorator."
            )
        fn.__dict__[NAMES_MARK] = names
        fn.__dict__[OPTIONS_MARK] = {
            "include_removes": include_removes,
            "include_backrefs": include_backrefs,
        }
        return fn

    return wrap


def collect_validators(
    cls: type, mapped: tuple[str, ...], mapper_name: str
) -> dict[str, Validator]:
    """Attribute key -> (method, options) for the validators of ``cls`` and its bases.

    As in the ORM a name resolves through the MRO, so a subclass method of the same name
    replaces its base's (decorated or not); two different methods for one attribute are
    an error. ``mapper_name`` is the ORM's ``Mapper[User(users)]``, for its words.
    """
    found: dict[str, Validator] = {}
    by: dict[str, str] = {}
    for name in dir(cls):
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None:
            continue
        fn = owner.__dict__[name]
        marks = fn.__dict__ if isinstance(fn, types.FunctionType) else {}
        where = f"{cls.__name__}.{name}" + ("" if owner is cls else f" (from {owner.__name__})")
        if _ORM_MARK in marks and NAMES_MARK not in marks:
            raise ArgumentError(
                f"{where} is an ORM @validates method, which sessionkit never calls: the "
                f"values it should check would reach the table unchecked. Import validates "
                f"from sessionkit instead: it takes the same arguments."
            )
        for key in marks.get(NAMES_MARK, ()):
            if key not in mapped:
                raise ArgumentError(
                    f"{where} is a @validates method for {key!r}, but {key!r} is not a mapped "
                    f"attribute of {cls.__name__}, so it would never be called; the mapped "
                    f"attributes are {', '.join(mapped)}. Correct the name, or map a column "
                    f"under it."
                )
            if key in found:
                again = (
                    f"{where} names it twice"
                    if by[key] == where
                    else f"{by[key]} and {where} both validate it"
                )
                raise InvalidRequestError(
                    f"A validation function for mapped attribute {key!r} on mapper "
                    f"{mapper_name} already exists: {again}. Keep one validator "
                    f"per attribute (one method may validate several: @validates('a', 'b'))."
                )
            found[key] = (fn, marks[OPTIONS_MARK])
            by[key] = where
    return found
