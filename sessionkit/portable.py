"""What a mapped class gets once it is mapped, beyond its column descriptors.

``copy.copy(obj)`` without a ``__copy__`` copies ``__dict__`` as it is, so the copy would
share the original's state: the ORM's copies do (a change made to the copy alone is lost),
and a change to such a sessionkit copy would be flushed into the original's row. Instead a
sessionkit copy is what pickling gives: a *detached* object with the same identity key,
the loaded values and the unflushed changes, in no Session. Apply it with
``session.merge(copy)``; ``session.add(copy)`` beside its original fails, as it does for
an unpickled copy. ``copy.deepcopy`` and pickle need nothing here: they go through
``InstanceState.__reduce__``.

``mapping`` tells the layers above it that a class was mapped through ``ON_MAPPED``,
without importing them (``inspection`` registers the class with Core's ``inspect()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .state import MAPPER_ATTR, STATE_KEY

# Called with each class right after it is mapped; appended to by modules that import us.
ON_MAPPED: Final[list[Callable[[type], None]]] = []


def mapped_copy(obj: Any) -> Any:
    """``copy.copy`` of a mapped object: values shared, its own detached state."""
    cls: Any = type(obj)
    new = cls.__new__(cls)  # as copy.copy and pickle create it: no __init__
    d = _without_relationships(cls, obj.__dict__)
    state = d.get(STATE_KEY)
    if state is not None:
        restore, args = state.__reduce__()
        d[STATE_KEY] = restore(*args)
    new.__dict__.update(d)
    return new


def _without_relationships(cls: Any, d: dict[str, Any]) -> dict[str, Any]:
    """The instance dict without loaded relationships: a copy (or an unpickled object)
    starts with them unloaded, since its collections would belong to the original, and
    changes to them could not reach a flush."""
    rels = cls.__sk_mapper__.relationships
    return {k: v for k, v in d.items() if k not in rels} if rels else dict(d)


def _getstate(self: Any) -> dict[str, Any]:
    return _without_relationships(type(self), self.__dict__)


def install_copy(cls: type) -> None:
    """Give ``cls`` the detached-copy ``__copy__``, unless it (or a base) has its own."""
    if any("__copy__" in k.__dict__ for k in cls.__mro__):
        return
    type.__setattr__(cls, "__copy__", mapped_copy)


def class_mapped(cls: type) -> None:
    """Everything a newly mapped class gets here; ``map_imperatively`` calls it last."""
    install_copy(cls)
    if cls.__dict__[MAPPER_ATTR].relationships and not any(
        "__getstate__" in k.__dict__ for k in cls.__mro__[:-1]
    ):
        type.__setattr__(cls, "__getstate__", _getstate)  # pickle: as copy.copy does
    for hook in ON_MAPPED:
        hook(cls)
