"""Loading relationships: batched by default, and the loader options.

The ORM's default lazy loading emits one SELECT per object whose relationship is read,
the N+1 pattern its users learn to avoid with ``selectinload`` everywhere. sessionkit
remembers which objects came from the same result (a ``LoadGroup`` on their shared
marker) or were expired by the same event, and the first read of a relationship loads it
for all of them that still lack it, in one ``SELECT ... WHERE fk IN (...)`` per batch of
keys. ``lazy="select"`` keeps the ORM's one-object behaviour.

Every function takes the Connection and the identity map; the Session decides when.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.base import ExecutableOption

from .aliasing import ALIAS_KEY
from .exc import ArgumentError
from .joins import MANY_TO_MANY, MANY_TO_ONE
from .loader import load_rows
from .loading import fetch_plain, in_values, select_by_pks
from .relationships import Relationship
from .relcoll import list_class, new_list
from .reljoin import JOINED, Joins, add_joins, apply_joined, strategy_of
from .state import NO_VALUE, STATE_KEY, InstanceState, Loaded, Tree, get_state

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper

Pair = tuple[Any, InstanceState]
# Keys per SELECT ... IN (...), as batched refresh chunks them.
CHUNK = 500


# -- loader options -----------------------------------------------------------------------


class LoaderOption(ExecutableOption):
    """``selectinload(Author.books)`` and friends, chainable:
    ``selectinload(Author.books).selectinload(Book.reviews)``."""

    _is_has_cache_key = False  # the SQL of the statement does not change

    def __init__(self, path: tuple[tuple[Any, str], ...]) -> None:
        self.path = path

    def _chain(self, strategy: str, attrs: tuple[Any, ...]) -> LoaderOption:
        return LoaderOption(self.path + _steps(strategy, attrs))

    def selectinload(self, *attrs: Any) -> LoaderOption:
        return self._chain("selectin", attrs)

    def raiseload(self, *attrs: Any, sql_only: bool = False) -> LoaderOption:
        return self._chain("raise_on_sql" if sql_only else "raise", attrs)

    def lazyload(self, *attrs: Any) -> LoaderOption:
        return self._chain("select", attrs)

    def joinedload(self, *attrs: Any, innerjoin: bool = False) -> LoaderOption:
        return self._chain(_joined(innerjoin), attrs)

    def __repr__(self) -> str:
        return " -> ".join(f"{s}({a if isinstance(a, str) else a.name})" for a, s in self.path)


def _steps(strategy: str, attrs: tuple[Any, ...]) -> tuple[tuple[Any, str], ...]:
    if not attrs:
        raise ArgumentError(f"{strategy} loader option needs a relationship attribute.")
    out = []
    for attr in attrs:
        if attr != "*" and not isinstance(attr, Relationship):
            raise ArgumentError(
                f"Loader option {strategy!r} takes relationship attributes (Author.books) or "
                f"'*', got {attr!r}."
            )
        out.append((attr, strategy))
    return tuple(out)


def _joined(innerjoin: bool) -> str:
    if innerjoin:
        raise ArgumentError(
            "joinedload(innerjoin=True) is not supported: sessionkit always joins with "
            "LEFT OUTER JOIN, which loads the same objects (the database's planner "
            "treats a join on a NOT NULL foreign key alike). Drop innerjoin=True."
        )
    return JOINED


def selectinload(*attrs: Any) -> LoaderOption:
    """Load the relationship for all objects of the result at query time."""
    return LoaderOption(_steps("selectin", attrs))


def raiseload(*attrs: Any, sql_only: bool = False) -> LoaderOption:
    """Reading the relationship raises instead of emitting SQL."""
    return LoaderOption(_steps("raise_on_sql" if sql_only else "raise", attrs))


def lazyload(*attrs: Any) -> LoaderOption:
    """One SELECT per object when read, as the ORM's default."""
    return LoaderOption(_steps("select", attrs))


def joinedload(*attrs: Any, innerjoin: bool = False) -> LoaderOption:
    """Load the relationship in the same SELECT, through a LEFT OUTER JOIN; a result
    with a joined collection must be ``unique()``-d."""
    return LoaderOption(_steps(_joined(innerjoin), attrs))


