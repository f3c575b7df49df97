"""``relationship()``: the declaration, how it joins two tables, and its descriptor.

A relationship is configured lazily, on first use, because its target may be named by a
string before that class exists. Configuring it finds the pairs of columns that join the
two tables (from the foreign keys, ``foreign_keys=``, ``primaryjoin=`` or the
``secondary`` table), which side holds the foreign key (many-to-one, one-to-many or
many-to-many) and the ``order_by`` columns. Loading is ``relloading.py``'s job; the
descriptor here only asks the object's Session for it.

Loaded values live in the instance ``__dict__`` under the attribute's name, like
columns: a read of a loaded relationship never runs sessionkit code (the descriptor is a
non-data descriptor).
"""

from __future__ import annotations

import types
import typing
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Column, ColumnElement, Table
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList

from .exc import ArgumentError, DetachedInstanceError, InvalidRequestError
from .state import MAPPER_ATTR, STATE_KEY, Loaded, state_str

if TYPE_CHECKING:
    from .mapping import Mapper

MANY_TO_ONE: Final = "many-to-one"
ONE_TO_MANY: Final = "one-to-many"
MANY_TO_MANY: Final = "many-to-many"

# sessionkit's default: a read loads the attribute for every object of the same result or
# expiry still lacking it, in one SELECT per batch.
LAZY_BATCH: Final = "batch"
LAZY_STRATEGIES: Final = frozenset({LAZY_BATCH, "select", "selectin", "raise", "raise_on_sql"})
_LAZY_ALIASES = {True: "select", "True": "select"}
_REFUSED_LAZY = {
    "joined": "joined eager loading is not available yet; use lazy='selectin' (one extra "
    "SELECT per relationship at query time) or the default batched loading",
    "subquery": "use lazy='selectin' instead, which the ORM also recommends over 'subquery'",
    "dynamic": "dynamic relationships are not mapped by sessionkit; query the related class "
    "with select() and a WHERE on the foreign key",
    "write_only": "write-only relationships are not mapped by sessionkit; query the related "
    "class with select() and a WHERE on the foreign key",
    "noload": "'noload' is legacy in the ORM; use lazy='raise' to forbid loading",
    False: "lazy=False means joined eager loading, which is not available yet; use lazy='selectin'",
}
# Arguments of the ORM's relationship() that this slice does not implement; each refused
# by name so that nothing is silently ignored.
_REFUSED_ARGS = frozenset(
    {
        "backref",
        "collection_class",
        "post_update",
        "secondaryjoin",
        "join_depth",
        "query_class",
        "sync_backref",
        "enable_typechecks",
        "distinct_target_key",
        "omit_join",
        "info",
        "doc",
        "comparator_factory",
        "overlaps",
        "bake_queries",
        "single_parent",
        "active_history",
        "innerjoin",
        "load_on_pending",
        "cascade_backrefs",
        "passive_updates",
        "order_by_desc",
        "primaryjoin_expr",
        "lazy_loaded_from",
        "default",
        "default_factory",
        "init",
        "repr",
        "compare",
        "kw_only",
        "hash",
        "dataclass_metadata",
    }
)
_CASCADES = frozenset(
    {"save-update", "merge", "expunge", "delete", "delete-orphan", "refresh-expire", "all", "none"}
)

# Every mapped class by name, weakly: how ``relationship("Book")`` and
# ``order_by="Book.id"`` find their class (the one sharing the owner's MetaData).
_classes_by_name: dict[str, weakref.WeakSet[type]] = {}


def register_class(cls: type) -> None:
    _classes_by_name.setdefault(cls.__name__, weakref.WeakSet()).add(cls)


