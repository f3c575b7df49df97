"""ORM-enabled INSERT, UPDATE and DELETE: bulk statements that know the session's objects.

``session.execute(update(User).where(...).values(...))`` runs one UPDATE and then brings
the objects of the identity map up to date, as the ORM's bulk DML does:

* ``synchronize_session="evaluate"`` evaluates the WHERE in Python on each loaded object
  (evaluate.py) and applies the new values to those it matches;
* ``"fetch"`` learns the matched primary keys from the database (RETURNING, or a SELECT
  first where the database has no UPDATE .. RETURNING) and updates those objects;
* ``"auto"`` (the default) evaluates, or fetches when the WHERE cannot be evaluated;
* ``False`` (or None) leaves the objects alone.

A DELETE moves the matched objects to *deleted*, as a flushed ``session.delete()`` would.
``insert(User)`` with a list of dicts keyed by attribute name is one executemany per run
of dicts with the same keys; with ``.returning(User)`` it yields identity-mapped
objects. ``update(User)`` with a list of dicts is an UPDATE per primary key. A statement
on a plain ``Table`` never comes here: it stays plain Core DML.

The statements are recognised by the mapped class's annotation on their table, which
``update(User)`` carries because ``User.__clause_element__()`` returns it; the same
plugin name lets ``values(attribute=...)`` use attribute names where they differ from
column keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Result
from sqlalchemy.engine.cursor import null_dml_result
from sqlalchemy.engine.result import ChunkedIteratorResult, SimpleResultMetaData, null_result
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.base import CompileState
from sqlalchemy.sql.dml import InsertDMLState, UpdateBase, UpdateDMLState

from .evaluate import (
    Evaluator,
    UnevaluatableError,
    criteria_evaluator,
    sync_by_key,
    sync_delete,
    sync_update,
)
from .exc import ArgumentError, InvalidRequestError, StaleDataError
from .loader import load_rows
from .mapping import PLUGIN

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Dialect

    from .mapping import Mapper
    from .session import Session

MAPPER_KEY = "sessionkit_mapper"
_SYNC = ("auto", "evaluate", "fetch", False)


def dml_mapper(statement: UpdateBase) -> Mapper | None:
    """The mapper of ``update(User)``; None for DML on a plain table."""
    table = getattr(statement, "table", None)
    return None if table is None else table._annotations.get(MAPPER_KEY)


# -- attribute names in values() ------------------------------------------------------------


def _as_columns(statement: Any, items: Any) -> Any:
    """``values(fullname=...)`` names the attribute: give Core its column instead."""
    mapper = dml_mapper(statement)
    if mapper is None:
        return items
    cols = mapper.column_for_attr
    return [(cols.get(k, k) if isinstance(k, str) else k, v) for k, v in items]


@CompileState.plugin_for(PLUGIN, "insert")
class _InsertState(InsertDMLState):
    @classmethod
    def _get_crud_kv_pairs(
        cls, statement: Any, kv_iterator: Any, needs_to_be_cacheable: bool
    ) -> Any:
        items = _as_columns(statement, kv_iterator)
        return super()._get_crud_kv_pairs(statement, items, needs_to_be_cacheable)

    @classmethod
    def _get_multi_crud_kv_pairs(cls, statement: Any, multi_kv_iterator: Any) -> Any:
        dicts = [dict(_as_columns(statement, m.items())) for m in multi_kv_iterator]
        return super()._get_multi_crud_kv_pairs(statement, dicts)


@CompileState.plugin_for(PLUGIN, "update")
class _UpdateState(UpdateDMLState):
    @classmethod
    def _get_crud_kv_pairs(
        cls, statement: Any, kv_iterator: Any, needs_to_be_cacheable: bool
    ) -> Any:
        items = _as_columns(statement, kv_iterator)
        return super()._get_crud_kv_pairs(statement, items, needs_to_be_cacheable)


# -- the entry point ------------------------------------------------------------------------


class _Options:
    """The bulk DML options of one execution: the call's, else the statement's (as the
    ORM reads them)."""

    def __init__(self, statement: UpdateBase, given: Mapping[str, Any]) -> None:
        own = statement._execution_options

        def get(name: str, default: Any) -> Any:
            return given[name] if name in given else own.get(name, default)

        self.sync: Any = get("synchronize_session", "auto")
        self.strategy: str = get("dml_strategy", "auto")
        self.autoflush = bool(get("autoflush", True))
        self.populate_existing = bool(get("populate_existing", False))
        self.render_nulls = bool(get("render_nulls", False))
        self.is_delete_using = bool(get("is_delete_using", False))
        self.is_update_from = bool(get("is_update_from", False))


def run_dml(
    session: Session,
    statement: UpdateBase,
    mapper: Mapper,
    params: Any,
    opts: Mapping[str, Any],
) -> Result[Any]:
    """``session.execute()`` of an INSERT, UPDATE or DELETE of a mapped class."""
    options = _Options(statement, opts)
    if statement.is_insert:
        return _insert(session, statement, mapper, params, opts, options)
    return _update_or_delete(session, statement, mapper, params, opts, options)


def _autoflush(session: Session, options: _Options) -> Connection:
    if options.autoflush:
        session._autoflush()
    return session.connection()


def _no_bulk_without_params() -> InvalidRequestError:
    return InvalidRequestError(
        'Can\'t use "bulk" ORM insert strategy without passing separate parameters: '
        "pass a list of dicts to session.execute(), or leave dml_strategy out."
    )


# -- INSERT ---------------------------------------------------------------------------------


def _insert(
    session: Session,
    statement: Any,
    mapper: Mapper,
    params: Any,
    opts: Mapping[str, Any],
    options: _Options,
) -> Result[Any]:
    strategy = options.strategy
    if not params:
        if strategy == "auto":
            strategy = "orm"
        elif strategy == "bulk":
            raise _no_bulk_without_params()
    elif strategy == "auto":
        strategy = "bulk"
    conn = _autoflush(session, options)
    if strategy not in ("raw", "bulk", "orm"):
        raise ArgumentError(
            f"Valid strategies for ORM insert strategy are 'raw', 'orm', 'bulk', 'auto' "
            f"(dml_strategy={strategy!r})"
        )
    if strategy == "raw":
        return conn.execute(statement, params or {}, execution_options=opts)
    returning = _Returning(statement, mapper) if statement._returning else None
    if strategy == "orm":
        cursor = conn.execute(statement, params or {}, execution_options=opts)
        if returning is None:
            return cursor
        return returning.result(session, [cursor], options)
    rows = [params] if isinstance(params, Mapping) else list(params)
    records = _insert_records(statement, mapper, rows, bool(options.render_nulls))
    if returning is not None:
        if not conn.dialect.insert_executemany_returning:
            raise InvalidRequestError(
                f"Can't use explicit RETURNING for bulk INSERT operation with "
                f"{conn.dialect.dialect_description} backend; executemany with RETURNING is "
                f"not enabled for this dialect."
            )
        statement = returning.supplemental(statement, mapper)
    cursors = [
        conn.execute(statement, list(group), execution_options=opts)
        for _, group in itertools.groupby(records, key=lambda rec: rec.keys())
    ]
    if returning is None:
        return null_dml_result()
    return returning.result(session, cursors, options)


def _insert_records(
    statement: Any, mapper: Mapper, rows: list[Mapping[str, Any]], render_nulls: bool
) -> list[dict[str, Any]]:
    """Each dict of attribute values as the INSERT's parameters (column keys). None is
    left out, so that column defaults apply, unless ``render_nulls``: as in the ORM."""
    columns = mapper.column_for_attr
    extra = _bound_names(statement, rows)
    version = mapper.version_column
    out = []
    for row in rows:
        _check_keys(mapper, row, extra, "insert")
        record: dict[str, Any] = {}
        for key, value in row.items():
            column = columns.get(key)
            if column is None:
                record[key] = value  # a bindparam() of the statement's own values()
            elif value is not None or render_nulls or column.type.should_evaluate_none:
                record[column.key] = value
        if version is not None:
            record[version.key] = mapper.version_generator(None)
        out.append(record)
    return out


def _bound_names(statement: Any, rows: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """Keys of the dicts that name ``bindparam()``s of the statement itself (in its
    values() or WHERE): they go to the statement as they are, as in the ORM."""
    if not rows:
        return frozenset()
    return frozenset(b.key for b in statement._get_embedded_bindparams() if b.key in rows[0])


def _check_keys(mapper: Mapper, row: Mapping[str, Any], extra: frozenset[str], what: str) -> None:
    """Refuse a key that is no mapped attribute: the ORM would drop its value silently."""
    attrs = mapper.attr_index
    for key in row:
        if key in attrs or key in extra:
            continue
        cls = mapper.class_.__name__
        column = mapper.table.c.get(key) if isinstance(key, str) else None
        if column is not None:
            name = mapper.attr_for_column[column]
            hint = f"{key!r} is the key of the column of attribute {name!r}: use that name"
        else:
            hint = f"the mapped attributes are {', '.join(mapper.attr_keys)}"
        raise InvalidRequestError(
            f"Bulk {what} of {cls}: {key!r} in a parameter dict is not a mapped attribute of "
            f"{cls}, and its value would be ignored; {hint}."
        )


class _Returning:
    """What ``.returning(...)`` of an INSERT/UPDATE/DELETE of ``mapper`` asks for: the
    class itself (loaded as objects) and any column expressions."""

    def __init__(self, statement: Any, mapper: Mapper) -> None:
        self.mapper = mapper
        self.elements: list[tuple[str, Any]] = []
        for element in statement._returning:
            found = element._annotations.get(MAPPER_KEY)
            if found is mapper:
                self.elements.append(("entity", mapper))
            elif found is not None or element._annotations.get("sessionkit_alias") is not None:
                raise InvalidRequestError(
                    f"RETURNING of {element} in a statement on {mapper.class_.__name__}: "
                    f"return {mapper.class_.__name__} or its columns."
                )
            elif hasattr(element, "c") and not hasattr(element, "type"):
                self.elements.extend(("column", c) for c in element.c)
            else:
                self.elements.append(("column", element))
        self.columns = [
            c
            for kind, value in self.elements
            for c in (value.columns if kind == "entity" else (value,))
        ]

    def supplemental(self, statement: Any, mapper: Mapper) -> Any:
        """RETURNING the primary key first, then the asked-for columns, as the ORM does."""
        stmt = statement._generate()
        stmt._returning = ()
        return stmt.return_defaults(*mapper.pk_columns, supplemental_cols=self.columns)

    def keys(self) -> list[Any]:
        out: list[Any] = []
        for kind, value in self.elements:
            if kind == "entity":
                out.append(value.class_.__name__)
            else:
                out.extend(select(value).selected_columns.keys())
        return out

    def result(self, session: Session, cursors: list[Any], options: _Options) -> Result[Any]:
        """The rows of ``cursors``, with the class's columns built into identity-mapped
        objects as they are read (as a select() result is)."""
        tracker = session._tracker
        imap = tracker.identity_map
        modified = tracker.modified
        populate = bool(options.populate_existing)
        mapper = self.mapper
        width = len(mapper.columns)
        parts = [(kind, width if kind == "entity" else 1) for kind, _ in self.elements]
        wanted = self.columns

        def build(rows: Sequence[Sequence[Any]]) -> list[Any]:
            columns: list[list[Any]] = []
            pos = 0
            for kind, size in parts:
                if kind == "entity":
                    part = [row[pos : pos + size] for row in rows]
                    columns.append(load_rows(imap, mapper, part, populate, modified))
                else:
                    columns.append([row[pos] for row in rows])
                pos += size
            if len(columns) == 1:
                return columns[0]
            return list(zip(*columns, strict=True))

        def chunks(size: int | None) -> Iterator[list[Any]]:
            for cursor in cursors:
                yield build(cursor.columns(*wanted).fetchall())

        return ChunkedIteratorResult(
            SimpleResultMetaData(self.keys()), chunks, source_supports_scalars=len(parts) == 1
        )


# -- UPDATE and DELETE ----------------------------------------------------------------------


def _update_or_delete(
    session: Session,
    statement: Any,
    mapper: Mapper,
    params: Any,
    opts: Mapping[str, Any],
    options: _Options,
) -> Result[Any]:
    strategy = options.strategy
    if not isinstance(params, list):
        if strategy == "auto":
            strategy = "orm"
        elif strategy == "bulk":
            raise _no_bulk_without_params()
    elif strategy == "auto":
        strategy = "bulk"
    sync = options.sync
    if sync is not None and sync not in _SYNC:
        raise ArgumentError(
            f"Valid strategies for session synchronization are 'auto', 'evaluate', 'fetch', "
            f"False (synchronize_session={sync!r})"
        )
    if sync in (None, False):
        sync = False
    if strategy == "bulk" and sync == "fetch":
        raise InvalidRequestError(
            "The 'fetch' synchronization strategy is not available for 'bulk' ORM updates "
            "(i.e. multiple parameter sets); use 'evaluate' or False, or execute the "
            "statements one by one."
        )
    if strategy == "bulk" and sync == "auto":
        sync = "evaluate"
    if options.autoflush:
        session._autoflush()
    kind = "UPDATE" if statement.is_update else "DELETE"
    if strategy == "orm":
        return _orm_ud(session, statement, mapper, params, opts, options, sync, kind)
    conn = session.connection()
    valid = (
        ("orm", "auto", "bulk", "core_only") if kind == "UPDATE" else ("orm", "auto", "core_only")
    )
    if strategy == "bulk" and kind == "DELETE":
        raise InvalidRequestError(
            "Bulk ORM DELETE not supported right now. Statement may be invoked at the Core "
            "level using session.connection().execute(stmt, parameters)"
        )
    if strategy not in valid:
        raise ArgumentError(
            f"Valid strategies for ORM {kind} strategy are "
            f"{', '.join(repr(s) for s in valid)} (dml_strategy={strategy!r})"
        )
    if strategy == "core_only":
        return conn.execute(statement, params, execution_options=opts)
    return _bulk_update(session, conn, statement, mapper, params, opts, sync)


def _orm_ud(
    session: Session,
    statement: Any,
    mapper: Mapper,
    params: Any,
    opts: Mapping[str, Any],
    options: _Options,
    sync: Any,
    kind: str,
) -> Result[Any]:
    """One UPDATE or DELETE with a WHERE, and the objects it touched brought up to date."""
    bound = params if isinstance(params, Mapping) else None
    values: list[tuple[str, Any]] = []
    if kind == "UPDATE" and sync is not False:
        values = _set_values(statement, mapper)
    matches: Evaluator | None = None
    if sync in ("auto", "evaluate"):
        try:
            matches = criteria_evaluator(mapper, statement._where_criteria, bound)
            sync = "evaluate"
        except UnevaluatableError as err:
            if sync == "evaluate":
                raise InvalidRequestError(
                    f'Could not evaluate current criteria in Python: "{err}". Specify '
                    f"'fetch' or False for the synchronize_session execution option."
                ) from err
            sync = "fetch"
    conn = session.connection()
    returning = _Returning(statement, mapper) if statement._returning else None
    matched_keys: list[Any] | None = None
    use_returning = sync == "fetch" and _can_return(conn.dialect, statement, kind, options)
    if sync == "fetch" and not use_returning:
        pre = select(*mapper.pk_columns).select_from(mapper.table)
        pre._where_criteria = statement._where_criteria
        matched_keys = [tuple(row) for row in conn.execute(pre, params)]
    to_run = statement
    if use_returning:
        if returning is not None:
            to_run = returning.supplemental(statement, mapper)
        else:
            to_run = statement.return_defaults(*mapper.pk_columns)
    cursor = conn.execute(to_run, params, execution_options=opts)
    if sync == "fetch" and matched_keys is None:
        pk = mapper.pk_columns
        matched_keys = [
            tuple(row._mapping[c] for c in pk) for row in cursor.returned_defaults_rows or ()
        ]
    if sync is not False:
        if kind == "DELETE":
            sync_delete(session, mapper, matches, matched_keys)
        else:
            sync_update(session, mapper, values, bound, matches, matched_keys, cursor)
    if returning is None:
        return cursor
    return returning.result(session, [cursor], options)


def _can_return(dialect: Dialect, statement: Any, kind: str, options: _Options) -> bool:
    """Whether "fetch" learns the matched keys with RETURNING (the ORM's rules)."""
    if kind == "UPDATE":
        if not (dialect.update_returning and statement.table.implicit_returning):
            return False
        if options.is_update_from:
            return bool(dialect.update_returning_multifrom)
        multifrom, option = dialect.update_returning_multifrom, "is_update_from"
    else:
        if not (dialect.delete_returning and statement.table.implicit_returning):
            return False
        if options.is_delete_using:
            return bool(dialect.delete_returning_multifrom)
        multifrom, option = dialect.delete_returning_multifrom, "is_delete_using"
    if not multifrom and statement.compile(dialect=dialect).compile_state.is_multitable:
        words = "UPDATE..FROM" if kind == "UPDATE" else "DELETE..USING"
        raise CompileError(
            f'Dialect "{dialect.name}" does not support RETURNING with {words}; for '
            f"synchronize_session='fetch', please add the additional execution option "
            f"'{option}=True' to the statement to indicate that a separate SELECT should be "
            f"used for this backend."
        )
    return True


def _set_values(statement: Any, mapper: Mapper) -> list[tuple[str, Any]]:
    """The SET clause as (attribute, expression); refused, before any SQL, when a key
    names a column by its key rather than its attribute (the objects could not be told)."""
    out = []
    for key, value in (statement._values or {}).items():
        if isinstance(key, str):
            column = mapper.table.c.get(key)
            if column is None:
                continue  # not a column at all: Core raises its own error
            name = mapper.attr_for_column[column]
            raise InvalidRequestError(
                f"Attribute name not found, can't be synchronized back to objects: {key!r}; "
                f"it is the key of the column of {mapper.class_.__name__}'s attribute "
                f"{name!r}: write values({name}=...), or pass synchronize_session=False."
            )
        attr = mapper.attr_for_column.get(key)
        if attr is None:
            continue  # a column of another table (UPDATE .. FROM): nothing to synchronize
        if attr in mapper.pk_attr_index:
            raise InvalidRequestError(
                f"values() of an update({mapper.class_.__name__}) sets the primary key "
                f"attribute {attr!r}: the session cannot move objects to new identities. Pass "
                f"synchronize_session=False and call session.expire_all() afterwards, or "
                f"change the key on the object and flush."
            )
        out.append((attr, value))
    return out


# -- UPDATE by primary key --------------------------------------------------------------------


def _bulk_update(
    session: Session,
    conn: Connection,
    statement: Any,
    mapper: Mapper,
    rows: list[Mapping[str, Any]],
    opts: Mapping[str, Any],
    sync: Any,
) -> Result[Any]:
    """``session.execute(update(User), [{"id": 1, "name": ...}, ...])``: an UPDATE per
    primary key, one executemany per run of dicts with the same keys."""
    where = statement._where_criteria
    if where and sync == "evaluate":
        raise InvalidRequestError(
            "bulk synchronize of persistent objects not supported when using bulk update "
            "with additional WHERE criteria right now.  add synchronize_session=None "
            "execution option to bypass synchronize of persistent objects."
        )
    if statement._returning:
        raise InvalidRequestError(
            f"RETURNING with an UPDATE of {mapper.class_.__name__} by primary key (a list "
            f"of parameter dicts) is not supported: run a SELECT afterwards, or give one "
            f"UPDATE .. WHERE per statement."
        )
    if statement._maintain_values_ordering:
        raise InvalidRequestError(
            "bulk ORM UPDATE does not support ordered_values() for custom UPDATE "
            "statements with bulk parameter sets.  Use a non-bulk UPDATE statement or "
            "use values()."
        )
    records = _update_records(statement, mapper, rows)
    version = mapper.version_column
    pk_where = [c == bindparam(_label(c), type_=c.type) for c in mapper.pk_columns]
    if version is not None:
        pk_where.append(version == bindparam(_label(version), type_=version.type))
    to_run = statement.where(and_(*pk_where))
    dialect = conn.dialect
    check = not where and dialect.supports_sane_rowcount
    one_by_one = statement._values is not None or version is not None
    for _, group_iter in itertools.groupby(records, key=lambda rec: rec.keys()):
        group = list(group_iter)
        if one_by_one:
            matched = sum(
                conn.execute(to_run, rec, execution_options=opts).rowcount for rec in group
            )
            checked = check
        else:
            matched = conn.execute(to_run, group, execution_options=opts).rowcount
            checked = check and (dialect.supports_sane_multi_rowcount or len(group) == 1)
        if checked and matched != len(group):
            raise StaleDataError(
                f"UPDATE statement on table '{mapper.table.description}' expected to update "
                f"{len(group)} row(s); {matched} were matched. A primary key in the parameter "
                f"dicts has no row (or the row changed its version)."
            )
    if sync == "evaluate":
        sync_by_key(session, mapper, rows)
    return null_result()


def _update_records(
    statement: Any, mapper: Mapper, rows: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each dict as the UPDATE's parameters: the primary key as the WHERE's bind values,
    the other attributes (None included) as the SET; a dict with nothing to set is skipped."""
    columns = mapper.column_for_attr
    pks = mapper.pk_attr_index
    extra = _bound_names(statement, rows)
    version = mapper.version_column
    out = []
    for row in rows:
        _check_keys(mapper, row, extra, "update")
        record = {columns[k].key: v for k, v in row.items() if k in columns and k not in pks}
        record.update((k, v) for k, v in row.items() if k in extra)
        if version is not None:
            attr = mapper.attr_for_column[version]
            if attr not in row:
                raise InvalidRequestError(
                    f"Bulk update of {mapper.class_.__name__}: the version attribute {attr!r} "
                    f"is missing from a parameter dict; give each row's current version."
                )
            record[_label(version)] = row[attr]
            record[version.key] = mapper.version_generator(row[attr])
        elif not record and statement._values is None:
            continue  # nothing to set
        missing = [columns[a] for a in mapper.pk_attr_keys if row.get(a) is None]
        if missing:
            raise InvalidRequestError(
                f"No primary key value supplied for column(s) "
                f"{', '.join(str(c) for c in missing)}; per-row ORM Bulk UPDATE by Primary "
                f"Key requires that records contain primary key values",
                code="bupq",
            )
        record.update((_label(columns[a]), row[a]) for a in mapper.pk_attr_keys)
        out.append(record)
    return out


def _label(column: Any) -> str:
    """The bind name of a column in the UPDATE's WHERE (``user_account_id``): the ORM's."""
    return str(column._label)
