"""The identity map: at most one object per primary key per Session.

Entries are weak references, so an unmodified object the application no longer holds
disappears, as in the reference. Objects with unflushed changes are kept alive by the
Session's own strong sets, not here. Each mapped class gets its own plain dict keyed by
the bare primary-key value; that keeps the loader's per-row lookup a single ``dict.get``
without building ``(cls, (pk,), None)`` tuples.

The map also keeps the index that answers ``Session.get()`` hits with one lookup, and the
shared ``Loaded`` marker of each class, since both describe what the map holds.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .state import STATE_KEY, InstanceState, Loaded

if TYPE_CHECKING:
    from .mapping import Mapper

Ref = weakref.ref[Any]
IdentityKey = tuple[type, tuple[Any, ...], None]


class IdentityMap:
    """Weak-valued map from identity key to object, partitioned by mapper."""

    def __init__(self, session_ref: weakref.ref[Any] | None = None) -> None:
        self.by_mapper: dict[Mapper, dict[Any, Ref]] = {}
        # The same dicts keyed by mapped class, for Session.get()'s one-lookup fast path.
        self.by_class: dict[type, dict[Any, Ref]] = {}
        # Every weakref shares one callback. It counts into a list, not into the map, so
        # that the map and its weakrefs form no cycle: a dropped Session and its map are
        # freed by reference counting, without the cyclic collector.
        self._dead_count = dead = [0]

        def on_dead(_ref: Ref, dead: list[int] = dead) -> None:
            # Runs inside garbage collection: only count, never mutate the dicts here.
            dead[0] += 1

        self.on_dead = on_dead
        self.session_ref = session_ref
        self.generation = 0
        self._markers: dict[Mapper, Loaded] = {}
        # The objects get() may return without a look at their state: in the map,
        # attached, not expired. Built on demand, dropped (cleared in place, so that a
        # Session may keep a reference to it) whenever that could stop being true.
        self.fresh: dict[type, dict[Any, Ref]] = {}
        self.fresh_built = False

    def marker(self, mapper: Mapper) -> Loaded:
        """The ``Loaded`` marker shared by this Session's untouched objects of ``mapper``."""
        marker = self._markers.get(mapper)
        if marker is None:
            marker = self._markers[mapper] = Loaded(mapper, self.session_ref)
        return marker

    # -- the index of loaded, unexpired objects -------------------------------------------

    def forget_fresh(self) -> None:
        self.fresh.clear()
        self.fresh_built = False

    def unfresh(self, state: InstanceState) -> None:
        """One object may no longer be returned by get() without a look at its state."""
        sub = self.fresh.get(state.mapper.class_)
        if sub is not None:
            sub.pop(state.key, None)

    def note_fresh(self, mapper: Mapper, key: Any) -> None:
        """The object under ``key`` is loaded and unexpired: index it (or everything)."""
        if not self.fresh_built:
            fresh = self.fresh
            for m, sub in self.by_mapper.items():
                index = fresh[m.class_] = {}
                for k, obj_ref in sub.items():
                    obj = obj_ref()
                    if obj is not None and obj.__dict__[STATE_KEY].expired is None:
                        index[k] = obj_ref
            self.fresh_built = True
        else:
            ref = self.by_mapper[mapper].get(key)
            if ref is not None:
                self.fresh.setdefault(mapper.class_, {})[key] = ref

    def sub(self, mapper: Mapper) -> dict[Any, Ref]:
        sub = self.by_mapper.get(mapper)
        if sub is None:
            sub = self.by_mapper[mapper] = self.by_class[mapper.class_] = {}
        # Dead entries go once they outnumber the live ones: amortised O(1) per object,
        # and no commit walks a map mostly made of objects the application dropped.
        dead = self._dead_count[0]
        if dead > 16 and dead * 2 > sum(map(len, self.by_mapper.values())):
            self.sweep()
        return sub

    def dead_count(self) -> int:
        """How many entries may point at objects that are gone (since the last sweep)."""
        return self._dead_count[0]

    def sweep(self) -> None:
        if not self._dead_count[0]:
            return
        self._dead_count[0] = 0
        # In place: a loader reading a result in batches holds the dict it got.
        for sub in self.by_mapper.values():
            for k in [k for k, r in sub.items() if r() is None]:
                del sub[k]

    def lookup(self, mapper: Mapper, key: Any) -> Any:
        """The live object for a bare primary-key value, or None."""
        sub = self.by_mapper.get(mapper)
        if sub is None:
            return None
        ref = sub.get(key)
        return None if ref is None else ref()

    def add(self, mapper: Mapper, key: Any, obj: object) -> None:
        self.sub(mapper)[key] = weakref.ref(obj, self.on_dead)

    def discard(self, mapper: Mapper, key: Any, obj: object) -> None:
        """Remove ``key`` only if it still maps to ``obj``."""
        sub = self.by_mapper.get(mapper)
        if sub is None:
            return
        ref = sub.get(key)
        if ref is not None and ref() in (obj, None):
            del sub[key]

    def contains_state(self, state: InstanceState, obj: object) -> bool:
        if state.key is None:
            return False
        return self.lookup(state.mapper, state.key) is obj

    def objects(self) -> list[Any]:
        """Live objects, as a list so callers may change the map while walking it."""
        out = []
        for sub in self.by_mapper.values():
            for ref in list(sub.values()):
                obj = ref()
                if obj is not None:
                    out.append(obj)
        return out

    def clear(self) -> None:
        self.by_mapper.clear()
        self.by_class.clear()
        self._dead_count[0] = 0
        self.forget_fresh()
        # Results read later must not fill the emptied map (see loading.execute).
        self.generation += 1

    # -- the public mapping view: keys are (cls, (pk, ...), None) ------------------------

    def keys(self) -> list[IdentityKey]:
        out = []
        for mapper, sub in self.by_mapper.items():
            for key, ref in list(sub.items()):
                if ref() is not None:
                    out.append(mapper.identity_key_for(key))
        return out

    def values(self) -> list[Any]:
        return self.objects()

    def items(self) -> list[tuple[IdentityKey, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def _split(self, ident: Any) -> tuple[Mapper, Any] | None:
        if not (isinstance(ident, tuple) and len(ident) in (2, 3)):
            return None
        cls, values = ident[0], ident[1]
        mapper = getattr(cls, "__dict__", {}).get("__sk_mapper__")
        if mapper is None or not isinstance(values, tuple) or len(values) != len(mapper.pk_columns):
            return None
        return mapper, values[0] if mapper.single_pk else values

    def __getitem__(self, ident: IdentityKey) -> Any:
        split = self._split(ident)
        obj = None if split is None else self.lookup(*split)
        if obj is None:
            raise KeyError(ident)
        return obj

    def get(self, ident: IdentityKey, default: Any = None) -> Any:
        split = self._split(ident)
        obj = None if split is None else self.lookup(*split)
        return default if obj is None else obj

    def __contains__(self, ident: object) -> bool:
        split = self._split(ident)
        return split is not None and self.lookup(*split) is not None

    def __iter__(self) -> Iterator[IdentityKey]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __bool__(self) -> bool:
        return any(r() is not None for sub in self.by_mapper.values() for r in sub.values())
