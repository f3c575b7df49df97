"""``Mapped[...]`` annotations read as column facts: the SQL type and the nullability.

The rules are the ORM's, built from Core's own pieces: Python types resolve through
Core's type map (``int`` -> ``Integer``, ``Decimal`` -> ``Numeric``, an ``enum.Enum``
subclass or a ``Literal`` of strings -> ``Enum``...) after the base's
``type_annotation_map``, and ``Optional[X]`` / ``X | None`` makes the column nullable.
Annotations written as strings (``from __future__ import annotations``) are evaluated in
the namespace of the module that declared the class.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any

from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import typing as sa_typing

from .exc import ArgumentError

# Names of the annotation containers that mean "a mapped attribute". The ORM's own
# ``Mapped`` is accepted too: it is only a type hint, and code moving over may keep it.
MAPPED_NAMES = frozenset({"Mapped"})
_MAPPED_MODULES = ("sessionkit", "sqlalchemy.orm")
# The ORM's containers for what sessionkit does not map: refused by name.
UNSUPPORTED_NAMES = frozenset({"WriteOnlyMapped", "DynamicMapped"})


def resolve_annotation(owner: type, annotation: Any) -> Any:
    """The annotation as an object, evaluating a string in ``owner``'s module."""
    if sa_typing.is_fwd_ref(annotation, check_generic=True, check_for_plain_string=True):
        return sa_typing.de_stringify_annotation(
            owner, annotation, owner.__module__, {}, include_generic=True
        )
    return annotation


def mapped_container(annotation: Any) -> str | None:
    """``"Mapped"`` (or the ORM sibling's name) when the annotation is ``Mapped[...]``."""
    origin = getattr(annotation, "__origin__", annotation)
    name: Any = getattr(origin, "__name__", None)
    module = str(getattr(origin, "__module__", ""))
    if name in MAPPED_NAMES | UNSUPPORTED_NAMES and module.startswith(_MAPPED_MODULES):
        return str(name)
    return None


def mapped_argument(annotation: Any) -> Any:
    """``X`` of ``Mapped[X]``; a string inside it stays a string (a forward reference)."""
    args = getattr(annotation, "__args__", None)
    if not args:
        return None
    inner = args[0]
    return getattr(inner, "__forward_arg__", inner)


def is_nullable(python_type: Any) -> bool:
    return bool(sa_typing.includes_none(python_type))


def inner_type(python_type: Any) -> Any:
    """The type without ``None`` (``Optional[int]`` -> ``int``)."""
    return sa_typing.de_optionalize_union_types(python_type)


