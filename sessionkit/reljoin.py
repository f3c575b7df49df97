"""Joined eager loading: ``joinedload(Author.books)`` and ``lazy="joined"``.

The related rows arrive with the statement's own: a LEFT OUTER JOIN to an alias of the
related table (and of the association table for a many-to-many), its columns appended
after the statement's, so that no second round trip is needed. A collection repeats its
parent's row once per member; the objects are de-duplicated here, and the result must be
``unique()``-d as in the ORM, which refuses to hand out the repeated parents otherwise.

Like the ORM, a statement with LIMIT, OFFSET, DISTINCT or GROUP BY would cut or merge the
repeated rows; the ORM then wraps the statement in a subquery. sessionkit refuses a
joined *collection* there instead (a many-to-one adds no rows and is fine), pointing at
``selectinload``, which has no such interaction.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import FromClause, Select, and_
from sqlalchemy.sql.util import ClauseAdapter

from .exc import ArgumentError
from .joins import MANY_TO_MANY, MANY_TO_ONE
from .loader import load_rows
from .relationships import Relationship
from .relcoll import list_class
from .state import STATE_KEY, InstanceState, Tree

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper

JOINED = "joined"


def strategy_of(rel: Relationship, tree: Tree | None) -> tuple[str, Tree]:
    """``rel``'s strategy: the option that names it (or ``'*'``), else its ``lazy``."""
    if tree:
        found = tree.get(rel.key) or tree.get("*")
        if found is not None:
            return found
    return rel.lazy, {}


@dataclass(slots=True)
class Joined:
    """One joined relationship: where its target's columns sit in the row, the options
    below it, and the relationships joined from its target in turn."""

    rel: Relationship
    start: int
    end: int
    tree: Tree
    nested: list[Joined]
    columns: list[Any]


@dataclass(slots=True)
class Joins:
    """What joined loading added to a statement."""

    statement: Select[Any]
    width: int  # the statement's own columns, before the joined ones
    by_position: list[tuple[int, list[Joined]]]  # per entity of the result
    collections: bool  # a collection is joined: rows repeat, unique() is required


Columns = Callable[[Any], Any]  # a mapped column -> that column in a FROM element


def add_joins(
    statement: Select[Any], roots: list[tuple[int, Mapper, Columns, Tree]], width: int
) -> Joins | None:
    """``statement`` with the joins its entities' options (or ``lazy="joined"``) ask
    for; None when there are none. ``roots``: (result position, mapper, its columns in
    the statement's FROM, its option tree)."""
    builder = _Builder(statement, width)
    found = []
    for position, mapper, from_, tree in roots:
        joined = builder.joins(mapper, from_, tree, (mapper,))
        if joined:
            builder.place(joined)
            found.append((position, joined))
    if not found:
        return None
    stmt = builder.statement
    if builder.collections:
        refused = [words for attr, words in _CUTTING if _has(statement, attr)]
        if refused:
            raise ArgumentError(
                f"joinedload() of the collection(s) {', '.join(builder.collection_names)} "
                f"in a statement with {', '.join(refused)}: the repeated rows of a joined "
                f"collection would be cut or merged. Use selectinload() for them (one "
                f"more SELECT, no interaction with {refused[0]})."
            )
    if builder.order_by:
        stmt = stmt.order_by(*builder.order_by)
    return Joins(stmt, width, found, builder.collections)


# Clauses that count or merge rows: a joined collection's repeated rows would change them.
_CUTTING = (
    ("_limit_clause", "LIMIT"),
    ("_offset_clause", "OFFSET"),
    ("_fetch_clause", "FETCH"),
    ("_distinct", "DISTINCT"),
    ("_group_by_clauses", "GROUP BY"),
)


def _has(statement: Select[Any], attr: str) -> bool:
    value = getattr(statement, attr, None)
    return value is not None and value is not False and value != ()


