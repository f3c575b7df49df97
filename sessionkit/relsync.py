"""Relationships in the unit of work: what ``add()`` takes along (cascade save-update),
and the foreign keys a flush sets from assigned many-to-one relationships, parents
INSERTed before their children also within one table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert

from .exc import warn
from .joins import MANY_TO_MANY, MANY_TO_ONE
from .relcoll import changed, child_state, key_values
from .state import NO_VALUE, STATE_KEY, Loaded

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .mapping import Mapper


def cascade_targets(obj: Any, mapper: Mapper, session_ref: Any, came_from: Any = None) -> list[Any]:
    """The objects ``session.add(obj)`` adds with it (cascade save-update): loaded
    many-to-one values and collection members not yet in that session, but not
    ``came_from``, the object whose change cascaded to ``obj``."""
    d = obj.__dict__
    out = []
    for rel in mapper.relationships.values():
        value = d.get(rel.key)
        if value is None or "save-update" not in rel.cascades:
            continue
        for item in value if isinstance(value, list) else (value,):
            if item is came_from:
                continue
            st = item.__dict__.get(STATE_KEY)
            # One whose DELETE was flushed goes too: add() refuses it, as the ORM does.
            if st is None or st.session_ref is not session_ref or st.deleted or st.was_deleted:
                out.append(item)
    return out


def sync_foreign_keys(mapper: Mapper, pairs: Iterable[tuple[Any, Any]]) -> None:
    """Before a flush writes ``pairs`` (objects of ``mapper``): the foreign keys of their
    assigned many-to-one relationships take the related objects' keys, and those of
    objects that joined (or left) a one-to-many collection without a back reference take
    the parent's (or NULL). Related objects are flushed first (their tables come first),
    so their keys are known by now."""
    m2o = [
        r
        for r in mapper.relationships.values()
        if r.configured and r.direction == MANY_TO_ONE and not r.viewonly
    ]
    for obj, state in pairs:
        d = obj.__dict__
        changes = state.rel_changes
        for rel in m2o:
            if rel.key not in d or (state.key is not None and not (changes and rel.key in changes)):
                continue
            target = d[rel.key]
            if _deleted(target):
                # Not in the session any more: the ORM warns and leaves the key alone.
                warn(
                    f"Object of type <{type(target).__name__}> not in session, add operation "
                    f"along '{rel.name}' won't proceed (its DELETE was flushed; assign "
                    f"another object or None)"
                )
                continue
            values = rel.remote_values(target)
            if values is not None:
                _set_keys(mapper, obj, state, [c for c, _ in rel.pairs], values)
        if changes:
            for rel, parent in list(changes.items()):
                if isinstance(rel, str) or rel.target is not mapper or rel.secondary is not None:
                    continue
                values = rel.local_values(parent)
                if values is not None:
                    _set_keys(mapper, obj, state, [r for _, r in rel.pairs], values)


def _deleted(obj: Any) -> bool:
    """Whether ``obj`` is an object whose DELETE was flushed."""
    st = None if obj is None else obj.__dict__.get(STATE_KEY)
    return st is not None and st.__class__ is not Loaded and (st.deleted or st.was_deleted)


def _set_keys(mapper: Mapper, obj: Any, state: Any, columns: list[Any], values: list[Any]) -> None:
    d = obj.__dict__
    for column, value in zip(columns, values, strict=True):
        attr = mapper.attr_for_column[column]
        old = d.get(attr, NO_VALUE)
        if old is not NO_VALUE and mapper.compare[attr](old, value):
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


def cascade_delete(session: Any, obj: Any, mapper: Mapper) -> None:
    """``session.delete(author)`` with cascade "delete": its related objects are deleted
    too (an unloaded collection is loaded first, unless ``passive_deletes``), pending
    ones expunged, as in the ORM."""
    d = obj.__dict__
    for rel in mapper.relationships.values():
        if "delete" not in rel.cascades:
            continue
        rel.configure()
        if rel.key in d:
            value = d[rel.key]
        elif rel.passive_deletes:
            continue  # the database's ON DELETE CASCADE does it
        else:
            value = getattr(obj, rel.key)
        for item in _members(value):
            st = item.__dict__.get(STATE_KEY)
            if st is None or (st.__class__ is not Loaded and st.key is None):
                if item in session:
                    session.expunge(item)
            elif item not in session.deleted:
                session.delete(item)


def _members(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def warn_strays(session: Any, tracker: Any) -> None:
    """The ORM's warning for an object outside the session that only a back reference
    puts into a collection (``book.author = ann`` on a transient book): the flush does
    not add it. Once per assignment, at the next flush."""
    strays, tracker.strays = tracker.strays, []
    for child_ref, rel, parent_ref, key in strays:
        child, parent = child_ref(), parent_ref()
        if child is None or parent is None or child in session or parent not in session:
            continue
        if child.__dict__.get(key) is parent:
            warn(
                f"Object of type <{type(child).__name__}> not in session, add operation "
                f"along '{rel.name}' will not proceed (add it to the session, or append "
                f"it to the collection, which cascades)"
            )


def prepare_flush(session: Any, tracker: Any, conn: Any) -> None:
    """Relationship work a flush does before it collects its statements: objects removed
    from a delete-orphan collection and still without a parent are deleted; children of a
    deleted parent without delete cascade get a NULL foreign key (their collection loaded
    first unless ``passive_deletes``); a deleted object's many-to-many rows go first."""
    orphans, tracker.orphans = tracker.orphans, []
    for item, rel in orphans:
        st = item.__dict__.get(STATE_KEY)
        if st is None or st.__class__ is Loaded:
            continue
        back = rel.back_relationship()
        if back is not None and back.direction == MANY_TO_ONE:
            # Expired since (a rollback), it is not known to be an orphan: kept.
            orphaned = back.key in item.__dict__ and item.__dict__[back.key] is None
        else:
            orphaned = (st.rel_changes or {}).get(rel, False) is None
        if not orphaned or item not in session:
            continue
        if st.key is None:
            session.expunge(item)
        elif item not in session.deleted:
            session.delete(item)
    for obj in list(tracker.deleted.values()):
        mapper = obj.__dict__[STATE_KEY].mapper
        for rel in mapper.relationships.values():
            rel.configure()
            if rel.viewonly or rel.direction == MANY_TO_ONE or "delete" in rel.cascades:
                continue
            if rel.direction == MANY_TO_MANY:
                _delete_secondary_rows(conn, obj, rel)
                continue
            if rel.passive_deletes == "all":
                continue
            d = obj.__dict__
            if rel.key not in d and rel.passive_deletes:
                continue
            value = d[rel.key] if rel.key in d else getattr(obj, rel.key)
            back = rel.back_relationship()
            for child in _members(value):
                if child in session.deleted or _joined_since(child, rel, back, obj):
                    continue
                if back is not None and back.direction == MANY_TO_ONE:
                    back.set_value(child, None, cascade=False)
                else:
                    changed(child, child_state(child, rel.target), rel, None)


