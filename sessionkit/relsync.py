"""Relationships in the unit of work: what ``add()`` takes along (cascade save-update),
and the foreign keys a flush sets from assigned many-to-one relationships, parents
INSERTed before their children also within one table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .joins import MANY_TO_ONE
from .state import NO_VALUE, STATE_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .mapping import Mapper


def cascade_targets(obj: Any, mapper: Mapper, session_ref: Any) -> list[Any]:
    """The objects ``session.add(obj)`` adds with it (cascade save-update): loaded
    many-to-one values and collection members not yet in that session."""
    d = obj.__dict__
    out = []
    for rel in mapper.relationships.values():
        value = d.get(rel.key)
        if value is None or "save-update" not in rel.cascades:
            continue
        for item in value if isinstance(value, list) else (value,):
            st = item.__dict__.get(STATE_KEY)
            if st is None or st.session_ref is not session_ref:
                out.append(item)
    return out


def sync_foreign_keys(mapper: Mapper, pairs: Iterable[tuple[Any, Any]]) -> None:
    """Before a flush writes ``pairs`` (objects of ``mapper``): the foreign keys of their
    assigned many-to-one relationships take the related objects' keys. Related objects
    are flushed first (their tables come first), so their keys are known by now."""
    rels = [
        r
        for r in mapper.relationships.values()
        if r.configured and r.direction == MANY_TO_ONE and not r.viewonly
    ]
    if not rels:
        return
    attr_for = mapper.attr_for_column
    compare = mapper.compare
    for obj, state in pairs:
        d = obj.__dict__
        changes = state.rel_changes
        for rel in rels:
            if rel.key not in d or (state.key is not None and not (changes and rel.key in changes)):
                continue
            values = rel.remote_values(d[rel.key], obj)
            if values is None:
                continue
            for (local, _), value in zip(rel.pairs, values, strict=True):
                attr = attr_for[local]
                old = d.get(attr, NO_VALUE)
                if old is not NO_VALUE and compare[attr](old, value):
                    continue
                if state.key is not None:
                    if state.committed is None:
                        state.committed = {}
                    state.committed.setdefault(attr, old)
                d[attr] = value


def insert_levels(mapper: Mapper, pairs: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """New objects of one table in the order a self-referential many-to-one needs: a
    new parent's INSERT (and its generated key) before its new children's."""
    rels = [
        r.key
        for r in mapper.relationships.values()
        if r.configured and r.direction == MANY_TO_ONE and r.target is mapper and not r.viewonly
    ]
    if not rels or len(pairs) < 2:
        return [pairs]
    new = {id(obj) for obj, _ in pairs}
    depth: dict[int, int] = {}

    def level(obj: Any, seen: int = 0) -> int:
        found = depth.get(id(obj))
        if found is not None:
            return found
        if seen > len(pairs):  # a cycle among new objects: the database will say so
            return 0
        parents = [obj.__dict__.get(k) for k in rels]
        result = max(
            (level(p, seen + 1) + 1 for p in parents if p is not None and id(p) in new),
            default=0,
        )
        depth[id(obj)] = result
        return result

    levels: dict[int, list[tuple[Any, Any]]] = {}
    for pair in pairs:
        levels.setdefault(level(pair[0]), []).append(pair)
    return [levels[k] for k in sorted(levels)]
