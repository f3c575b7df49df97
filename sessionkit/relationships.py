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

import weakref
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Column, ColumnElement, Table

from .exc import ArgumentError, DetachedInstanceError, InvalidRequestError
from .joins import (
    MANY_TO_MANY,
    MANY_TO_ONE,
    ONE_TO_MANY,
    base_column,
    configure_foreign_keys,
    configure_primaryjoin,
    configure_secondary,
)
from .relcoll import changed, child_state, key_values, link, new_list, unlink
from .state import (
    MAPPER_ATTR,
    NO_VALUE,
    STATE_KEY,
    Loaded,
    state_str,
)

if TYPE_CHECKING:
    from .mapping import Mapper


# sessionkit's default: a read loads the attribute for every object of the same result or
# expiry still lacking it, in one SELECT per batch.
LAZY_BATCH: Final = "batch"
LAZY_STRATEGIES: Final = frozenset(
    {LAZY_BATCH, "select", "selectin", "joined", "raise", "raise_on_sql"}
)
_LAZY_ALIASES = {True: "select", "True": "select", False: "joined", "False": "joined"}
_REFUSED_LAZY = {
    "subquery": "use lazy='selectin' instead, which the ORM also recommends over 'subquery'",
    "dynamic": "dynamic relationships are not mapped by sessionkit; query the related class "
    "with select() and a WHERE on the foreign key",
    "write_only": "write-only relationships are not mapped by sessionkit; query the related "
    "class with select() and a WHERE on the foreign key",
    "noload": "'noload' is legacy in the ORM; use lazy='raise' to forbid loading",
}
# Arguments of the ORM's relationship() that sessionkit does not implement; each refused
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
        if "all" in parts:
            parts |= {"save-update", "merge", "refresh-expire", "expunge", "delete"}
        self.cascades: frozenset[str] = frozenset() if "none" in parts else frozenset(parts)
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
                value = new_list(self, obj)
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
            f"Cannot change relationship {self.name} of {whose}: it is declared "
            f"viewonly=True, so the flush would not write the change. Instead, "
            f"{fix}, then session.expire(obj, [{self.key!r}]) or query again."
        )

    def set_value(self, obj: Any, value: Any, cascade: bool = True) -> None:
        """``book.author = ann``: kept on the object; the foreign key follows at the next
        flush (flush.py), the other side's loaded collection at once, and ``ann`` joins
        the book's session (cascade save-update). ``author.books = [...]`` replaces the
        collection: what left it and what joined it are handled as by the list."""
        if not self.configured:
            self.configure()
        if self.viewonly:
            raise self.write_error(obj)
        if self.direction != MANY_TO_ONE:
            self._replace(obj, value)
            return
        if self.uselist:
            raise InvalidRequestError(
                f"Cannot assign {self.name}: a many-to-one declared uselist=True is not "
                f"written by sessionkit; drop uselist=True, or set the foreign key columns."
            )
        if value is not None and not isinstance(value, self.target.class_):
            raise InvalidRequestError(
                f"Cannot assign {value!r} to {self.name} of {state_str(obj)}: it takes a "
                f"{self.target.class_.__name__} (or None), got a {type(value).__name__}."
            )
        d = obj.__dict__
        assert self.parent is not None
        if cascade and value is not None and "save-update" in self.cascades:
            refuse_deleted(obj, value)
        state = child_state(obj, self.parent)
        old = d.get(self.key, NO_VALUE)
        if old is value:
            return
        back = self.back_relationship()
        left = False
        if back is not None:
            if old is NO_VALUE:
                old = self._held_by_key(obj, state)  # never read: found by its key
                if old is value:  # the object its key names already: nothing changes
                    d[self.key] = value
                    return
            if old is not None and old is not NO_VALUE:
                left = unlink(old.__dict__, back, obj)
        d[self.key] = value
        session = changed(obj, state, self.key, True)
        orphaned = left and value is None and back is not None and "delete-orphan" in back.cascades
        if orphaned and session is not None:  # out of its parent's loaded collection
            session._tracker.orphans.append((obj, back))  # an orphan, as by remove()
        if back is not None and value is not None:
            link(value, back, obj)
            if session is None and cascade and back.uselist:
                _note_stray(value, back, obj, self.key)
        if cascade and session is not None and value is not None and "save-update" in self.cascades:
            cascade_add(session, value, obj)

    def check_members(self, coll: Any, items: list[Any], owner: Any = None) -> None:
        """Before a collection changes: members of the right class, none the cascade
        would have to refuse (then the collection is left as it was, as in the ORM)."""
        if not self.configured:
            self.configure()
        if self.viewonly:
            raise self.write_error(coll)
        cls = self.target.class_
        for item in items:
            if not isinstance(item, cls):
                raise InvalidRequestError(
                    f"Cannot add {item!r} to {self.name}: it holds {cls.__name__} objects, "
                    f"got a {type(item).__name__}."
                )
        if owner is None and coll is not None:
            ref = getattr(coll, "_owner", None)
            owner = None if ref is None else ref()
        if owner is not None and "save-update" in self.cascades:
            for item in items:
                refuse_deleted(owner, item)

    def _links_changed(
        self,
        owner: Any,
        ostate: Any,
        session: Any,
        back: Relationship | None,
        added: list[Any],
        removed: list[Any],
        members: Any,
    ) -> None:
        """Many-to-many: the owner records which association rows to INSERT or DELETE
        (an add and a remove of the same pair cancel); the other side's loaded collection
        follows in Python."""
        changes = ostate.rel_changes
        if changes is None:
            changes = ostate.rel_changes = {}
        links: dict[int, tuple[str, Any]] = changes.setdefault(self, {})
        for item, op in [(x, "remove") for x in removed] + [(x, "add") for x in added]:
            if op == "remove" and any(item is m for m in members):
                continue
            earlier = links.pop(id(item), None)
            if earlier is None or earlier[0] == op:
                links[id(item)] = (op, item)
            if back is not None:
                if op == "add":
                    link(item, back, owner)
                else:
                    unlink(item.__dict__, back, owner)
            if op == "add" and session is not None and "save-update" in self.cascades:
                cascade_add(session, item, owner)

    def _replace(self, obj: Any, value: Any) -> None:
        """``author.books = [...]`` (or a one-to-one's ``author.profile = p``)."""
        if value is None:
            items = []  # del author.books: emptied, as in the ORM
        else:
            items = list(value) if self.uselist else [value]
        self.check_members(None, items, obj)
        d = obj.__dict__
        state = d.get(STATE_KEY)
        attached = state is not None and (state.__class__ is Loaded or state.key is not None)
        old = getattr(obj, self.key) if attached or self.key in d else None
        old_items = list(old) if isinstance(old, list) else ([] if old is None else [old])
        d[self.key] = new_list(self, obj, items) if self.uselist else value
        self.collection_changed(
            obj,
            items,
            [x for x in items if not any(x is o for o in old_items)],
            [o for o in old_items if not any(o is x for x in items)],
        )

    def collection_changed(
        self, owner: Any, members: Any, added: list[Any], removed: list[Any]
    ) -> None:
        """Objects joined or left ``owner``'s collection: the other side follows, the
        flush will write their foreign keys, added ones join the owner's session, and
        with delete-orphan the flush deletes those left without a parent."""
        back = self.back_relationship()
        assert self.parent is not None
        ostate = child_state(owner, self.parent)
        session = None if ostate.session_ref is None else ostate.session_ref()
        if ostate.key is not None and not ostate.modified:
            ostate.modified = True  # dirty, as the ORM reports it; its own UPDATE is empty
            if session is not None:
                session._on_modified(owner, ostate)
        if self.direction == MANY_TO_MANY:
            self._links_changed(owner, ostate, session, back, added, removed, members)
            return
        for item in removed:
            if any(item is m for m in members):
                continue
            d = item.__dict__
            if back is not None and back.direction == MANY_TO_ONE:
                if d.get(back.key, owner) is owner:
                    back.set_value(item, None, cascade=False)
            else:
                changed(item, child_state(item, self.target), self, None)
            if "delete-orphan" in self.cascades and session is not None:
                session._tracker.orphans.append((item, self))
        for item in added:
            if back is not None and back.direction == MANY_TO_ONE:
                back.set_value(item, owner, cascade=False)
            else:
                changed(item, child_state(item, self.target), self, owner)
            if session is not None and "save-update" in self.cascades:
                cascade_add(session, item, owner)

    def _held_by_key(self, obj: Any, state: Any) -> Any:
        session = None if state.session_ref is None else state.session_ref()
        value = self.foreign_key(obj.__dict__)
        if session is None or value is NO_VALUE or value is None:
            return NO_VALUE
        found = self.held_target(session.identity_map, value)
        return NO_VALUE if found is None else found

    def foreign_key(self, d: dict[str, Any]) -> Any:
        """A many-to-one's foreign-key value in instance dict ``d``: a scalar for one
        column, a tuple otherwise; NO_VALUE when a column is not loaded."""
        assert self.parent is not None
        attrs = [self.parent.attr_for_column[c] for c, _ in self.pairs]
        if any(a not in d for a in attrs):
            return NO_VALUE
        return d[attrs[0]] if len(attrs) == 1 else tuple(d[a] for a in attrs)

    def held_target(self, imap: Any, value: Any) -> Any:
        """The object a many-to-one's foreign-key ``value`` names, if the identity map
        holds it (and it is not deleted); None otherwise, or when the foreign key does
        not refer to the target's primary key."""
        order = self.pk_order
        if order is None:
            return None
        key = value if self.target.single_pk else tuple(value[i] for i in order)
        ref = (imap.by_mapper.get(self.target) or {}).get(key)
        found = None if ref is None else ref()
        if found is None or found.__dict__[STATE_KEY].deleted:
            return None
        return found

    def remote_values(self, target: Any) -> list[Any] | None:
        """The foreign-key values a many-to-one's ``target`` gives (see key_values)."""
        return key_values(target, self.target, [r for _, r in self.pairs], self.name)

    def local_values(self, parent: Any) -> list[Any] | None:
        """The foreign-key values a one-to-many's ``parent`` gives its members."""
        assert self.parent is not None
        return key_values(parent, self.parent, [c for c, _ in self.pairs], self.name)

    def back_relationship(self) -> Relationship | None:
        if self.back_populates is None:
            return None
        back = self.target.relationships.get(self.back_populates)
        if back is not None and not back.configured:
            back.configure()
        return back

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
            configure_secondary(self, secondary, foreign)
        elif self.primaryjoin_arg is not None:
            configure_primaryjoin(self, foreign, remote)
        else:
            configure_foreign_keys(self, foreign, remote)
        uselist = self.uselist_arg
        if uselist is None:
            uselist = self.direction != MANY_TO_ONE
        self.uselist = uselist
        self.order_by = self._order_by()
        refs = [r for _, r in self.pairs]
        # Where each primary-key column of the target sits among a many-to-one's foreign
        # key values, when they refer to exactly its primary key (identity-map lookups).
        self.pk_order: list[int] | None = None
        if self.direction == MANY_TO_ONE and set(refs) == set(target.pk_columns):
            self.pk_order = [refs.index(c) for c in target.pk_columns]
        if self.direction == ONE_TO_MANY and not self.viewonly:
            target.synced_by_parents = True  # its flush looks for parents' changes
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
            column = base_column(item)
            if column is None:
                raise ArgumentError(
                    f"relationship {self.name}: {what} must name columns, got {item!r}."
                )
            out.add(column)
        return out

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