class Relationship:
    """One ``relationship()`` declaration, configured on first use."""

    def __init__(
        self,
        argument: Any = None,
        secondary: Any = None,
        *,
        back_populates: str | None = None,
        uselist: bool | None = None,
        foreign_keys: Any = None,
        primaryjoin: Any = None,
        remote_side: Any = None,
        order_by: Any = False,
        lazy: Any = LAZY_BATCH,
        viewonly: bool = False,
        cascade: str = "save-update, merge",
        passive_deletes: bool | str = False,
        **refused: Any,
    ) -> None:
        if refused:
            names = ", ".join(sorted(refused))
            known = sorted(refused.keys() & _REFUSED_ARGS)
            what = "is not supported" if known else "is not an argument of relationship()"
            raise ArgumentError(
                f"relationship() argument(s) {names} {what} by sessionkit; nothing would "
                f"honour {'it' if len(refused) == 1 else 'them'}. Remove "
                f"{'it' if len(refused) == 1 else 'them'}"
                + (
                    " (back_populates= on both sides replaces backref=)"
                    if "backref" in refused
                    else ""
                )
                + "."
            )
        lazy = _LAZY_ALIASES.get(lazy, lazy)
        if lazy in _REFUSED_LAZY:
            raise ArgumentError(f"relationship(lazy={lazy!r}): {_REFUSED_LAZY[lazy]}.")
        if lazy not in LAZY_STRATEGIES:
            raise ArgumentError(
                f"relationship(lazy={lazy!r}) is not a loading strategy; use one of "
                f"{', '.join(sorted(map(repr, LAZY_STRATEGIES)))}."
            )
        parts = {p.strip() for p in cascade.split(",") if p.strip()}
        unknown = parts - _CASCADES
        if unknown:
            raise ArgumentError(
                f"relationship(cascade={cascade!r}): unknown cascade option(s) "
                f"{sorted(unknown)}; the options are {sorted(_CASCADES)}."
            )
        self.argument = argument
        self.secondary_arg = secondary
        self.back_populates = back_populates
        self.uselist_arg = uselist
        self.foreign_keys_arg = foreign_keys
        self.primaryjoin_arg = primaryjoin
        self.remote_side_arg = remote_side
        self.order_by_arg = order_by
        self.lazy: str = lazy
        self.viewonly = viewonly
        self.cascade = cascade
        self.passive_deletes = passive_deletes
        self.key = ""
        self.parent: Mapper | None = None
        self.configured = False
        # Set by configure().
        self.target: Mapper
        self.direction: str
        self.uselist: bool
        self.secondary: Table | None = None
        # (local column, remote column) pairs: local on the parent's table; remote on the
        # target's table, or for many-to-many on the secondary table. Many-to-many also
        # has (secondary column, target column) pairs.
        self.pairs: list[tuple[Column[Any], Column[Any]]] = []
        self.secondary_pairs: list[tuple[Column[Any], Column[Any]]] = []
        self.order_by: list[ColumnElement[Any]] = []

    # -- declaration -------------------------------------------------------------------

    def set_parent(self, mapper: Mapper, key: str) -> None:
        if self.parent is not None:
            raise ArgumentError(
                f"relationship() object for {mapper.class_.__name__}.{key} is already the "
                f"attribute {self.parent.class_.__name__}.{self.key}; call relationship() once "
                f"per attribute."
            )
        self.parent = mapper
        self.key = key

    @property
    def name(self) -> str:
        owner = "?" if self.parent is None else self.parent.class_.__name__
        return f"{owner}.{self.key}"

    # -- descriptor --------------------------------------------------------------------

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        # Only reached when the key is not in obj.__dict__ (non-data descriptor).
        d = obj.__dict__
        state: Any = d.get(STATE_KEY)
        if not self.configured:
            self.configure()
        if state is None or (state.__class__ is not Loaded and state.key is None):
            # Transient or pending: nothing to load; an empty collection is kept, as the
            # ORM keeps one.
            if self.uselist:
                value: list[Any] = []
                d[self.key] = value
                return value
            return None
        ref = state.session_ref
        session = None if ref is None else ref()
        if session is None:
            lazy = self.lazy
            group = state.group
            if group is not None:
                found = group.tree.get(self.key) or group.tree.get("*")
                lazy = lazy if found is None else found[0]
            raise self.raise_error(obj) if lazy == "raise" else self.detached_error(obj)
        session._load_relationship(obj, self)
        return d.get(self.key)

    def detached_error(self, obj: object) -> DetachedInstanceError:
        return DetachedInstanceError(
            f"Parent instance {state_str(obj)} is not bound to a Session; lazy load "
            f"operation of attribute {self.key!r} cannot proceed. {self.name} was not loaded "
            f"(or was expired) before the object left its Session. Load it while attached "
            f"(read it, or select(...).options(selectinload({self.name}))), or add the "
            f"object to a Session again before reading it."
        )

    def raise_error(self, obj: object) -> InvalidRequestError:
        return InvalidRequestError(
            f"'{self.name}' is not available due to lazy='raise': reading it on "
            f"{state_str(obj)} would emit SQL. Load it with the query "
            f"(select(...).options(selectinload({self.name}))), or relax the strategy."
        )

    def write_error(self, obj: object) -> InvalidRequestError:
        if self.direction == MANY_TO_ONE:
            fix = "set " + ", ".join(
                f"{self.parent_class_name()}.{self.attr_for(c)}" for c, _ in self.pairs
            )
        elif self.direction == ONE_TO_MANY:
            target = self.target
            cols = ", ".join(
                f"{target.class_.__name__}.{target.attr_for_column.get(r, r.key)}"
                for _, r in self.pairs
            )
            fix = f"set {cols} on the related objects"
        else:
            assert self.secondary is not None
            fix = f"insert or delete the rows of table {self.secondary.name!r}"
        whose = "a loaded collection" if isinstance(obj, list) else state_str(obj)
        return InvalidRequestError(
            f"Cannot change relationship {self.name} of {whose}: sessionkit relationships "
            f"are read-only for now (a change through them would not be flushed). Instead, "
            f"{fix}, then session.expire(obj, [{self.key!r}]) or query again."
        )

    def parent_class_name(self) -> str:
        return "?" if self.parent is None else self.parent.class_.__name__

    def attr_for(self, column: Column[Any]) -> str:
        assert self.parent is not None
        return self.parent.attr_for_column.get(column, column.key)

    # -- configuration -----------------------------------------------------------------

    def configure(self) -> None:
        """Resolve the target and the join; raises ArgumentError naming the relationship."""
        if self.configured:
            return
        parent = self.parent
        if parent is None:
            raise InvalidRequestError(
                "relationship() used outside a mapped class; declare it as a class attribute "
                "of a mapped class, or in map_imperatively(..., properties={...})."
            )
        target_cls = self._resolve(self.argument, "argument")
        target = target_cls.__dict__.get(MAPPER_ATTR) if isinstance(target_cls, type) else None
        if target is None:
            raise ArgumentError(
                f"relationship {self.name}: its target {target_cls!r} is not a class mapped by "
                f"sessionkit; pass a mapped class or its name."
            )
        self.target = target
        secondary = self._resolve(self.secondary_arg, "secondary")
        if secondary is not None and not isinstance(secondary, Table):
            raise ArgumentError(
                f"relationship {self.name}: secondary must be a Table, got {secondary!r}."
            )
        self.secondary = secondary
        foreign = self._column_set(self.foreign_keys_arg, "foreign_keys")
        remote = self._column_set(self.remote_side_arg, "remote_side")
        if secondary is not None:
            self._configure_secondary(secondary, foreign)
        elif self.primaryjoin_arg is not None:
            self._configure_primaryjoin(foreign, remote)
        else:
            self._configure_foreign_keys(foreign, remote)
        uselist = self.uselist_arg
        if uselist is None:
            uselist = self.direction != MANY_TO_ONE
        self.uselist = uselist
        self.order_by = self._order_by()
        self.configured = True
        if self.back_populates is not None:
            other = target.relationships.get(self.back_populates)
            if other is None:
                raise ArgumentError(
                    f"relationship {self.name}: back_populates={self.back_populates!r} names "
                    f"no relationship of {target.class_.__name__}; its relationships are "
                    f"{sorted(target.relationships) or 'none'}."
                )

    def _resolve(self, value: Any, what: str) -> Any:
        if isinstance(value, str):
            return self._resolve_name(value, what)
        if callable(value) and not isinstance(value, type) and not isinstance(value, Table):
            return self._resolve(value(), what)
        return value

    def _namespace(self) -> dict[str, Any]:
        assert self.parent is not None
        metadata = self.parent.table.metadata
        names: dict[str, Any] = {}
        for name, classes in _classes_by_name.items():
            for cls in classes:
                mapper = cls.__dict__.get(MAPPER_ATTR)
                if mapper is not None and mapper.table.metadata is metadata:
                    names[name] = cls
        return names

    def _resolve_name(self, text: str, what: str) -> Any:
        assert self.parent is not None
        metadata = self.parent.table.metadata
        if text in metadata.tables and what == "secondary":
            return metadata.tables[text]
        namespace = self._namespace()
        try:
            return eval(text, {"__builtins__": {}}, namespace)
        except Exception as err:
            raise ArgumentError(
                f"relationship {self.name}: cannot resolve {what}={text!r} ({err}); it must "
                f"name a class mapped in the same MetaData (known: {sorted(namespace)})"
                + (" or a table of that MetaData" if what == "secondary" else "")
                + "."
            ) from err

    def _column_set(self, value: Any, what: str) -> set[Column[Any]]:
        value = self._resolve(value, what)
        if value is None:
            return set()
        items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        out: set[Column[Any]] = set()
        for item in items:
            item = self._resolve(item, what)
            column = _base_column(item)
            if column is None:
                raise ArgumentError(
                    f"relationship {self.name}: {what} must name columns, got {item!r}."
                )
            out.add(column)
        return out

    def _configure_foreign_keys(self, foreign: set[Column[Any]], remote: set[Column[Any]]) -> None:
        assert self.parent is not None
        local_t, target_t = self.parent.table, self.target.table

        def fks(table: Table, referred: Table) -> list[tuple[Column[Any], Column[Any]]]:
            out = []
            for fk in table.foreign_keys:
                if fk.column.table is referred and (not foreign or fk.parent in foreign):
                    out.append((fk.parent, fk.column))
            return out

        to_target = fks(local_t, target_t)  # local FK -> target (many-to-one)
        to_local = fks(target_t, local_t) if target_t is not local_t else to_target
        if target_t is local_t:
            # Self-referential: remote_side names the "one" side's columns for a
            # many-to-one (Node.parent, remote_side=Node.id); otherwise one-to-many.
            if not to_target:
                raise self._no_join()
            if remote and all(ref in remote for _, ref in to_target):
                self.direction = MANY_TO_ONE
                self.pairs = [(fkc, ref) for fkc, ref in to_target]
            else:
                self.direction = ONE_TO_MANY
                self.pairs = [(ref, fkc) for fkc, ref in to_target]
            return
        if to_target and to_local:
            raise ArgumentError(
                f"relationship {self.name}: tables {local_t.name!r} and {target_t.name!r} have "
                f"foreign keys to each other; name the ones this relationship uses with "
                f"foreign_keys=[...]."
            )
        if to_target:
            self.direction = MANY_TO_ONE
            self.pairs = _single_path(self.name, to_target)
        elif to_local:
            self.direction = ONE_TO_MANY
            self.pairs = [(ref, fkc) for fkc, ref in _single_path(self.name, to_local)]
        else:
            raise self._no_join()

    def _no_join(self) -> ArgumentError:
        assert self.parent is not None
        return ArgumentError(
            f"Could not determine join condition between parent/child tables on "
            f"relationship {self.name} - there are no foreign keys linking these tables "
            f"({self.parent.table.name!r}, {self.target.table.name!r}). Add a ForeignKey to "
            f"one of them, or pass primaryjoin= (with foreign_keys=)."
        )

    def _configure_primaryjoin(self, foreign: set[Column[Any]], remote: set[Column[Any]]) -> None:
        assert self.parent is not None
        expr = self._resolve(self.primaryjoin_arg, "primaryjoin")
        raw = _equalities(expr, self.name)
        local_t, target_t = self.parent.table, self.target.table
        if not foreign:
            foreign = {c for a, b in raw for c in (a, b) if c.foreign_keys}
        pairs_m2o, pairs_o2m = [], []
        for a, b in raw:
            if local_t is target_t:
                # Self-referential: remote_side says which column is the target's.
                side = remote or foreign  # without remote_side: one-to-many
                x, y = (a, b) if b in side else (b, a)
            elif a.table is local_t and b.table is target_t:
                x, y = a, b
            elif b.table is local_t and a.table is target_t:
                x, y = b, a
            else:
                raise ArgumentError(
                    f"relationship {self.name}: primaryjoin compares {a} and {b}, which are "
                    f"not columns of {local_t.name!r} and {target_t.name!r}."
                )
            if x in foreign and y not in foreign:
                pairs_m2o.append((x, y))
            elif y in foreign and x not in foreign:
                pairs_o2m.append((x, y))
        if pairs_m2o and not pairs_o2m:
            self.direction, self.pairs = MANY_TO_ONE, pairs_m2o
        elif pairs_o2m and not pairs_m2o:
            self.direction, self.pairs = ONE_TO_MANY, pairs_o2m
        else:
            raise ArgumentError(
                f"relationship {self.name}: cannot tell which side of primaryjoin "
                f"{expr} holds the foreign key; pass foreign_keys=[...] (and remote_side= "
                f"for a self-referential relationship)."
            )

    def _configure_secondary(self, secondary: Table, foreign: set[Column[Any]]) -> None:
        assert self.parent is not None
        local_t, target_t = self.parent.table, self.target.table
        to_local = [
            (fk.column, fk.parent)
            for fk in secondary.foreign_keys
            if fk.column.table is local_t and (not foreign or fk.parent in foreign)
        ]
        to_target = [
            (fk.parent, fk.column)
            for fk in secondary.foreign_keys
            if fk.column.table is target_t and (not foreign or fk.parent in foreign)
        ]
        if local_t is target_t:
            raise ArgumentError(
                f"relationship {self.name}: a self-referential many-to-many needs "
                f"primaryjoin/secondaryjoin, which sessionkit does not map yet."
            )
        if not to_local or not to_target:
            raise ArgumentError(
                f"relationship {self.name}: the secondary table {secondary.name!r} needs "
                f"foreign keys to both {local_t.name!r} and {target_t.name!r}."
            )
        self.direction = MANY_TO_MANY
        self.pairs = to_local
        self.secondary_pairs = to_target

    def _order_by(self) -> list[ColumnElement[Any]]:
        value = self._resolve(self.order_by_arg, "order_by")
        if value is False or value is None:
            return []
        items = value if isinstance(value, (list, tuple)) else [value]
        out: list[ColumnElement[Any]] = []
        for item in items:
            item = self._resolve(item, "order_by")
            if not isinstance(item, ColumnElement):
                raise ArgumentError(
                    f"relationship {self.name}: order_by must be columns or column "
                    f"expressions, got {item!r}."
                )
            out.append(item)
        return out

    def __repr__(self) -> str:
        return f"<relationship {self.name}>"