def annotated_parts(python_type: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[X, a, b]`` -> ``(X, (a, b))``; anything else -> ``(python_type, ())``."""
    if sa_typing.is_pep593(python_type):
        args = python_type.__metadata__
        return python_type.__origin__, tuple(args)
    return python_type, ()


def sql_type_for(python_type: Any, type_map: dict[Any, Any], where: str) -> TypeEngine[Any]:
    """The Core type for a Python type, or ArgumentError naming the attribute."""
    found = _lookup(python_type, type_map)
    if found is not None:
        return found
    if isinstance(python_type, TypeEngine) or (
        isinstance(python_type, type) and issubclass(python_type, TypeEngine)
    ):
        raise ArgumentError(
            f"The type inside the Mapped[] annotation of {where} is the SQL type "
            f"{python_type!r}; Mapped[] takes the Python type (e.g. Mapped[str]). Give the "
            f"SQL type to mapped_column() instead: mapped_column({python_type!r})."
        )
    if not sa_typing.is_a_type(python_type):
        raise ArgumentError(
            f"The object inside the Mapped[] annotation of {where} is not a Python type, "
            f"it's {python_type!r}. Write Mapped[<python type>] (e.g. Mapped[int])."
        )
    raise ArgumentError(
        f"Could not find a SQL type for the Python type {python_type!r} in the Mapped[] "
        f"annotation of {where}. Pass the SQL type to mapped_column() (e.g. "
        f"mapped_column(JSON)), or add the Python type to type_annotation_map on the "
        f"declarative base."
    )


def _lookup(python_type: Any, type_map: dict[Any, Any]) -> TypeEngine[Any] | None:
    """Search the base's map, then Core's, along the type's MRO (the ORM's order)."""
    search: list[tuple[Any, Any]]
    as_type: Any
    if sa_typing.is_generic(python_type):
        if sa_typing.is_literal(python_type):
            as_type = python_type
            search = [(python_type, as_type), *((lt, as_type) for lt in sa_typing.LITERAL_TYPES)]
        else:
            as_type = python_type.__origin__
            search = [(python_type, as_type)]
    elif isinstance(python_type, type):
        as_type = python_type
        search = [(pt, pt) for pt in python_type.__mro__]
    else:
        as_type = python_type
        search = [(python_type, as_type)]
    for pt, flattened in search:
        sql_type = type_map.get(pt)
        if sql_type is None:
            sql_type = sqltypes._type_map_get(pt)
        if sql_type is None:
            continue
        resolved = sqltypes.to_instance(sql_type)._resolve_for_python_type(as_type, pt, flattened)
        if resolved is not None:
            return resolved
    return None


def normalize_type_map(type_map: dict[Any, Any]) -> dict[Any, Any]:
    """Keys without ``None`` (``Optional[str]`` is looked up as ``str``), as the ORM does."""
    return {sa_typing.de_optionalize_union_types(k): v for k, v in type_map.items()}


def own_annotations(owner: type) -> dict[str, Any]:
    """The annotations written in ``owner``'s body, unevaluated where they are strings."""
    if sys.version_info >= (3, 14):  # pragma: no cover - depends on the interpreter
        import annotationlib

        return dict(annotationlib.get_annotations(owner, format=annotationlib.Format.FORWARDREF))
    import inspect

    return dict(inspect.get_annotations(owner))


# -- relationship() annotations ---------------------------------------------------------

_COLLECTIONS = frozenset({"list", "List", "typing.List", "set", "Set", "typing.Set"})


def _strip(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return _strip(text[1:-1])
    return text


def relationship_target(annotation: Any) -> tuple[Any, bool] | None:
    """``Mapped[list["Book"]]`` -> ("Book", True); ``Mapped["Author | None"]`` ->
    ("Author", False); None if the annotation names no class."""
    if annotation is None:
        return None
    if not isinstance(annotation, str):
        args = typing.get_args(annotation)
        if not args:
            return None
        inner: Any = args[0]
        collection = typing.get_origin(inner) in (list, set)
        if collection:
            inner = typing.get_args(inner)[0]
        if typing.get_origin(inner) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(inner) if a is not type(None)]
            inner = rest[0] if len(rest) == 1 else None
        if isinstance(inner, typing.ForwardRef):
            inner = inner.__forward_arg__
        if isinstance(inner, str):
            return _from_text(inner, collection)
        return (inner, collection) if isinstance(inner, type) else None
    head, _, inner_text = _strip(annotation).partition("[")
    if not inner_text.endswith("]") or head.split(".")[-1] != "Mapped":
        return None
    return _from_text(inner_text[:-1], False)


def _from_text(text: str, collection: bool) -> tuple[Any, bool] | None:
    text = _strip(text)
    head, _, rest = text.partition("[")
    if rest.endswith("]") and head in _COLLECTIONS:
        collection, text = True, _strip(rest[:-1])
    elif rest.endswith("]") and head in ("Optional", "typing.Optional"):
        text = _strip(rest[:-1])
    parts = [_strip(p) for p in text.split("|")]
    parts = [p for p in parts if p not in ("None", "NoneType")]
    if len(parts) != 1 or not parts[0]:
        return None
    return parts[0], collection
