"""``inspect(obj)`` and ``inspect(User)``: read-only views of lifecycle state.

Core's ``sqlalchemy.inspect()`` gives the same answers: it looks up a registrar by
walking ``type(subject).__mro__``, so every mapped class is registered for its instances
when it is mapped (through ``portable.ON_MAPPED``), and the metaclass of declarative
classes (or an application's, with ``register_class_inspection()``) for the classes.
A plain class mapped imperatively has ``type`` as its type, so only ``sessionkit.inspect()``
inspects the class itself: ``type`` and ``object`` are never registered, as the ORM
registers them when it is imported and would fail if they were taken.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple, cast

from sqlalchemy import inspection as core_inspection

from .declarative import DeclarativeMeta
from .exc import ArgumentError
from .mapping import Mapper, mapper_of_class, state_of
from .portable import ON_MAPPED
from .state import MAPPER_ATTR, NO_VALUE, InstanceState


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
        return {k for k in self._state.mapper.expire_keys if k not in d}

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


# -- Core's inspect() -------------------------------------------------------------------


def _inspect_instance(obj: Any) -> InstanceInspection | None:
    """Core's registrar for instances of mapped classes; None lets its walk go on."""
    if MAPPER_ATTR not in type(obj).__dict__:
        return None  # an unmapped subclass of a mapped class
    return InstanceInspection(obj)


def _inspect_class(cls: Any) -> Mapper | None:
    """Core's registrar for classes of a registered metaclass; None for unmapped ones."""
    mapper: Mapper | None = cls.__dict__.get(MAPPER_ATTR)
    return mapper


class _ClassKey(weakref.ref[type]):
    """A registry key equal to its class that does not keep it alive: classes mapped and
    dropped (as tests do by the thousand) leave Core's registry when they are collected."""

    __slots__ = ("_hash",)

    def __new__(cls, class_: type) -> _ClassKey:
        return super().__new__(cls, class_, _forget)

    def __init__(self, class_: type) -> None:
        self._hash = hash(class_)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or self() is other


def _forget(key: weakref.ref[Any]) -> None:
    core_inspection._registrars.pop(cast(Any, key), None)


def _register_instances(cls: type) -> None:
    """``portable.ON_MAPPED`` hook: Core's inspect(obj) of ``cls`` objects is ours. A class
    already registered (by us, or by the application) keeps its registrar."""
    registry = core_inspection._registrars
    if cls in registry or cls is object or cls is type:
        return
    registry[cast(Any, _ClassKey(cls))] = _inspect_instance


def register_class_inspection(metaclass: type) -> None:
    """Make Core's ``inspect(cls)`` return the Mapper for mapped classes whose metaclass is
    ``metaclass`` (a class is inspected through its metaclass's MRO). Registering it again
    is a no-op."""
    if not (isinstance(metaclass, type) and issubclass(metaclass, type)):
        raise ArgumentError(
            f"register_class_inspection() takes a metaclass (a subclass of type), got "
            f"{metaclass!r}; pass type(MappedClass) of a class with its own metaclass."
        )
    if metaclass is type:
        raise ArgumentError(
            "register_class_inspection(type) would take over inspect() of every class, and "
            "the SQLAlchemy ORM registers type itself (importing it would then fail). Give "
            "the mapped classes a metaclass of their own and register that one."
        )
    existing = core_inspection._registrars.get(metaclass)
    if existing is not None and not _same_function(existing, _inspect_class):
        raise ArgumentError(
            f"Metaclass {metaclass.__module__}.{metaclass.__qualname__} is already registered "
            f"with sqlalchemy.inspect() by {existing!r}; sessionkit cannot take it over. Give "
            f"the sessionkit-mapped classes a metaclass of their own."
        )
    core_inspection._registrars[metaclass] = _inspect_class


def _same_function(a: object, b: object) -> bool:
    """Same name and module: as Core's own check, so that a reloaded module may re-register."""
    return all(getattr(a, n, None) == getattr(b, n) for n in ("__module__", "__qualname__"))


if not any(_same_function(hook, _register_instances) for hook in ON_MAPPED):
    ON_MAPPED.append(_register_instances)
register_class_inspection(DeclarativeMeta)