def _base_column(item: Any) -> Column[Any] | None:
    if isinstance(item, Column):
        return item
    column = getattr(item, "column", None)  # a mapped_column() named in the class body
    if isinstance(column, Column):
        return column
    inner = getattr(item, "__clause_element__", None)
    if inner is not None:
        return _base_column(inner())
    return None


def _single_path(
    name: str, pairs: list[tuple[Column[Any], Column[Any]]]
) -> list[tuple[Column[Any], Column[Any]]]:
    """One foreign key constraint's columns, or the error the ORM gives for two paths."""
    constraints = {next(iter(fkc.foreign_keys)).constraint for fkc, _ in pairs}
    if len(constraints) > 1:
        cols = ", ".join(f"{c.table.name}.{c.name}" for c, _ in pairs)
        raise ArgumentError(
            f"Could not determine join condition between parent/child tables on "
            f"relationship {name} - there are multiple foreign key paths linking the tables "
            f"({cols}). Specify the 'foreign_keys' argument, providing a list of those "
            f"columns which should be counted as containing a foreign key reference to the "
            f"parent table."
        )
    return pairs


def _equalities(expr: Any, name: str) -> list[tuple[Column[Any], Column[Any]]]:
    """``a == b AND c == d`` as column pairs; anything else is refused."""
    if isinstance(expr, BooleanClauseList) and expr.operator is operators.and_:
        return [p for clause in expr.clauses for p in _equalities(clause, name)]
    if isinstance(expr, BinaryExpression) and expr.operator is operators.eq:
        left, right = _base_column(expr.left), _base_column(expr.right)
        if left is not None and right is not None:
            return [(left, right)]
    raise ArgumentError(
        f"relationship {name}: primaryjoin {expr} is not supported; sessionkit maps joins "
        f"made of column == column comparisons joined by and_()."
    )