def option_tree(mapper: Mapper, options: Sequence[Any]) -> Tree:
    """The statement's loader options that start at ``mapper``, as a tree."""
    tree: Tree = {}
    for opt in options:
        if not isinstance(opt, LoaderOption):
            continue
        first = opt.path[0][0]
        if first != "*" and first.parent is not mapper:
            continue
        node = tree
        for attr, strategy in opt.path:
            key = "*" if attr == "*" else attr.key
            _, sub = node.get(key, (strategy, {}))
            node[key] = (strategy, sub)
            node = sub
    return tree


# -- loading ------------------------------------------------------------------------------


def eager_load(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    mapper: Mapper,
    objs: Iterable[Any],
    tree: Tree,
) -> None:
    """Relationships of ``objs`` that their class or the options load with the query."""
    rels = mapper.relationships
    todo = None
    for key, rel in rels.items():
        if not rel.configured:
            rel.configure()
        strategy, sub = strategy_of(rel, tree)
        if strategy != "selectin":
            continue
        if todo is None:
            todo = _distinct_pairs(objs)
        lacking = [p for p in todo if key not in p[0].__dict__]
        if lacking:
            populate(conn, imap, modified, rel, lacking, sub)


def _distinct_pairs(objs: Iterable[Any]) -> list[Pair]:
    seen: set[int] = set()
    out = []
    for obj in objs:
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        state = get_state(obj)
        if state.key is not None and not state.deleted:
            out.append((obj, state))
    return out


def siblings(imap: IdentityMap, obj: Any, state: Any, rel: Relationship) -> list[Pair]:
    """``obj`` and the other objects of its result or expiry still lacking ``rel``."""
    out: list[Pair] = [(obj, get_state(obj))]
    mapper = rel.parent
    sub = imap.by_mapper.get(mapper)  # type: ignore[arg-type]
    if not sub:
        return out
    key = rel.key
    ref = imap.session_ref
    group = state.group
    expiry = None if group is not None or state.__class__ is Loaded else state.expired_by
    if group is not None:
        candidates: Iterable[weakref.ref[Any]] = [
            r for r in map(sub.get, group.keys) if r is not None
        ]
    elif expiry is not None:
        candidates = list(sub.values())
    else:
        return out
    for obj_ref in candidates:
        other = obj_ref()
        if other is None or other is obj:
            continue
        d = other.__dict__
        if key in d:
            continue
        st = d.get(STATE_KEY)
        if st is None or st.session_ref is not ref or st.deleted:
            continue
        if expiry is not None and (st.__class__ is Loaded or st.expired_by is not expiry):
            continue
        out.append((other, get_state(other)))
    return out


def populate(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    rel: Relationship,
    pairs: list[Pair],
    tree: Tree,
) -> None:
    """Load ``rel`` for every object of ``pairs`` (persistent, lacking it), in batches."""
    parent = rel.parent
    assert parent is not None
    local_attrs = [parent.attr_for_column[c] for c, _ in rel.pairs]
    _fill_local_values(conn, parent, local_attrs, pairs)
    by_value: dict[Any, list[Pair]] = {}
    none_pairs: list[Pair] = []
    single = len(local_attrs) == 1
    pk_index = {a: i for i, a in enumerate(parent.pk_attr_keys)}

    def local(d: dict[str, Any], key: Any, attr: str) -> Any:
        """From the dict, or (an expired primary key) from the identity, not stored."""
        if attr in d:
            return d[attr]
        i = pk_index.get(attr)
        return None if i is None or key is None else key if parent.single_pk else key[i]

    for obj, state in pairs:
        d = obj.__dict__
        k = state.key
        if single:
            value = local(d, k, local_attrs[0])
        else:
            value = tuple(local(d, k, a) for a in local_attrs)
        if value is None or (not single and None in value):
            none_pairs.append((obj, state))
        else:
            by_value.setdefault(value, []).append((obj, state))
    empty = rel.uselist
    for obj, _ in none_pairs:
        obj.__dict__[rel.key] = new_list(rel, obj) if empty else None
    if not by_value:
        return
    if rel.direction == MANY_TO_ONE:
        found = _load_many_to_one(conn, imap, modified, rel, list(by_value), tree)
        for value, members in by_value.items():
            target = found.get(value)
            for obj, _ in members:
                obj.__dict__[rel.key] = (
                    target
                    if not rel.uselist
                    else new_list(rel, obj, () if target is None else (target,))
                )
        return
    make_ref = weakref.ref
    grouped = _load_collections(conn, imap, modified, rel, list(by_value), tree)
    key = rel.key
    make = list_class(rel)
    for value, members in by_value.items():
        items = grouped.get(value, ())
        for obj, _ in members:
            if rel.uselist:
                coll = obj.__dict__[key] = make(items)
                coll._owner = make_ref(obj)
            else:
                obj.__dict__[key] = items[0] if items else None


