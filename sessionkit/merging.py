"""``Session.merge()``: a detached (or other session's) object's state copied onto the
session's own object for its key, and the same along relationships with the ``merge``
cascade, so that a detached author with its loaded books comes back whole.

Every object is merged once per call (``memo``, by identity): a book's ``author`` that
leads back to the author being merged gets the same merged author, as in the ORM, and
an object reached along a relationship is not merged back along its other side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exc import InvalidRequestError
from .mapping import state_of
from .relcoll import new_list
from .state import state_str

if TYPE_CHECKING:
    from .relationships import Relationship
    from .session import Session

# id(object) -> its merged object; (id(object), relationship) -> True once reached by it.
Memo = dict[Any, Any]


def merge(session: Session, instance: Any, load: bool) -> Any:
    """``session.merge(instance, load=load)``: one autoflush first (when loading), none
    while the objects are copied, as in the ORM."""
    state_of(instance)  # a mapped object, or the error that says it is not
    if load:
        session._autoflush()
    with session.no_autoflush:
        return _merge(session, instance, load, {})


def _merge(session: Session, instance: Any, load: bool, memo: Memo) -> Any:
    found = memo.get(id(instance))
    if found is not None:
        return found
    state = state_of(instance)
    mapper = state.mapper
    src = instance.__dict__
    tracker = session._tracker
    if tracker.contains(instance, state):
        memo[id(instance)] = instance
        return instance
    if not load and state.key is None:
        raise InvalidRequestError(
            f"merge() with load=False option does not support objects transient (i.e. "
            f"unpersisted) objects: {state_str(instance)} has never been flushed. flush() "
            f"all changes on mapped instances before merging with load=False."
        )
    if not load and state.modified:
        raise InvalidRequestError(
            f"merge() with load=False option does not support objects marked as 'dirty': "
            f"{state_str(instance)} has unflushed changes. Flush them in its own session "
            f"first, or merge with load=True."
        )
    key = state.key if state.key is not None else mapper.key_from_dict(src)
    merged: Any = None
    if key is not None:
        merged = session.identity_map.lookup(mapper, key)
        if merged is None and load:
            merged = session.get(mapper.class_, key)
    session._autobegin()
    values = [(k, src[k]) for k in mapper.attr_keys if k in src]
    if not load:
        merged = tracker.merge_loaded(mapper, key, merged, values)
    else:
        if merged is None:
            merged = object.__new__(mapper.class_)
            session.add(merged)
        for k, v in values:
            setattr(merged, k, v)
    memo[id(instance)] = merged
    if mapper.relationships:
        for rel in mapper.relationships.values():
            if rel.key not in src or "merge" not in rel.cascades or rel.viewonly:
                continue
            # Not back along the relationship this object was reached by (loading: its
            # other side is loaded from the database instead), as the ORM does.
            back = rel.back_relationship() if load else None
            if back is not None and (id(instance), back) in memo:
                continue
            _merge_relationship(session, rel, src[rel.key], merged, load, memo)
    return merged


def _merge_relationship(
    session: Session, rel: Relationship, value: Any, merged: Any, load: bool, memo: Memo
) -> None:
    """The merged related objects become ``merged``'s: assigned (a change, flushed like
    any other) with ``load``, else set as loaded state, as the ORM does."""
    if rel.uselist:
        if load:
            getattr(merged, rel.key)  # loaded first: its members then come from the map
        for item in value:
            memo[(id(item), rel)] = True
        items = [_merge(session, item, load, memo) for item in value]
        if load:
            setattr(merged, rel.key, items)
        else:
            merged.__dict__[rel.key] = new_list(rel, merged, items)
        return
    if value is not None:
        memo[(id(value), rel)] = True
    target = None if value is None else _merge(session, value, load, memo)
    if load:
        setattr(merged, rel.key, target)
    else:
        merged.__dict__[rel.key] = target
