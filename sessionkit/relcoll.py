"""The list a one-to-many or many-to-many relationship holds.

A plain ``list`` subclass, so that reads, iteration, ``len()`` and ``==`` are list's own;
each change (``append``, ``remove``, slice assignment, ``clear``...) also tells the
relationship which objects joined or left, so that the other side follows in Python and
the flush writes the foreign keys. The list knows its owner through a weak reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, SupportsIndex


class RelationshipList(list[Any]):
    """A loaded collection; ``rel`` (in a tuple: a Relationship is a descriptor, and would
    run as one on the list) is set on each relationship's own subclass."""

    __slots__ = ("_owner",)
    owner: tuple[Any]
    _owner: weakref.ref[Any] | None

    def _changed(self, added: Iterable[Any], removed: Iterable[Any]) -> None:
        ref = getattr(self, "_owner", None)
        owner = None if ref is None else ref()
        if owner is not None:
            self.owner[0].collection_changed(owner, self, list(added), list(removed))

    def _check(self, items: Iterable[Any]) -> list[Any]:
        items = list(items)
        self.owner[0].check_members(self, items)
        return items

    def append(self, item: Any) -> None:
        self._check([item])
        list.append(self, item)
        self._changed([item], ())

    def extend(self, items: Iterable[Any]) -> None:
        items = self._check(items)
        list.extend(self, items)
        self._changed(items, ())

    def __iadd__(self, items: Iterable[Any]) -> RelationshipList:  # type: ignore[misc]
        self.extend(items)
        return self

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._check([item])
        list.insert(self, index, item)
        self._changed([item], ())

    def remove(self, item: Any) -> None:
        self._check(())
        list.remove(self, item)
        self._changed((), [item])

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._check(())
        item = list.pop(self, index)
        self._changed((), [item])
        return item

    def clear(self) -> None:
        self._check(())
        items = list(self)
        list.clear(self)
        self._changed((), items)

    def __setitem__(self, index: Any, value: Any) -> None:
        old = self[index] if isinstance(index, slice) else [self[index]]
        new = self._check(value if isinstance(index, slice) else [value])
        list.__setitem__(self, index, new if isinstance(index, slice) else new[0])
        self._changed(
            [x for x in new if not any(x is o for o in old)],
            [o for o in old if not any(o is x for x in self)],
        )

    def __delitem__(self, index: Any) -> None:
        self._check(())
        old = self[index] if isinstance(index, slice) else [self[index]]
        list.__delitem__(self, index)
        self._changed((), [o for o in old if not any(o is x for x in self)])

    def __imul__(self, n: SupportsIndex) -> RelationshipList:
        raise TypeError(
            f"{self.owner[0].name}: a collection holds each object once; *= would repeat them."
        )

    def __reduce__(self) -> Any:
        return (list, (list(self),))


def list_class(rel: Any) -> type[RelationshipList]:
    cls = rel.__dict__.get("list_class")
    if cls is None:
        cls = rel.__dict__["list_class"] = type(
            "RelationshipList", (RelationshipList,), {"__slots__": (), "owner": (rel,)}
        )
    return cls  # type: ignore[no-any-return]


def new_list(rel: Any, owner: Any, items: Iterable[Any] = ()) -> RelationshipList:
    """A collection of ``owner``'s ``rel`` holding ``items`` (no change is announced)."""
    coll = list_class(rel)(items)
    coll._owner = weakref.ref(owner)
    return coll