def _fill_local_values(
    conn: Connection, parent: Mapper, attrs: list[str], pairs: list[Pair]
) -> None:
    """The join's own columns of each object, loaded where expired (batched): a
    primary key comes from the identity."""
    missing = [(o, s) for o, s in pairs if any(a not in o.__dict__ for a in attrs)]
    if not missing:
        return
    if all(a in parent.pk_attr_index for a in attrs):
        return  # the identity has them (populate reads them there)
    keys = [s.key for _, s in missing]
    attr_keys = parent.attr_keys
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        stmt, params = select_by_pks(parent, conn.dialect, chunk)
        rows = fetch_plain(conn.execute(stmt, params))
        by_key = {parent.row_pk(r): r for r in rows}
        for obj, state in missing[start : start + CHUNK]:
            row = by_key.get(state.key)
            if row is None:
                continue
            d = obj.__dict__
            for k, v in zip(attr_keys, row, strict=True):
                if k not in d:
                    d[k] = v
            if state.expired:
                rest = state.expired.difference(attr_keys)
                state.expired = frozenset(rest) if rest else None


def _in_clause(
    columns: Sequence[Any], values: list[Any], dialect: Any
) -> tuple[Any, dict[str, Any] | None]:
    """The WHERE clause selecting ``values`` of ``columns``, and its parameters."""
    if len(columns) == 1:
        clause, param = in_values(columns[0], dialect, values, "rel_values")
        return clause, {"rel_values": param}
    if getattr(dialect, "tuple_in_values", False):
        return tuple_(*columns).in_(values), None
    return or_(*(and_(*(c == v for c, v in zip(columns, vs, strict=True))) for vs in values)), None


def _load_many_to_one(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    rel: Relationship,
    values: list[Any],
    tree: Tree,
) -> dict[Any, Any]:
    """Targets by foreign-key value: from the identity map when the key is the
    target's primary key, the rest in one SELECT per batch."""
    target = rel.target
    remote = [r for _, r in rel.pairs]
    found: dict[Any, Any] = {}
    wanted = []
    for value in values:
        held = rel.held_target(imap, value)
        if held is None:
            wanted.append(value)
        else:
            found[value] = held
    if not wanted:
        return found
    positions = [target.columns.index(c) for c in remote]
    base, joins = _with_joins(select(*target.columns), target, tree, len(target.columns))
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        clause, params = _in_clause(remote, chunk, conn.dialect)
        rows = fetch_plain(conn.execute(base.where(clause), params))
        parts = list(rows) if joins is None else [r[: joins.width] for r in rows]
        objs = load_rows(imap, target, parts, False, modified, tree)
        for row, obj in zip(rows, objs, strict=True):
            found[_row_value(row, positions)] = obj
        _after_load(conn, imap, modified, target, joins, rows, objs, tree)
    return found


def _with_joins(
    base: Select[Any], target: Mapper, tree: Tree, width: int
) -> tuple[Select[Any], Joins | None]:
    """``base`` (selecting ``target``'s table, its columns first) with the joins of
    ``target``'s joined relationships, if any."""
    if not target.relationships:
        return base, None
    joins = add_joins(base, [(0, target, _same, tree)], width)
    return (base, None) if joins is None else (joins.statement, joins)


def _same(column: Any) -> Any:
    return column