_COLLECTIONS = frozenset({"list", "List", "typing.List", "set", "Set", "typing.Set"})


def _strip(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return _strip(text[1:-1])
    return text


def target_from_annotation(annotation: Any) -> tuple[Any, bool] | None:
    """``Mapped[list["Book"]]`` -> ("Book", True); ``Mapped["Author | None"]`` ->
    ("Author", False); None if the annotation names no class."""
    if annotation is None:
        return None
    if not isinstance(annotation, str):
        args = typing.get_args(annotation)
        if not args:
            return None
        inner: Any = args[0]
        collection = typing.get_origin(inner) in (list, set)
        if collection:
            inner = typing.get_args(inner)[0]
        if typing.get_origin(inner) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(inner) if a is not type(None)]
            inner = rest[0] if len(rest) == 1 else None
        if isinstance(inner, typing.ForwardRef):
            inner = inner.__forward_arg__
        if isinstance(inner, str):
            return _from_text(inner, collection)
        return (inner, collection) if isinstance(inner, type) else None
    head, _, inner_text = _strip(annotation).partition("[")
    if not inner_text.endswith("]") or head.split(".")[-1] != "Mapped":
        return None
    return _from_text(inner_text[:-1], False)


def _from_text(text: str, collection: bool) -> tuple[Any, bool] | None:
    text = _strip(text)
    head, _, rest = text.partition("[")
    if rest.endswith("]") and head in _COLLECTIONS:
        collection, text = True, _strip(rest[:-1])
    elif rest.endswith("]") and head in ("Optional", "typing.Optional"):
        text = _strip(rest[:-1])
    parts = [_strip(p) for p in text.split("|")]
    parts = [p for p in parts if p not in ("None", "NoneType")]
    if len(parts) != 1 or not parts[0]:
        return None
    return parts[0], collection