def _joined_since(child: Any, rel: Any, back: Any, parent: Any) -> bool:
    """``child`` was given ``parent`` since the last flush, or moved to another parent:
    the flush writes that parent's key, as the ORM's does, instead of NULL (a move is
    kept; for the deleted parent the database then refuses its DELETE where a foreign
    key is enforced: the assignment is not silently undone)."""
    d = child.__dict__
    changes = getattr(d.get(STATE_KEY), "rel_changes", None)
    if back is not None and back.direction == MANY_TO_ONE:
        if back.key in d and d[back.key] is not parent and d[back.key] is not None:
            return True  # it belongs to another parent now (loaded from the database late)
        return changes is not None and back.key in changes and d.get(back.key) is parent
    return changes is not None and changes.get(rel) is parent


def _delete_secondary_rows(conn: Any, obj: Any, rel: Any) -> None:
    """``DELETE FROM <secondary> WHERE <its key to obj> = ...``: the association rows of
    a deleted object, before its own DELETE."""
    values = rel.local_values(obj)
    if values is None:
        return
    where = [sec == value for (_, sec), value in zip(rel.pairs, values, strict=True)]
    conn.execute(delete(rel.secondary).where(*where))


def pending_links(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any, str, Any]]:
    """The many-to-many changes of ``pairs`` as (relationship, object, "add" or
    "remove", other object): taken before the flush starts, whose statements clear each
    object's history as they go."""
    out: list[tuple[Any, Any, str, Any]] = []
    for obj, state in pairs:
        for rel, links in (state.rel_changes or {}).items():
            if not isinstance(rel, str) and rel.secondary is not None:
                out.extend((rel, obj, op, other) for op, other in links.values())
    return out


def write_links(conn: Any, links: list[tuple[Any, Any, str, Any]]) -> None:
    """The association rows ``links`` ask for, once both sides have their rows (after
    the flush's INSERTs and UPDATEs, before its DELETEs): one executemany DELETE and one
    executemany INSERT per association table. A pair recorded from both sides (the
    relationship and its back_populates) is written once."""
    deletes: dict[Any, dict[tuple[Any, ...], dict[str, Any]]] = {}
    inserts: dict[Any, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for rel, obj, op, other in links:
        mine = rel.local_values(obj)
        theirs = key_values(other, rel.target, [t for _, t in rel.secondary_pairs], rel.name)
        if mine is None or theirs is None:
            continue
        row = {sec.key: v for (_, sec), v in zip(rel.pairs, mine, strict=True)}
        row.update({sec.key: v for (sec, _), v in zip(rel.secondary_pairs, theirs, strict=True)})
        ident = tuple(sorted(row.items()))
        (inserts if op == "add" else deletes).setdefault(rel.secondary, {})[ident] = row
    for table, rows in deletes.items():
        cols = list(next(iter(rows.values())))
        stmt = delete(table).where(*(table.c[c] == bindparam(f"sk_{c}") for c in cols))
        conn.execute(stmt, [{f"sk_{k}": v for k, v in r.items()} for r in rows.values()])
    for table, rows in inserts.items():
        conn.execute(insert(table), list(rows.values()))


def clear_links(pairs: Iterable[tuple[Any, Any]]) -> None:
    """After a successful flush: the relationship changes of the flushed objects are
    written; a later change to a foreign key column is the user's own."""
    for _, state in pairs:
        state.rel_changes = None


def related_along(obj: Any, mapper: Mapper, cascade: str) -> list[Any]:
    """The loaded related objects of ``obj`` along relationships with ``cascade``."""
    d = obj.__dict__
    out: list[Any] = []
    for rel in mapper.relationships.values():
        if cascade in rel.cascades and rel.key in d:
            out.extend(_members(d[rel.key]))
    return out


def cascade_expunge(session: Any, obj: Any, mapper: Mapper) -> None:
    """``expunge(obj)`` goes on to its loaded related objects along "expunge"."""
    for item in related_along(obj, mapper, "expunge"):
        if item in session:
            session.expunge(item)
