"""Per-instance bookkeeping.

Every mapped object that a Session has seen carries one ``InstanceState`` in its
``__dict__`` under ``STATE_KEY``; its column values sit next to it in the same dict, so
that reading a loaded attribute is a single dictionary hit. The state is deliberately
small (``__slots__``) and knows its Session only through a weak reference shared by all
objects of that Session, so it costs no allocation per object and never keeps a Session
alive.

Objects travel (pickle, ``copy.deepcopy``, ``copy.copy`` through ``portable.py``) as the
ORM's do: the state and the shared marker reduce to the mapped *class* and the facts of
the object, never to the Mapper or the Session, and come back detached.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final

from .exc import UnmappedClassError

if TYPE_CHECKING:
    from .mapping import Mapper
    from .session import Session

# It starts with "_sa" because serializers that walk ``vars(obj)`` (FastAPI's
# jsonable_encoder) skip such keys as SQLAlchemy's bookkeeping, and it is not
# "_sa_instance_state", which the ORM's inspect() reads from any object.
STATE_KEY: Final = "_sa_sk_state"
# Where a mapped class keeps its Mapper.
MAPPER_ATTR: Final = "__sk_mapper__"


class _NoValue:
    """Marker for "no value was loaded" in committed-value history."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()


class Expiry:
    """One expiry event: a commit, a rollback, an ``expire()`` call.

    Objects expired together share one instance, which is how a batched refresh finds
    the other objects "expired by the same event". ``members`` lists them per mapper
    (as identity-map weak references) only when the Session batches refreshes.
    """

    __slots__ = ("members", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.members: dict[Any, list[weakref.ref[Any]]] | None = None

    def __repr__(self) -> str:
        return f"<Expiry {self.reason}>"


class InstanceState:
    """Lifecycle facts of one mapped object.

    ``key`` is the primary-key value (a scalar for single-column keys, a tuple
    otherwise) once the object has an identity; ``committed`` holds the value each
    changed attribute had before its first change since the last flush; ``expired`` is
    the set of attribute keys whose values must be reloaded from the database.
    """

    __slots__ = (
        "committed",
        "deleted",
        "expired",
        "expired_by",
        "group",
        "key",
        "mapper",
        "modified",
        "rel_changes",
        "session_ref",
        "was_deleted",
    )

    mapper: Mapper
    key: Any
    session_ref: weakref.ref[Any] | None
    committed: dict[str, Any] | None
    modified: bool
    expired: frozenset[str] | None
    expired_by: Expiry | None
    deleted: bool
    was_deleted: bool
    # The objects loaded with this one, for relationship loading (relloading.LoadGroup).
    group: Any
    # Many-to-one relationships assigned since the last flush: their foreign keys are
    # set from the related objects when the flush reaches this object's table.
    rel_changes: dict[Any, Any] | None

    def __init__(
        self, mapper: Mapper, key: Any = None, session_ref: weakref.ref[Any] | None = None
    ) -> None:
        self.mapper = mapper
        self.group = None
        self.rel_changes = None
        self.key = key
        self.session_ref = session_ref
        self.committed = None
        self.modified = False
        self.expired = None
        self.expired_by = None
        self.deleted = False
        self.was_deleted = False

    @property
    def session(self) -> Session | None:
        ref = self.session_ref
        return None if ref is None else ref()

    @property
    def identity_key(self) -> tuple[type, tuple[Any, ...], None] | None:
        if self.key is None:
            return None
        return self.mapper.identity_key_for(self.key)

    def clear_history(self) -> None:
        self.committed = None
        self.rel_changes = None
        self.modified = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the class and the object's facts: it comes back in no Session
        (detached, or transient without a key), with its unflushed changes and expired
        keys. Delete marks are dropped, as the ORM drops them: the copy can be re-added."""
        reason = None if self.expired_by is None else self.expired_by.reason
        return (
            restore_state,
            (self.mapper.class_, self.key, self.committed, self.modified, self.expired, reason),
        )


# Loader options for one class: relationship key (or "*") -> (strategy, subtree).
Tree = dict[str, tuple[str, "Tree"]]


class LoadGroup:
    """The objects of one class that one result loaded (their primary keys), and the
    strategies the query's options chose for their relationships: what a relationship
    read loads together (relloading.py)."""

    __slots__ = ("keys", "tree")

    def __init__(self, keys: list[Any], tree: Tree) -> None:
        self.keys = keys
        self.tree = tree


class Loaded:
    """Stands in for an ``InstanceState`` on an object loaded and not touched since.

    Loading is the hottest path, and most loaded objects are only read. Instead of a
    state object per row, such objects share one ``Loaded`` marker per (Session,
    mapper): their identity key is still the primary key in ``__dict__``, and nothing
    else is known about them. The first change, expiry or inspection replaces the
    marker with a real ``InstanceState`` (see ``materialize``). The class attributes
    answer the questions the read paths ask without materializing.
    """

    __slots__ = ("group", "mapper", "session_ref")

    expired = None
    expired_by = None
    modified = False
    deleted = False
    was_deleted = False

    def __init__(
        self, mapper: Mapper, session_ref: weakref.ref[Any] | None, group: Any = None
    ) -> None:
        self.mapper = mapper
        self.session_ref = session_ref
        # Set for classes with relationships: the objects of one result (LoadGroup).
        self.group = group

    def __repr__(self) -> str:
        return f"<Loaded {self.mapper.class_.__name__}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class: it comes back as the class's "detached, loaded" marker."""
        return (restore_marker, (self.mapper.class_,))


def _mapper_for(cls: type, what: str) -> Mapper:
    mapper = cls.__dict__.get(MAPPER_ATTR)
    if mapper is None:
        raise UnmappedClassError(
            f"Cannot restore {what} of a {cls.__module__}.{cls.__qualname__} object: the class "
            f"is not mapped by sessionkit in this process. Import the module that maps it "
            f"(its declarative class or map_imperatively() call) before unpickling or copying."
        )
    return mapper  # type: ignore[no-any-return]


def restore_state(
    cls: type,
    key: Any,
    committed: dict[str, Any] | None,
    modified: bool,
    expired: frozenset[str] | None,
    reason: str | None,
) -> InstanceState:
    """The state ``InstanceState.__reduce__`` describes, detached (pickles name this
    function: keep its name and arguments)."""
    mapper = _mapper_for(cls, "the state")
    state = InstanceState(mapper, key)
    state.committed = dict(committed) if committed else None
    state.modified = modified
    if expired:
        # A fully expired object is marked by the mapper's own set (identity is checked).
        state.expired = mapper.all_attrs if expired == mapper.all_attrs else frozenset(expired)
    if reason is not None:
        state.expired_by = Expiry(reason)
    return state


def restore_marker(cls: type) -> Loaded:
    """The class's shared "detached, loaded" marker (pickles name this function)."""
    return _mapper_for(cls, "the loaded marker").detached_marker


def materialize(obj: Any, marker: Loaded) -> InstanceState:
    """Replace a shared ``Loaded`` marker with the object's own state.

    The state is built field by field rather than through ``InstanceState()``: this
    runs on the first change of every loaded object, and the type call is a good part
    of its cost.
    """
    d = obj.__dict__
    mapper = marker.mapper
    state: InstanceState = _new(InstanceState)
    state.mapper = mapper
    state.key = mapper.key_from_dict(d)
    state.session_ref = marker.session_ref
    state.group = marker.group
    state.rel_changes = None
    state.committed = None
    state.modified = False
    state.expired = None
    state.expired_by = None
    state.deleted = False
    state.was_deleted = False
    d[STATE_KEY] = state
    return state


_new = object.__new__


def get_state(obj: Any) -> InstanceState:
    """The object's ``InstanceState``; the object must already carry state or a marker."""
    st = obj.__dict__[STATE_KEY]
    if st.__class__ is Loaded:
        return materialize(obj, st)
    return st  # type: ignore[no-any-return]


def state_str(obj: object) -> str:
    """``<User at 0x7f...>``: how messages name an object, without touching its values."""
    return f"<{type(obj).__name__} at {hex(id(obj))}>"