def relationship(argument: Any = None, secondary: Any = None, **kw: Any) -> Any:
    """Declare a relationship to another mapped class (the ORM's arguments)."""
    return Relationship(argument, secondary, **kw)


def install(
    mapper: Mapper, rels: dict[str, Relationship], annotations: dict[str, Any] | None = None
) -> None:
    """Put relationships on a mapped class (its descriptors and its mapper's table);
    ``annotations`` give the target and collection-ness where the call does not."""
    for key, rel in rels.items():
        found = target_from_annotation((annotations or {}).get(key))
        if found is not None:
            if rel.argument is None:
                rel.argument = found[0]
            if rel.uselist_arg is None:
                rel.uselist_arg = found[1]
        elif rel.argument is None:
            raise ArgumentError(
                f"relationship {mapper.class_.__name__}.{key} names no target class; pass it "
                f"(relationship('Book')) or annotate the attribute "
                f"({key}: Mapped[list['Book']] = relationship())."
            )
        if key in mapper.attr_index:
            raise ArgumentError(
                f"{mapper.class_.__name__}.{key} is both a column and a relationship; name "
                f"the relationship differently."
            )
        rel.set_parent(mapper, key)
        type.__setattr__(mapper.class_, key, rel)
    mapper.add_relationships(rels)


def iter_relationships(values: Iterable[tuple[str, Any]]) -> dict[str, Relationship]:
    return {k: v for k, v in values if isinstance(v, Relationship)}


Lookup = Callable[[Sequence[Any]], Any]
