"""Expiry: forgetting loaded values so that the next read loads them again.

An object is expired one at a time (``expire()``, a rollback of the objects a savepoint
changed) or all at once (every commit and rollback). Both live here, beside the
per-object state they change. The many-object path runs on every commit, so it is written
out for speed rather than calling the one-object path in a loop.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from .gcpause import paused
from .state import STATE_KEY, Expiry, InstanceState, Loaded

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper


def expire_state(
    obj: Any, state: InstanceState, expiry: Expiry, keys: Iterable[str] | None
) -> None:
    """Forget loaded values (all, or ``keys``) and any unflushed changes to them.

    The state is marked first and the values go last, so that an interrupt between any
    two steps leaves an object whose missing values are known to be expired (they load
    again), never one that reads None for a value it does not have.
    """
    mapper = state.mapper
    state.expired_by = expiry
    if keys is None:
        state.expired = mapper.all_attrs
        state.clear_history()
        d = obj.__dict__
        if d.keys() <= mapper.dict_keys:
            # Only columns and the state are present: empty the dict and put the state
            # back in one step no interrupt can split (see _clear_keeping_state).
            _clear_keeping_state([d], [state])
        else:
            for k in mapper.expire_keys:
                d.pop(k, None)
        return
    keys = list(keys)
    d = obj.__dict__
    if mapper.relationships:
        for k in keys:
            if k in mapper.relationships:
                d.pop(k, None)  # a relationship is simply loaded again on its next read
        keys = [k for k in keys if k not in mapper.relationships]
        if not keys:
            return
    if state.expired is not mapper.all_attrs:  # a fully expired object stays so
        state.expired = frozenset(keys).union(state.expired or ())
    committed = state.committed
    if committed:
        for k in keys:
            committed.pop(k, None)
    for k in keys:
        d.pop(k, None)


def expire_identity_map(imap: IdentityMap, reason: str, track: bool) -> None:
    """Expire every object in the identity map as one event.

    ``track`` records the objects per mapper on the event, so that a batched refresh can
    find the others expired with the first one it loads.
    """
    imap.forget_fresh()
    expiry = Expiry(reason)
    members: dict[Any, list[weakref.ref[Any]]] = {}
    if track:
        expiry.members = members
    total = sum(map(len, imap.by_mapper.values()))
    dead = imap.dead_count()
    if dead * 8 > total:
        # The walk below would spend a good part of its time on dropped objects.
        imap.sweep()
        # Counted again: a callback may also count an entry already removed.
        total = sum(map(len, imap.by_mapper.values()))
        if not total:
            return  # e.g. a commit of objects the application no longer holds
    subs = list(imap.by_mapper.items())
    with paused(total):
        for mapper, sub in subs:
            if not sub:
                continue
            refs = list(sub.values())
            if track:
                members[mapper] = refs
            expire_refs(mapper, refs, expiry)


def expire_refs(mapper: Mapper, refs: list[weakref.ref[Any]], expiry: Expiry) -> None:
    """``expire_state(obj, state, expiry, None)`` for many objects of one class, inlined
    (it runs on every commit), with the same order of writes: every state first, then
    the values, the instance dicts emptied all at once when they hold nothing else."""
    all_attrs = mapper.all_attrs
    dict_keys = mapper.dict_keys
    attr_keys = mapper.expire_keys
    fast = not mapper.has_extras
    pk_attr = mapper.pk_attr_keys[0] if mapper.single_pk else None
    key_from_dict = mapper.key_from_dict
    new = object.__new__
    dicts: list[dict[str, Any]] = []
    states: list[InstanceState] = []
    others: list[InstanceState] = []
    for obj_ref in refs:
        obj = obj_ref()
        if obj is None:
            continue
        d = obj.__dict__
        state = d[STATE_KEY]
        if state.__class__ is Loaded:
            # InstanceState(mapper, key, session_ref), written out: a commit after a
            # large read builds one per object. The fields set below complete it.
            session_ref = state.session_ref
            state = new(InstanceState)
            state.mapper = mapper
            state.key = d.get(pk_attr) if pk_attr is not None else key_from_dict(d)
            state.session_ref = session_ref
            state.group = None
            state.rel_changes = None
            state.deleted = False
            state.was_deleted = False
        state.expired = all_attrs
        state.committed = None
        state.modified = False
        state.expired_by = expiry
        if fast or d.keys() <= dict_keys:
            dicts.append(d)
            states.append(state)
        else:
            d[STATE_KEY] = state
            for k in attr_keys:
                d.pop(k, None)
            others.append(state)
    _clear_keeping_state(dicts, states)
    if mapper.relationships:
        # Expired together, loaded together: a relationship read now batches by the
        # expiry, not by the result the objects once came from.
        for state in chain(states, others):
            state.group = None
            state.rel_changes = None


def _clear_keeping_state(dicts: list[dict[str, Any]], states: list[InstanceState]) -> None:
    """Empty each dict but for its state, in one call into C: no bytecode runs between
    clearing a dict and putting its state back, so no signal handler or other thread can
    see (or leave behind) an object without its state. Faster than a Python loop, too."""
    deque(
        chain(map(dict.clear, dicts), map(dict.__setitem__, dicts, repeat(STATE_KEY), states)),
        maxlen=0,
    )
