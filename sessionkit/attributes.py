"""Column descriptors and the instance methods installed on mapped classes.

The descriptor is a *non-data* descriptor: once a value is loaded into the instance
``__dict__`` Python finds it there without calling any sessionkit code, which makes a
loaded-attribute read as cheap as on a plain object. The descriptor only runs when the
key is absent, which is exactly when an attribute is expired (load it) or was never set
(``None``). Writes go through ``__setattr__`` installed on the class, which records the
committed value for change tracking and tells the Session that the object is dirty.

The Session is reached through the weak reference in the object's state, never imported:
the object notifies its owner (as Storm's variables do), and only for two events, an
expired attribute being read (``Session._load_expired_attribute``) and a first change
(``Session._on_modified``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import Column

from .exc import DetachedInstanceError
from .state import NO_VALUE, STATE_KEY, InstanceState, Loaded, materialize, state_str

if TYPE_CHECKING:
    from .mapping import Mapper

_EXPIRED_BY_TEXT = {
    "commit": "by Session.commit() (expire_on_commit=True)",
    "rollback": "by Session.rollback()",
    "expire": "by Session.expire() or Session.expire_all()",
    "refresh": "by Session.refresh()",
    "failed flush": "when a failed flush rolled the transaction back",
    "detach": "because the object was attached without these values loaded",
}


def detached_error(obj: object, state: InstanceState, key: str) -> DetachedInstanceError:
    """The reference's words first, then what happened and the two ways out."""
    reason = state.expired_by.reason if state.expired_by is not None else ""
    why = _EXPIRED_BY_TEXT.get(reason, "earlier")
    head = (
        f"Instance {state_str(obj)} is not bound to a Session; attribute refresh "
        f"operation cannot proceed. Attribute {key!r} of {type(obj).__name__} was expired "
        f"{why} and must be reloaded from the database, but "
    )
    if state.key is None:
        # A rollback undid the object's INSERT: there is no row to reload from.
        return DetachedInstanceError(
            f"{head}the object is transient (its INSERT was rolled back), so there is no "
            f"row to load it from. Call make_transient(obj) to forget the expired "
            f"attributes, then assign them again."
        )
    return DetachedInstanceError(
        f"{head}the object is detached. Re-attach it with session.add(obj) before "
        f"reading it, or create the Session with expire_on_commit=False so that values "
        f"stay loaded after commit."
    )


class ColumnAttribute:
    """One mapped column on a class: ``User.name`` is the Core column, ``user.name`` the value."""

    __slots__ = ("column", "key", "mapper")

    def __init__(self, key: str, column: Column[Any], mapper: Mapper) -> None:
        self.key = key
        self.column = column
        self.mapper = mapper

    @overload
    def __get__(self, obj: None, owner: type) -> Column[Any]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> Any: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self.column
        # Only reached when the key is not in obj.__dict__ (non-data descriptor).
        return load_missing(obj, self.key)

    def __repr__(self) -> str:
        return f"<ColumnAttribute {self.mapper.class_.__name__}.{self.key}>"


def load_missing(obj: object, key: str) -> Any:
    d = obj.__dict__
    state: InstanceState | None = d.get(STATE_KEY)
    if state is None or not state.expired or key not in state.expired:
        # Never set: None (or a dataclass field's default), with no SQL, as in the ORM.
        cls: Any = type(obj)
        return cls.__sk_mapper__.unset_defaults.get(key)
    ref = state.session_ref
    session = None if ref is None else ref()
    if session is None:
        raise detached_error(obj, state, key)
    session._load_expired_attribute(obj, state, key)
    return d.get(key)


def instance_setattr(self: Any, key: str, value: Any) -> None:
    mapper: Mapper = type(self).__sk_mapper__
    if key not in mapper.attr_index:
        rel = mapper.relationships.get(key)
        if rel is not None:
            rel.set_value(self, value)
            return
        mapper.has_extras = True
        mapper.base_setattr(self, key, value)
        return
    d = self.__dict__
    state: Any = d.get(STATE_KEY)
    if state is not None:
        if state.__class__ is Loaded:
            state = materialize(self, state)
        if state.expired and key in mapper.pk_attr_index and key not in d:
            # The old primary key is needed to find the row: load it first (or raise
            # DetachedInstanceError), as the reference does.
            load_missing(self, key)
        if state.key is not None:
            committed = state.committed
            if committed is None:
                state.committed = committed = {}
            if key not in committed:
                committed[key] = d.get(key, NO_VALUE)
        if not state.modified:
            state.modified = True
            ref = state.session_ref
            if ref is not None:
                session = ref()
                if session is not None:
                    d[key] = value
                    session._on_modified(self, state)
                    return
    d[key] = value


def validated_setattr(self: Any, key: str, value: Any) -> None:
    """``__setattr__`` of a class with ``@validates`` methods: the validator's return
    value is what gets set; if it raises, nothing is set and nothing is marked changed."""
    mapper: Mapper = type(self).__sk_mapper__
    validator = mapper.validator_fns.get(key)
    if validator is not None:
        if key in mapper.pk_attr_index and key not in self.__dict__:
            load_missing(self, key)  # the old key first, as instance_setattr does
        value = validator(self, key, value)
    instance_setattr(self, key, value)


def instance_delattr(self: Any, key: str) -> None:
    """``del obj.attr`` on a column means "set it to NULL", as in the reference."""
    mapper: Mapper = type(self).__sk_mapper__
    if key not in mapper.attr_index:
        rel = mapper.relationships.get(key)
        if rel is not None:
            rel.set_value(self, None)  # del book.author: None, as in the ORM
            return
        object.__delattr__(self, key)
        return
    instance_setattr(self, key, None)
    self.__dict__.pop(key, None)


def instance_init(self: Any, **kwargs: Any) -> None:
    """Keyword constructor: ``User(name="sandy")`` sets only the given attributes."""
    cls = type(self)
    d = self.__dict__
    if not d and kwargs.keys() <= cls.__sk_mapper__.init_keys:
        # A new object with only column values, none validated: nothing to track yet.
        d.update(kwargs)
        return
    for k, v in kwargs.items():
        if not hasattr(cls, k):
            raise TypeError(
                f"{k!r} is an invalid keyword argument for {cls.__name__}; "
                f"mapped attributes are {', '.join(cls.__sk_mapper__.attr_keys)}"
            )
        setattr(self, k, v)


def instance_repr(self: Any) -> str:
    """Shows loaded values only; never triggers a load."""
    mapper: Mapper = type(self).__sk_mapper__
    d = self.__dict__
    parts = [f"{k}={d[k]!r}" for k in mapper.attr_keys if k in d]
    state: InstanceState | None = d.get(STATE_KEY)
    if state is not None and state.expired:
        parts.append("<expired: " + ", ".join(k for k in mapper.attr_keys if k not in d) + ">")
    return f"{type(self).__name__}({', '.join(parts)})"
