"""The list a one-to-many or many-to-many relationship holds, and what a change to a
relationship does to the objects involved (their states, the other side).

A plain ``list`` subclass, so that reads, iteration, ``len()`` and ``==`` are list's own;
each change (``append``, ``remove``, slice assignment, ``clear``...) also tells the
relationship which objects joined or left, so that the other side follows in Python and
the flush writes the foreign keys. The list knows its owner through a weak reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from .exc import warn
from .state import STATE_KEY, InstanceState, Loaded, materialize

if TYPE_CHECKING:
    from .mapping import Mapper


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


# -- what a change does to the objects involved ------------------------------------------


def key_values(target: Any, tmapper: Mapper, columns: list[Any], along: str) -> list[Any] | None:
    """The values of ``columns`` (of ``target``'s table) that the flush copies into a
    foreign key: all None for None; None, with the ORM's warning, when ``target`` has no
    key because it is not being flushed."""
    if target is None:
        return [None] * len(columns)
    td = target.__dict__
    tstate = td.get(STATE_KEY)
    key = None if tstate is None else getattr(tstate, "key", None)
    if key is None and tstate is not None and tstate.__class__ is Loaded:
        key = tmapper.key_from_dict(td)
    pk = dict(zip(tmapper.pk_columns, (key,) if tmapper.single_pk else key or (), strict=False))
    values = []
    for column in columns:
        attr = tmapper.attr_for_column[column]
        value = td.get(attr, pk.get(column))
        if value is None and column not in pk and attr not in td and key is not None:
            value = getattr(target, attr)  # an expired non-key column: load it
        values.append(value)
    if None in values and (tstate is None or key is None):
        warn(
            f"Object of type <{tmapper.class_.__name__}> not in session, add operation "
            f"along '{along}' will not proceed (it has no key yet: add it to the session, "
            f"or give it its key, before the flush)"
        )
        return None
    return values


def child_state(obj: Any, mapper: Mapper) -> Any:
    d = obj.__dict__
    state = d.get(STATE_KEY)
    if state is None:
        state = d[STATE_KEY] = InstanceState(mapper)
        state.modified = not d.keys().isdisjoint(mapper.attr_index)
    elif state.__class__ is Loaded:
        state = materialize(obj, state)
    return state


def changed(obj: Any, state: Any, key: Any, value: Any) -> Any:
    """Record a relationship change of ``obj`` for the flush (``key``: a many-to-one's
    name, or a one-to-many Relationship without a back reference -> the new parent);
    a persistent object becomes modified. Returns the object's session, if any."""
    changes = state.rel_changes
    if changes is None:
        state.rel_changes = {key: value}
    else:
        changes[key] = value
    session = None if state.session_ref is None else state.session_ref()
    if state.key is not None and not state.modified:
        state.modified = True
        if session is not None:
            session._on_modified(obj, state)
    return session


def unlink(d: dict[str, Any], back: Any, obj: Any) -> bool:
    """``obj`` leaves the other side's loaded collection (or one-to-one value); True if
    it was there."""
    current = d.get(back.key)
    if isinstance(current, list):
        for i, x in enumerate(current):
            if x is obj:
                list.__delitem__(current, i)
                return True
    elif current is obj:
        d[back.key] = None
        return True
    return False


def link(target: Any, back: Any, obj: Any) -> None:
    """``obj`` joins ``target``'s collection (or one-to-one value) when it is loaded, or
    when ``target`` has no row yet (there is nothing to load: it starts empty)."""
    d = target.__dict__
    if back.key not in d:
        st = d.get(STATE_KEY)
        if st is not None and (st.__class__ is Loaded or st.key is not None):
            return  # loaded from the database when read, after the autoflush
        d[back.key] = new_list(back, target) if back.uselist else None
    current = d[back.key]
    if isinstance(current, list):
        if not any(x is obj for x in current):
            list.append(current, obj)
    else:
        d[back.key] = obj