def _after_load(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    mapper: Mapper,
    joins: Joins | None,
    rows: Sequence[Sequence[Any]],
    objs: list[Any],
    tree: Tree,
    populate: bool = False,
    position: int = 0,
) -> None:
    """The loads of ``objs``' relationships that come with their query: the joined
    ones from ``rows``, then the selectin ones."""
    if joins is not None:
        for pos, joined in joins.by_position:
            if pos == position:

                def eager(m: Mapper, found: list[Any], sub: Tree) -> None:
                    eager_load(conn, imap, modified, m, found, sub)

                apply_joined(imap, modified, joined, rows, objs, populate, eager)
    eager_load(conn, imap, modified, mapper, objs, tree)


def _row_value(row: Sequence[Any], positions: list[int]) -> Any:
    if len(positions) == 1:
        return row[positions[0]]
    return tuple(row[i] for i in positions)


def _load_collections(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    rel: Relationship,
    values: list[Any],
    tree: Tree,
) -> dict[Any, list[Any]]:
    """Related objects by the parent's join value, in ``order_by`` order."""
    target = rel.target
    width = len(target.columns)
    if rel.direction == MANY_TO_MANY:
        assert rel.secondary is not None
        keycols = [sec for _, sec in rel.pairs]
        onclause = and_(*(tc == sc for sc, tc in rel.secondary_pairs))
        base = select(*target.columns, *keycols).select_from(
            target.table.join(rel.secondary, onclause)
        )
        positions = list(range(width, width + len(keycols)))
    else:
        keycols = [r for _, r in rel.pairs]
        base = select(*target.columns)
        positions = [target.columns.index(c) for c in keycols]
    if rel.order_by:
        base = base.order_by(*rel.order_by)
    base, joins = _with_joins(base, target, tree, len(base.selected_columns))
    sliced = joins is not None or rel.direction == MANY_TO_MANY
    grouped: dict[Any, list[Any]] = {}
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        clause, params = _in_clause(keycols, chunk, conn.dialect)
        rows = fetch_plain(conn.execute(base.where(clause), params))
        parts = [r[:width] for r in rows] if sliced else list(rows)
        objs = load_rows(imap, target, parts, False, modified, tree)
        if joins is not None and joins.collections:
            _group_distinct(grouped, rows, objs, positions)
        elif len(positions) == 1:
            pos = positions[0]
            for row, obj in zip(rows, objs, strict=True):
                found = grouped.get(row[pos])
                if found is None:
                    grouped[row[pos]] = [obj]
                else:
                    found.append(obj)
        else:
            for row, obj in zip(rows, objs, strict=True):
                grouped.setdefault(_row_value(row, positions), []).append(obj)
        _after_load(conn, imap, modified, target, joins, rows, objs, tree)
    return grouped


def _group_distinct(
    grouped: dict[Any, list[Any]],
    rows: Sequence[Sequence[Any]],
    objs: list[Any],
    positions: list[int],
) -> None:
    """Group rows that a joined collection repeats: each member once per parent."""
    seen: set[tuple[Any, int]] = set()
    for row, obj in zip(rows, objs, strict=True):
        value = _row_value(row, positions)
        if (value, id(obj)) not in seen:
            seen.add((value, id(obj)))
            grouped.setdefault(value, []).append(obj)


def strategy_for(obj: Any, rel: Relationship) -> tuple[str, Tree]:
    """The loading strategy of ``rel`` on ``obj``: its query's option, or the default."""
    state = obj.__dict__.get(STATE_KEY)
    group = None if state is None else state.group
    return strategy_of(rel, None if group is None else group.tree)


def load_lazy(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    obj: Any,
    rel: Relationship,
) -> None:
    """An unloaded relationship of a persistent object was read."""
    state = obj.__dict__[STATE_KEY]
    strategy, sub = strategy_for(obj, rel)
    if strategy == "raise" or (strategy == "raise_on_sql" and not _in_map_only(imap, obj, rel)):
        raise rel.raise_error(obj)
    if strategy in ("select", "raise_on_sql"):
        pairs = [(obj, get_state(obj))]
    else:
        pairs = siblings(imap, obj, state, rel)
    populate(conn, imap, modified, rel, pairs, sub)