class _Builder:
    def __init__(self, statement: Select[Any], width: int) -> None:
        self.statement = statement
        self.next = width
        self.order_by: list[Any] = []
        self.collections = False
        self.collection_names: list[str] = []

    def joins(
        self, mapper: Mapper, from_: Columns, tree: Tree, path: tuple[Mapper, ...]
    ) -> list[Joined]:
        """The joins below ``mapper``, in relationship order, each before its own."""
        out = []
        for key, rel in mapper.relationships.items():
            if not rel.configured:
                rel.configure()
            strategy, sub = strategy_of(rel, tree)
            if strategy != JOINED:
                continue
            # A default lazy="joined" stops where its target was joined already, as the
            # ORM's does (no join_depth): a back reference would join forever.
            if key not in tree and "*" not in tree and rel.target in path:
                continue
            target = self._join(rel, from_)
            if rel.uselist:
                self.collections = True
                self.collection_names.append(rel.name)
            if rel.order_by:
                adapter = ClauseAdapter(target)
                self.order_by.extend(adapter.traverse(o) for o in rel.order_by)
            columns = [_column(target, c) for c in rel.target.columns]
            nested = self.joins(rel.target, _columns_in(target), sub, (*path, rel.target))
            out.append(Joined(rel, 0, 0, sub, nested, columns))
        return out

    def place(self, joined: list[Joined]) -> None:
        """Append the joined columns, the deepest first (the ORM's order, so that the
        SQL is the same), and note where each relationship's are."""
        for j in joined:
            self.place(j.nested)
            j.start = self.next
            self.next += len(j.columns)
            j.end = self.next
            self.statement = self.statement.add_columns(*j.columns)

    def _join(self, rel: Relationship, from_: Columns) -> FromClause:
        """LEFT OUTER JOIN an alias of ``rel``'s target (for a many-to-many: the inner
        join of aliases of the association table and the target) to ``from_``; the
        target's alias."""
        target = rel.target.table.alias()
        if rel.direction == MANY_TO_MANY:
            assert rel.secondary is not None
            secondary = rel.secondary.alias()
            inner = secondary.join(
                target, _on(_columns_in(secondary), target, rel.secondary_pairs, False)
            )
            self.statement = self.statement.outerjoin(inner, _on(from_, secondary, rel.pairs, True))
        else:
            local_first = rel.direction != MANY_TO_ONE
            self.statement = self.statement.outerjoin(
                target, _on(from_, target, rel.pairs, local_first)
            )
        return target


def _on(
    left: Columns, right: FromClause, pairs: Sequence[tuple[Any, Any]], left_first: bool
) -> Any:
    """The join condition, each comparison written as the ORM writes it: the referred
    column, then the foreign key."""
    return and_(
        *(
            left(a) == _column(right, b) if left_first else _column(right, b) == left(a)
            for a, b in pairs
        )
    )


def _columns_in(alias: FromClause) -> Columns:
    return lambda column: _column(alias, column)


def _column(alias: FromClause, column: Any) -> Any:
    found = alias.corresponding_column(column)
    assert found is not None  # an alias of the column's own table
    return found


def apply_joined(
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    joined: list[Joined],
    rows: Sequence[Sequence[Any]],
    parents: Sequence[Any],
    populate: bool,
    eager: Callable[[Mapper, list[Any], Tree], None],
) -> None:
    """Build the joined objects of ``rows`` and give each parent (``parents[i]`` for
    ``rows[i]``, None where the row has none) its related objects. Loaded relationships
    are kept (``populate_existing`` replaces them, unless changed since); ``eager`` runs
    the target's query-time loads below a joined relationship."""
    for j in joined:
        rel = j.rel
        target = rel.target
        row_pk = target.row_pk
        start, end = j.start, j.end
        index: dict[Any, int] = {}
        parts: list[Sequence[Any]] = []
        slots = []
        for row in rows:
            part = row[start:end]
            pk = row_pk(part)
            if pk is None or (type(pk) is tuple and None in pk):
                slots.append(-1)
                continue
            i = index.get(pk)
            if i is None:
                i = index[pk] = len(parts)
                parts.append(part)
            slots.append(i)
        objs = load_rows(imap, target, parts, populate, modified, j.tree) if parts else []
        related = [None if i < 0 else objs[i] for i in slots]
        if j.nested:
            apply_joined(imap, modified, j.nested, rows, related, populate, eager)
        _assign(rel, parents, related, populate)
        if objs and target.relationships:
            eager(target, objs, j.tree)


def _assign(rel: Relationship, parents: Sequence[Any], related: list[Any], populate: bool) -> None:
    key = rel.key
    if not rel.uselist:
        for parent, obj in zip(parents, related, strict=True):
            if parent is not None and _fill(parent, rel, populate):
                parent.__dict__[key] = obj
        return
    members: dict[int, tuple[Any, list[Any], set[int]]] = {}
    for parent, obj in zip(parents, related, strict=True):
        if parent is None:
            continue
        entry = members.get(id(parent))
        if entry is None:
            entry = members[id(parent)] = (parent, [], set())
        if obj is not None and id(obj) not in entry[2]:
            entry[2].add(id(obj))
            entry[1].append(obj)
    make = list_class(rel)
    make_ref = weakref.ref
    for parent, items, _ in members.values():
        if _fill(parent, rel, populate):
            coll = parent.__dict__[key] = make(items)
            coll._owner = make_ref(parent)


def _fill(parent: Any, rel: Relationship, populate: bool) -> bool:
    """Whether the joined rows go into the parent's ``rel``: unloaded, or replaced on
    ``populate_existing`` unless a change of it is waiting for the flush."""
    d = parent.__dict__
    if rel.key not in d:
        return True
    if not populate:
        return False
    changes = getattr(d.get(STATE_KEY), "rel_changes", None)
    return not changes or (rel.key not in changes and rel not in changes)
