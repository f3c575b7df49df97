"""``inspect(obj)`` and ``inspect(User)``: read-only views of lifecycle state."""

from __future__ import annotations

from typing import Any, NamedTuple

from .mapping import Mapper, mapper_of_class, state_of
from .state import NO_VALUE, InstanceState


class History(NamedTuple):
    """Unflushed change of one attribute: (added, unchanged, deleted) like the reference."""

    added: tuple[Any, ...]
    unchanged: tuple[Any, ...]
    deleted: tuple[Any, ...]

    def has_changes(self) -> bool:
        return bool(self.added or self.deleted)


class AttributeInspection:
    def __init__(self, obj: Any, state: InstanceState, key: str) -> None:
        self._obj, self._state, self.key = obj, state, key

    @property
    def loaded_value(self) -> Any:
        return self._obj.__dict__.get(self.key, NO_VALUE)

    @property
    def value(self) -> Any:
        return getattr(self._obj, self.key)

    @property
    def history(self) -> History:
        d = self._obj.__dict__
        if self.key not in d:
            return History((), (), ())
        current = d[self.key]
        committed = self._state.committed or {}
        if self._state.key is None:
            return History((current,), (), ())
        if self.key not in committed:
            return History((), (current,), ())
        old = committed[self.key]
        if old is NO_VALUE:
            return History((current,), (), ())
        if self._state.mapper.compare[self.key](old, current):
            return History((), (current,), ())
        return History((current,), (), (old,))


class _Attrs:
    def __init__(self, obj: Any, state: InstanceState) -> None:
        self._obj, self._state = obj, state

    def __getattr__(self, key: str) -> AttributeInspection:
        if key not in self._state.mapper.attr_index:
            raise AttributeError(key)
        return AttributeInspection(self._obj, self._state, key)

    def __getitem__(self, key: str) -> AttributeInspection:
        return self.__getattr__(key)

    def keys(self) -> tuple[str, ...]:
        return self._state.mapper.attr_keys


class InstanceInspection:
    """Exactly one of transient / pending / persistent / deleted / detached is True."""

    def __init__(self, obj: Any) -> None:
        self.object = obj
        self._state = state_of(obj)

    @property
    def mapper(self) -> Mapper:
        return self._state.mapper

    @property
    def session(self) -> Any:
        return self._state.session

    @property
    def _attached(self) -> bool:
        return self._state.session is not None

    @property
    def transient(self) -> bool:
        return self._state.key is None and not self._attached

    @property
    def pending(self) -> bool:
        return self._state.key is None and self._attached

    @property
    def persistent(self) -> bool:
        return self._state.key is not None and self._attached and not self._gone

    @property
    def deleted(self) -> bool:
        return self._state.key is not None and self._attached and self._gone

    @property
    def _gone(self) -> bool:
        # ``was_deleted`` on an attached object: delete() again of an object whose DELETE
        # was flushed; it stays *deleted* while marked, as in the reference.
        return self._state.deleted or self._state.was_deleted

    @property
    def detached(self) -> bool:
        return self._state.key is not None and not self._attached

    @property
    def was_deleted(self) -> bool:
        return self._state.was_deleted

    @property
    def has_identity(self) -> bool:
        return self._state.key is not None

    @property
    def identity_key(self) -> tuple[type, tuple[Any, ...], None] | None:
        return self._state.identity_key

    key = identity_key

    @property
    def identity(self) -> tuple[Any, ...] | None:
        k = self._state.identity_key
        return None if k is None else k[1]

    @property
    def modified(self) -> bool:
        return self._state.modified

    @property
    def expired_attributes(self) -> set[str]:
        d = self.object.__dict__
        return {k for k in self._state.expired or () if k not in d}

    @property
    def expired(self) -> bool:
        return self._state.expired == self._state.mapper.all_attrs and not any(
            k in self.object.__dict__ for k in self._state.mapper.attr_keys
        )

    @property
    def unloaded(self) -> set[str]:
        d = self.object.__dict__
        return {k for k in self._state.mapper.attr_keys if k not in d}

    @property
    def dict(self) -> dict[str, Any]:
        return self.object.__dict__  # type: ignore[no-any-return]

    @property
    def attrs(self) -> _Attrs:
        return _Attrs(self.object, self._state)

    def __repr__(self) -> str:
        names = ("transient", "pending", "persistent", "deleted", "detached")
        state = next(n for n in names if getattr(self, n))
        return f"<InstanceInspection {type(self.object).__name__} {state}>"


def inspect(subject: Any) -> Any:
    """``inspect(obj)`` -> InstanceInspection; ``inspect(MappedClass)`` -> its Mapper."""
    if isinstance(subject, type):
        return mapper_of_class(subject)
    return InstanceInspection(subject)