def eager_by_default(mapper: Mapper) -> bool:
    """Whether a relationship of ``mapper`` loads with the object (``lazy="joined"`` or
    ``"selectin"``)."""
    return any(r.lazy in ("joined", "selectin") for r in mapper.relationships.values())


def from_identity_map(imap: IdentityMap, obj: Any, rel: Relationship) -> bool:
    """A many-to-one whose foreign key is loaded and names an object the identity map
    holds (or is NULL): set it, with no SQL and no autoflush. False otherwise."""
    if rel.direction != MANY_TO_ONE or rel.uselist or strategy_for(obj, rel)[0] == "raise":
        return False
    d = obj.__dict__
    value = rel.foreign_key(d)
    if value is NO_VALUE:
        return False
    found = None if _null(value) else rel.held_target(imap, value)
    if found is None and not _null(value):
        return False
    d[rel.key] = found
    return True


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, tuple) and None in value)


def _in_map_only(imap: IdentityMap, obj: Any, rel: Relationship) -> bool:
    """raiseload(sql_only=True): a many-to-one found in the identity map is allowed."""
    if rel.direction != MANY_TO_ONE:
        return False
    value = rel.foreign_key(obj.__dict__)
    if value is NO_VALUE:
        return False
    return _null(value) or rel.held_target(imap, value) is not None


# -- statements of the Session ------------------------------------------------------------

Plan = list[tuple["Mapper | None", int, "str | None"]]
# The option tree of each class, what runs on each batch of built objects (given them
# and the rows), and the joins added to the statement (None: it runs as it is).
Prepared = tuple[dict[Any, Tree], Any, Joins | None]


def prepare(
    conn: Connection,
    imap: IdentityMap,
    modified: dict[InstanceState, Any],
    plan: Plan,
    statement: Select[Any],
    populate: bool,
    rewritable: bool,
) -> Prepared | None:
    """For a select of mapped classes: the option tree of each class with relationships,
    the joins of its joined ones, and what runs on each batch of built objects (the
    query-time loads). None when no class of the result has relationships and no option
    is given: nothing to do. ``rewritable``: False for ``from_statement()``, whose SQL is
    the user's."""
    options = [o for o in statement._with_options if isinstance(o, LoaderOption)]
    mappers = [m for m, _, _ in plan]
    if options:
        roots = {m for m in mappers if m is not None}
        for opt in options:
            first = opt.path[0][0]
            if first != "*" and first.parent not in roots:
                names = ", ".join(sorted(m.class_.__name__ for m in roots))
                raise ArgumentError(
                    f"Mapped attribute '{first.name}' does not apply to any of the root "
                    f"entities in this query ({names}); start the option at one of them."
                )
    elif not any(m is not None and m.relationships for m in mappers):
        return None
    trees = {m: option_tree(m, options) for m in mappers if m is not None and m.relationships}
    if not trees:
        return None
    positions = [(i, m, trees[m]) for i, m in enumerate(mappers) if m in trees]
    width = sum(w for _, w, _ in plan)
    roots_ = [(i, m, _columns_of(statement, i), t) for i, m, t in positions]
    joins = add_joins(statement, roots_, width)
    if joins is not None and not rewritable:
        names = ", ".join(j.rel.name for _, js in joins.by_position for j in js)
        raise ArgumentError(
            f"from_statement() runs its statement as written, so it cannot join {names} "
            f"(joinedload() or lazy='joined'); use selectinload() for them."
        )
    single = len(plan) == 1

    def after(out: list[Any], rows: Sequence[Sequence[Any]]) -> None:
        for i, mapper, tree in positions:
            objs = out if single else [row[i] for row in out]
            _after_load(conn, imap, modified, mapper, joins, rows, objs, tree, populate, i)

    return trees, after, joins


def _columns_of(statement: Select[Any], position: int) -> Any:
    """The statement's column for each mapped column of the entity at ``position``."""
    entity = statement._raw_columns[position]._annotations.get(ALIAS_KEY)
    if entity is None:
        return _same
    index = {c: i for i, c in enumerate(entity.mapper.columns)}
    columns = entity.columns
    return lambda c: columns[index[c]]