def relationship(argument: Any = None, secondary: Any = None, **kw: Any) -> Any:
    """Declare a relationship to another mapped class (the ORM's arguments)."""
    return Relationship(argument, secondary, **kw)


def install(
    mapper: Mapper,
    rels: dict[str, Relationship],
    annotations: dict[str, tuple[Any, bool] | None] | None = None,
) -> None:
    """Put relationships on a mapped class (its descriptors and its mapper's table);
    ``annotations`` give (target, is a collection) where the call does not
    (typemap.relationship_target reads them)."""
    for key, rel in rels.items():
        found = (annotations or {}).get(key)
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


def refuse_deleted(owner: Any, item: Any) -> None:
    """The cascade cannot take an object whose DELETE was flushed into ``owner``'s
    session: the ORM's error, raised before anything changes."""
    st = item.__dict__.get(STATE_KEY)
    if st is None or not getattr(st, "deleted", False):
        return
    ost = owner.__dict__.get(STATE_KEY)
    if ost is not None and ost.session_ref is not None and ost.session_ref is st.session_ref:
        raise InvalidRequestError(
            f"Instance '{state_str(item)}' has been deleted.  Use the make_transient() "
            f"function to send this object back to the transient state."
        )


def cascade_add(session: Any, item: Any, owner: Any) -> None:
    """The save-update cascade of a change to ``owner``: ``item`` joins ``session`` unless
    it is in it already. An object marked for deletion stays marked, as in the ORM (whose
    cascade skips what the session contains); only an explicit ``add()`` takes the mark
    back."""
    state = item.__dict__.get(STATE_KEY)
    if state is None or state.session_ref is not session._ref:
        session._add_cascaded(item, owner)


def _note_stray(parent: Any, back: Relationship, child: Any, key: str) -> None:
    """``child`` (in no session) was given ``parent`` through its many-to-one ``key``,
    which puts it into ``parent``'s collection ``back`` (now, or when loaded): the flush
    of ``parent``'s session will warn that it is not added, as the ORM's does."""
    state = parent.__dict__.get(STATE_KEY)
    session = None if state is None or state.session_ref is None else state.session_ref()
    if session is not None:
        session._tracker.strays.append((weakref.ref(child), back, weakref.ref(parent), key))
