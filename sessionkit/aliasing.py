"""``aliased()`` and ``select(User).from_statement()``: objects from other selectables.

Core asks a statement's compile-state *plugin* how to expand an entity into columns and
what ``Select.from_statement()`` means; without one it expands a FROM clause into all of
its columns and refuses ``from_statement()``. sessionkit registers its own plugin (as the
ORM registers "orm") and marks the statements it must handle through
``_propagate_attrs``, Core's own channel for this; no Core class is patched.

An alias expands into the selectable's columns that correspond to the mapped columns, in
the mapper's order, so its rows reach the loader exactly as a ``select(User)`` row does.
A ``FromStatement`` runs the given statement as it is; the Session then picks the mapped
columns out of its rows (``Result.columns()``), matched as the ORM matches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import FromClause, Select, TextClause
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchColumnError
from sqlalchemy.sql.base import CompileState, Executable, Generative
from sqlalchemy.sql.cache_key import HasCacheKey
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.sql.selectable import SelectBase, SelectState

from .mapping import PLUGIN, PLUGIN_ATTRS, mapper_of_class

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult

    from .mapping import Mapper

_T = TypeVar("_T")

# The annotation that marks an alias's FROM clause as an entity.
ALIAS_KEY = "sessionkit_alias"


class AliasedEntity(HasCacheKey):
    """One alias: the mapper, the selectable, and its column for each mapped column.

    Its cache key leaves out the selectable and the columns (the annotated FROM clause
    brings the selectable's own key, the columns follow from it): two ``aliased(User)``
    of one shape then share a compiled statement, as two ORM aliases do.
    """

    def __init__(
        self,
        mapper: Mapper,
        selectable: FromClause,
        columns: tuple[KeyedColumnElement[Any], ...],
        key: str | None,
        adapt_on_names: bool,
    ) -> None:
        self.mapper = mapper
        self.selectable = selectable
        self.columns = columns
        self.key = key
        self.adapt_on_names = adapt_on_names
        self.name = f"aliased({mapper.class_.__name__})"
        self.element: FromClause = selectable._annotate({ALIAS_KEY: self})
        self.element._set_propagate_attrs(PLUGIN_ATTRS)

    def _gen_cache_key(self, anon_map: Any, bindparams: list[Any]) -> tuple[Any, ...]:
        return (ALIAS_KEY, self.mapper, self.key)

    def plan_entry(self, statement: Select[Any]) -> tuple[Mapper, int, str | None]:
        """The loading plan's entry; refuses a statement compiled by another plugin,
        which would expand the alias into other columns than the loader expects."""
        plugin = statement._propagate_attrs.get("compile_state_plugin")
        if plugin != PLUGIN:
            by = (
                f"the {plugin!r} plugin (an element of the SQLAlchemy ORM comes first in it)"
                if plugin
                else "Core without sessionkit's plugin (the statement was not built by select())"
            )
            raise InvalidRequestError(
                f"{self.name} is selected in a statement compiled by {by}, which would "
                f"select other columns than sessionkit loads. Select sessionkit entities "
                f"and ORM elements in separate statements, each built with select()."
            )
        return (self.mapper, len(self.mapper.columns), self.key)


class AliasedClass(Generic[_T]):
    """What ``aliased(User)`` returns: usable wherever ``User`` is in a statement.

    ``ua.name`` is the alias's column for the mapped attribute ``name``; ``select(ua)``
    loads ``User`` objects, the same objects as ``select(User)`` and ``session.get()``.
    """

    _sk_entity: AliasedEntity

    def __init__(self, entity: AliasedEntity) -> None:
        d = self.__dict__
        # Mapped attributes are plain instance values: reading ua.name runs no code.
        d.update(zip(entity.mapper.attr_keys, entity.columns, strict=True))
        d["_sk_entity"] = entity
        d["__name__"] = entity.name

    def __clause_element__(self) -> FromClause:
        return self._sk_entity.element

    def __getattr__(self, key: str) -> Any:
        entity = self.__dict__.get("_sk_entity")
        if entity is None or key.startswith("__"):
            raise AttributeError(key)
        raise AttributeError(
            f"{entity.name} has no attribute {key!r}; its attributes are the mapped "
            f"attributes of {entity.mapper.class_.__name__}: "
            f"{', '.join(entity.mapper.attr_keys)}."
        )

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{self._sk_entity.name} is read-only; cannot set {key!r}.")

    def __repr__(self) -> str:
        return f"<AliasedClass at 0x{id(self):x}; {self._sk_entity.mapper.class_.__name__}>"

    def __str__(self) -> str:
        return self._sk_entity.name


def aliased(
    element: type[_T] | AliasedClass[_T],
    alias: FromClause | None = None,
    name: str | None = None,
    flat: bool = False,
    adapt_on_names: bool = False,
) -> AliasedClass[_T]:
    """The class mapped onto an alias of its table, or onto ``alias`` (a subquery, a
    CTE, a UNION's subquery...), under the ORM's name and signature.

    Each mapped column is matched to the selectable's corresponding column, and with
    ``adapt_on_names=True`` to a column of the same name when none corresponds. A
    selectable that lacks a mapped column is refused: sessionkit loads every mapped
    column with the row, so the attribute would read as None.
    """
    base = element._sk_entity if isinstance(element, AliasedClass) else None
    mapper = base.mapper if base is not None else mapper_of_class(element)
    via = base.columns if base is not None else tuple(mapper.columns)
    selectable: FromClause
    if alias is None:
        if base is None or base.selectable is mapper.table or _alias_of(base, mapper):
            source: FromClause = mapper.table
            via = tuple(mapper.columns)
        else:
            source = base.selectable
            adapt_on_names = adapt_on_names or base.adapt_on_names
        selectable = source.alias(name=name, flat=flat)
    elif flat:
        raise ArgumentError(
            f"aliased({mapper.class_.__name__}, <alias>, flat=True): flat applies only when "
            f"aliased() makes the alias itself (aliased({mapper.class_.__name__}, "
            f"flat=True)); the FROM clause given is used as it is. Drop flat=True, or "
            f"alias the selectable yourself."
        )
    elif isinstance(alias, FromClause):
        selectable = alias
    else:
        raise _not_a_from_clause(mapper, alias)
    columns = _matching_columns(mapper, selectable, via, adapt_on_names)
    return AliasedClass(AliasedEntity(mapper, selectable, columns, name, adapt_on_names))


def _alias_of(entity: AliasedEntity, mapper: Mapper) -> bool:
    """Whether the entity's selectable is a plain alias of the mapped table."""
    return getattr(entity.selectable, "element", None) is mapper.table


def _not_a_from_clause(mapper: Mapper, alias: object) -> ArgumentError:
    cls = mapper.class_.__name__
    if isinstance(alias, SelectBase):
        return ArgumentError(
            f"aliased({cls}, <{type(alias).__name__}>): a SELECT statement is not a FROM "
            f"clause; pass stmt.subquery() (or stmt.cte()) instead."
        )
    return ArgumentError(
        f"aliased({cls}, alias): alias must be a FROM clause (a subquery, a CTE, an alias "
        f"of a table), got {type(alias).__name__}."
    )


def _matching_columns(
    mapper: Mapper,
    selectable: FromClause,
    via: Sequence[KeyedColumnElement[Any]],
    adapt_on_names: bool,
) -> tuple[KeyedColumnElement[Any], ...]:
    found: list[KeyedColumnElement[Any]] = []
    missing: list[str] = []
    for col, attr, known in zip(mapper.columns, mapper.attr_keys, via, strict=True):
        match = selectable.corresponding_column(known, require_embedded=True)
        if match is None and known is not col:
            match = selectable.corresponding_column(col, require_embedded=True)
        if match is None and adapt_on_names:
            match = selectable.c.get(col.name)
        if match is None:
            missing.append(f"{col} ({mapper.class_.__name__}.{attr})")
        else:
            found.append(match)
    if missing:
        cls = mapper.class_.__name__
        names = ", ".join(selectable.c.keys())
        hint = (
            ""
            if adapt_on_names
            else "; if the columns are derived (literals, functions, text()), label them with "
            "the mapped column names and pass adapt_on_names=True"
        )
        raise ArgumentError(
            f"aliased({cls}, <{type(selectable).__name__} with columns {names}>): the "
            f"selectable has no column for {', '.join(missing)}. sessionkit loads every "
            f"mapped column with the row: select every mapped column in it "
            f"(e.g. select({cls}) or select({cls}.__table__)){hint}."
        )
    return tuple(found)


# -- the compile-state plugin -------------------------------------------------------------


@CompileState.plugin_for(PLUGIN, "select")
class _SessionkitSelectState(SelectState):
    """Core's SelectState, with aliases expanded into their mapped columns and
    ``from_statement()`` implemented."""

    __slots__ = ()

    @classmethod
    def all_selected_columns(cls, statement: Select[Any]) -> Any:
        out: list[Any] = []
        for raw in statement._raw_columns:
            entity = raw._annotations.get(ALIAS_KEY)
            out.extend(raw._select_iterable if entity is None else entity.columns)
        return out

    @classmethod
    def from_statement(cls, statement: Select[Any], from_statement: Any) -> Any:
        return FromStatement(statement, from_statement)


# Clauses of the select that from_statement() would not run: (attribute, SQL words).
_DROPPED = (
    ("_where_criteria", "WHERE"),
    ("_order_by_clauses", "ORDER BY"),
    ("_group_by_clauses", "GROUP BY"),
    ("_having_criteria", "HAVING"),
    ("_setup_joins", "JOIN"),
    ("_from_obj", "select_from()"),
    ("_limit_clause", "LIMIT"),
    ("_offset_clause", "OFFSET"),
    ("_fetch_clause", "FETCH"),
    ("_distinct", "DISTINCT"),
    ("_for_update_arg", "FOR UPDATE"),
)


class FromStatement(Generative, Executable):
    """``select(User).from_statement(stmt)``: ``stmt`` runs as it is, and a Session
    loads its rows as the select's entities.

    Columns are matched as the ORM matches them: by name for ``text()``; for a SELECT
    or ``text().columns(...)`` by the column objects (a label of a mapped column counts),
    then by name. Executed on a Core ``Connection`` it returns ``stmt``'s rows.
    """

    def __init__(self, select_: Select[Any], element: Any) -> None:
        label = _describe(select_)
        if not isinstance(element, (TextClause, SelectBase)):
            raise ArgumentError(
                f"{label}.from_statement(<{type(element).__name__}>): sessionkit loads "
                f"objects from a text() or a SELECT (also a UNION or text().columns()); "
                f"run other statements with session.execute() and read the rows."
            )
        dropped = [words for attr, words in _DROPPED if getattr(select_, attr, None)]
        if dropped:
            raise ArgumentError(
                f"{label}.from_statement(): the select has {', '.join(dropped)}, which "
                f"from_statement() would not run (it takes only the select's entities "
                f"and columns). Put them into the statement given to from_statement()."
            )
        if not any(mapper is not None for _, _, mapper in _wanted(select_)):
            raise ArgumentError(
                f"{label}.from_statement(): the select has no sessionkit entity to load; "
                f"select a mapped class or an aliased() one, or run the statement itself "
                f"with session.execute() for its rows."
            )
        self.select = select_
        self.element: TextClause | SelectBase = element
        self.label = label
        self._execution_options = select_._execution_options

    def _execute_on_connection(
        self, connection: Connection, distilled_params: Any, execution_options: Any
    ) -> CursorResult[Any]:
        options = self._execution_options.merge_with(execution_options)
        return self.element._execute_on_connection(  # type: ignore[return-value]
            connection, distilled_params, options
        )

    def __str__(self) -> str:
        return str(self.element)

    def columns_of(self, cursor: CursorResult[Any]) -> CursorResult[Any]:
        """``cursor`` with the columns the select's plan expects, in its order."""
        wanted = list(_wanted(self.select))
        if isinstance(self.element, SelectBase):
            keys = _match_objects(self.element, wanted)
        else:
            keys = _match_names(list(cursor.keys()), wanted)
        missing = [w for w, k in zip(wanted, keys, strict=True) if k is None]
        if missing:
            raise self._missing(missing, list(cursor.keys()))
        return cursor.columns(*keys)

    def _missing(self, missing: list[_Wanted], names: list[str]) -> NoSuchColumnError:
        lacks = ", ".join(
            str(w) if m is None else f"{w} ({mapper.class_.__name__}.{mapper.attr_for_column[m]})"
            for w, m, mapper in missing
        )
        return NoSuchColumnError(
            f"Could not locate column in row for column '{missing[0][0]}'; {self.label}."
            f"from_statement(): the statement's columns are ({', '.join(names)}) and "
            f"lack {lacks}. sessionkit loads every mapped column with the row: select "
            f"them too ({_how(self.element)})."
        )


_Wanted = tuple[Any, Any, Any]  # (column wanted, mapped column or None, its mapper)


def _wanted(select_: Select[Any]) -> Iterable[_Wanted]:
    """Each column the select's loading plan expects, in its order."""
    for raw in select_._raw_columns:
        mapper = raw._annotations.get("sessionkit_mapper")
        entity = raw._annotations.get(ALIAS_KEY)
        if mapper is not None:
            yield from ((c, c, mapper) for c in mapper.columns)
        elif entity is not None:
            m = entity.mapper
            yield from zip(entity.columns, m.columns, [m] * len(m.columns), strict=True)
        elif hasattr(raw, "c") and not hasattr(raw, "type"):
            yield from ((c, None, None) for c in raw.c)
        else:
            yield (raw, None, None)


def _names(want: Any, mapped: Any) -> list[str]:
    names = [n for n in (getattr(want, "name", None), getattr(mapped, "name", None)) if n]
    return list(dict.fromkeys(names))


def _match_names(names: list[str], wanted: list[_Wanted]) -> list[Any]:
    """Positions in a text() result, by exact column name, as the ORM matches them."""
    keys: list[Any] = []
    for want, mapped, _ in wanted:
        found = None
        for name in _names(want, mapped):
            hits = [i for i, n in enumerate(names) if n == name]
            if len(hits) > 1:
                raise InvalidRequestError(
                    f"Ambiguous column name {name!r} in result set column descriptions: "
                    f"the statement returns {len(hits)} columns named {name!r}. Give them "
                    f"distinct labels in the SQL (e.g. m.{name} AS manager_{name})."
                )
            if hits:
                found = hits[0]
                break
        keys.append(found)
    return keys


def _match_objects(element: SelectBase, wanted: list[_Wanted]) -> list[Any]:
    """The statement's own columns: the one each wanted column corresponds to, or the
    one of the same name (the ORM adapts from_statement() on names too)."""
    selected = element.selected_columns
    keys: list[Any] = []
    for want, mapped, _ in wanted:
        match = selected.corresponding_column(want, require_embedded=True)
        if match is None and mapped is not None and mapped is not want:
            match = selected.corresponding_column(mapped, require_embedded=True)
        for name in _names(want, mapped) if match is None else ():
            match = selected.get(name)
            if match is not None:
                break
        keys.append(match)
    return keys


def _describe(select_: Select[Any]) -> str:
    parts = []
    for raw in select_._raw_columns:
        mapper = raw._annotations.get("sessionkit_mapper")
        entity = raw._annotations.get(ALIAS_KEY)
        if mapper is not None:
            parts.append(mapper.class_.__name__)
        elif entity is not None:
            parts.append(entity.name)
        else:
            parts.append(str(getattr(raw, "key", None) or type(raw).__name__))
    return f"select({', '.join(parts)})"


def _how(element: Any) -> str:
    if isinstance(element, TextClause):
        return "text() matches the mapped columns by name"
    return "a SELECT matches them by column, a label of a mapped column counts, or by name"
