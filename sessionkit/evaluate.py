"""What a bulk UPDATE or DELETE did to the session's objects, found in Python.

``update(User).where(User.name == "x").values(count=User.count + 1)`` with
``synchronize_session="evaluate"`` finds the objects of the identity map the statement
matched, and their new values, without asking the database: each expression becomes a
function of one object, as the ORM's evaluator makes them. The rules are the ORM's:
comparisons and boolean logic follow SQL's three-valued logic (``None`` for NULL), math
only on numeric columns, concatenation only on string ones; anything else (functions,
``LIKE``, casts, subqueries, columns of other tables) cannot be evaluated and raises
``UnevaluatableError``, which lets "auto" fall back to "fetch".

An attribute the object does not have loaded (expired) evaluates to ``UNKNOWN``, which
any expression using it propagates: the session then cannot tell whether the row
matched, nor what the new value is.

The second half applies the statement to the matched objects (found by evaluating, or by
the primary keys "fetch" learnt): new values become loaded, committed values; what
cannot be known is expired; deleted objects leave the session as a flushed DELETE's do.
"""

from __future__ import annotations

import contextlib
import operator
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import and_
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.sql import operators
from sqlalchemy.sql.sqltypes import Concatenable, Integer, Numeric

from .expiry import expire_state
from .firing import snapshot, transitions
from .hooks import SESSION
from .state import STATE_KEY, Expiry, InstanceState, get_state

if TYPE_CHECKING:
    from .mapping import Mapper
    from .session import Session
    from .tracking import UndoLog

Evaluator = Callable[[Any], Any]


class UnevaluatableError(InvalidRequestError):
    """An expression the session cannot evaluate in Python (the ORM's class of this name)."""


class _Unknown:
    """The value of an attribute that is not loaded: whatever uses it is unknown too."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


class _Compiler:
    """Turns an expression on ``mapper``'s columns into an ``Evaluator``."""

    def __init__(self, mapper: Mapper, params: Mapping[str, Any] | None) -> None:
        self.mapper = mapper
        self.params = params

    def process(self, clause: Any) -> Evaluator:
        meth = getattr(self, f"visit_{clause.__visit_name__}", None)
        if meth is None:
            raise UnevaluatableError(f"Cannot evaluate {type(clause).__name__}")
        result: Evaluator = meth(clause)
        return result

    def visit_grouping(self, clause: Any) -> Evaluator:
        return self.process(clause.element)

    def visit_null(self, clause: Any) -> Evaluator:
        return lambda obj: None

    def visit_false(self, clause: Any) -> Evaluator:
        return lambda obj: False

    def visit_true(self, clause: Any) -> Evaluator:
        return lambda obj: True

    def visit_column(self, clause: Any) -> Evaluator:
        mapper = self.mapper
        key = mapper.attr_for_column.get(clause)
        if key is None:
            raise UnevaluatableError(
                f"Cannot evaluate column: {clause} is not a column of "
                f"{mapper.class_.__name__}'s table {mapper.table.name!r}"
            )
        unset = mapper.unset_defaults.get(key)

        def get(obj: Any) -> Any:
            d = obj.__dict__
            if key in d:
                return d[key]
            expired = d[STATE_KEY].expired
            if expired and key in expired:
                return UNKNOWN
            return unset  # never set: None, as a read would give

        return get

    def visit_bindparam(self, clause: Any) -> Evaluator:
        params = self.params
        if clause.callable:
            value = clause.callable()
        elif params is not None and clause.key in params:
            value = params[clause.key]  # bindparam("x") with its value given to execute()
        elif clause.required:
            raise UnevaluatableError(
                f"Cannot evaluate bind parameter {clause.key!r}: it has no value"
            )
        else:
            value = clause.value
        return lambda obj: value

    # -- lists of clauses: AND, OR, tuples --------------------------------------------

    def visit_clauselist(self, clause: Any) -> Evaluator:
        evaluators = [self.process(c) for c in clause.clauses]
        name = clause.operator.__name__.rstrip("_")
        if name == "and":
            return _and(evaluators)
        if name == "or":
            return _or(evaluators)
        if name == "comma_op":
            return _tuple(evaluators)
        raise UnevaluatableError(f"Cannot evaluate clauselist with operator {clause.operator}")

    visit_expression_clauselist = visit_clauselist
    visit_tuple = visit_clauselist

    # -- binary and unary expressions -------------------------------------------------

    def visit_binary(self, clause: Any) -> Evaluator:
        left = self.process(clause.left)
        right = self.process(clause.right)
        op = clause.operator
        name = op.__name__.rstrip("_")
        if name in ("is", "is_not"):
            compare = operator.eq if name == "is" else operator.ne
            return _with_unknown(compare, left, right)
        if name in _MATH:
            for side in (clause.left, clause.right):
                if side.type._type_affinity not in (Numeric, Integer):
                    raise UnevaluatableError(
                        f'Cannot evaluate math operator "{op.__name__}" for datatypes '
                        f"{clause.left.type}, {clause.right.type}"
                    )
            return _sql_null(op, left, right)
        if name == "concat_op":
            for side in (clause.left, clause.right):
                if not issubclass(side.type._type_affinity, Concatenable):
                    raise UnevaluatableError(
                        f'Cannot evaluate concatenate operator "{op.__name__}" for '
                        f"datatypes {clause.left.type}, {clause.right.type}"
                    )
            return _sql_null(operator.add, left, right)
        fn = _BINARY.get(name)
        if fn is None and name == "custom_op":
            fn = op.python_impl
            if not fn:
                raise UnevaluatableError(
                    f"Custom operator {op.opstring!r} can't be evaluated in Python unless "
                    f"it specifies a callable using `.python_impl`."
                )
        if fn is None:
            raise UnevaluatableError(f"Cannot evaluate {type(clause).__name__} with operator {op}")
        return _sql_null(fn, left, right)

    def visit_unary(self, clause: Any) -> Evaluator:
        inner = self.process(clause.element)
        if clause.operator is not operators.inv:
            raise UnevaluatableError(
                f"Cannot evaluate {type(clause).__name__} with operator {clause.operator}"
            )

        def evaluate(obj: Any) -> Any:
            value = inner(obj)
            if value is UNKNOWN or value is None:
                return value
            return not value

        return evaluate


_MATH = frozenset({"add", "sub", "mul", "mod", "truediv"})
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in_op": lambda a, b: a in b,
    "not_in_op": lambda a, b: a not in b,
    "startswith_op": lambda a, b: a.startswith(b),
    "endswith_op": lambda a, b: a.endswith(b),
}


def _with_unknown(fn: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(obj: Any) -> Any:
        a, b = left(obj), right(obj)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        return fn(a, b)

    return evaluate


def _sql_null(fn: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
    """``fn`` with SQL's NULL rule: NULL on either side gives NULL."""

    def evaluate(obj: Any) -> Any:
        a, b = left(obj), right(obj)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        if a is None or b is None:
            return None
        return fn(a, b)

    return evaluate


def _and(evaluators: list[Evaluator]) -> Evaluator:
    def evaluate(obj: Any) -> Any:
        for sub in evaluators:
            value = sub(obj)
            if value is UNKNOWN:
                return UNKNOWN
            if not value:
                return None if value is None else False
        return True

    return evaluate


def _or(evaluators: list[Evaluator]) -> Evaluator:
    def evaluate(obj: Any) -> Any:
        has_null = False
        for sub in evaluators:
            value = sub(obj)
            if value is UNKNOWN:
                return UNKNOWN
            if value:
                return True
            has_null = has_null or value is None
        return None if has_null else False

    return evaluate


def _tuple(evaluators: list[Evaluator]) -> Evaluator:
    def evaluate(obj: Any) -> Any:
        values = []
        for sub in evaluators:
            value = sub(obj)
            if value is UNKNOWN or value is None:
                return value
            values.append(value)
        return tuple(values)

    return evaluate


def criteria_evaluator(
    mapper: Mapper, criteria: Sequence[Any], params: Mapping[str, Any] | None
) -> Evaluator:
    """One function answering, per object, whether the WHERE matches its row: True,
    False, None (NULL: no match) or ``UNKNOWN``. Raises ``UnevaluatableError``."""
    if not criteria:
        return lambda obj: True
    clause = criteria[0] if len(criteria) == 1 else and_(*criteria)
    return _Compiler(mapper, params).process(clause)


def value_evaluator(mapper: Mapper, value: Any, params: Mapping[str, Any] | None) -> Evaluator:
    """One function giving, per object, the value a SET expression writes (or
    ``UNKNOWN``). Raises ``UnevaluatableError``."""
    return _Compiler(mapper, params).process(value)


# -- applying the statement to the objects --------------------------------------------------


def _candidates(session: Session, mapper: Mapper, keys: list[Any] | None) -> list[Any]:
    """The objects a statement may have touched: those of ``keys`` (fetched), or every
    object of the class in the identity map that is not wholly expired (evaluated; a
    wholly expired object is left alone, as the ORM leaves it)."""
    imap = session._tracker.identity_map
    if keys is not None:
        single = mapper.single_pk
        found = (imap.lookup(mapper, k[0] if single else k) for k in keys)
        return [obj for obj in found if obj is not None]
    sub = imap.by_mapper.get(mapper)
    if not sub:
        return []
    everything = mapper.all_attrs
    out = []
    for ref in list(sub.values()):
        obj = ref()
        if obj is not None and obj.__dict__[STATE_KEY].expired is not everything:
            out.append(obj)
    return out


def sync_delete(
    session: Session, mapper: Mapper, matches: Evaluator | None, keys: list[Any] | None
) -> None:
    """Matched objects become *deleted* (committed: detached; rolled back: persistent
    again); an object whose match is unknown is expired, as the ORM does."""
    tracker = session._tracker
    gone = []
    for obj in _candidates(session, mapper, keys):
        verdict = True if matches is None else matches(obj)
        if verdict is UNKNOWN:
            _expire(session, obj, get_state(obj), None)
        elif verdict is True:
            gone.append(obj)
    if not gone:
        return
    states = [get_state(obj) for obj in gone]
    log = _log(session)
    before = snapshot(tracker, gone) if SESSION else None
    for obj, state in zip(gone, states, strict=True):
        tracker.mark_row_gone(obj, state, log)
        state.clear_history()
    transitions(session, tracker, before)


def sync_update(
    session: Session,
    mapper: Mapper,
    values: list[tuple[str, Any]],
    params: Mapping[str, Any] | None,
    matches: Evaluator | None,
    keys: list[Any] | None,
    cursor: Any,
) -> None:
    """The UPDATE's new values into the objects it matched."""
    evaluators: dict[str, Evaluator] = {}
    for attr, value in values:
        with contextlib.suppress(UnevaluatableError):  # if not: expired on matched objects
            evaluators[attr] = value_evaluator(mapper, value, params)
    set_keys = {attr for attr, _ in values}
    # Columns the UPDATE set without being asked: Python-side onupdate values are known,
    # SQL-side ones (server_onupdate, onupdate=func.now()) must be loaded again.
    compiled = cursor.context.compiled_parameters[0]
    col_attr = mapper.attr_for_column
    known = [
        (col_attr[c], c.key)
        for c in cursor.prefetch_cols()
        if c.key in compiled and c in col_attr and col_attr[c] not in evaluators
    ]
    reload = {col_attr[c] for c in cursor.postfetch_cols() if c in col_attr} - evaluators.keys()
    change = _Change(evaluators, set_keys, known, compiled, reload, _log(session))
    for obj in _candidates(session, mapper, keys):
        verdict = True if matches is None else matches(obj)
        if verdict is True:
            change.apply(session, obj)
        elif verdict is UNKNOWN:
            # The row may or may not have matched (the ORM writes the new values either
            # way): what the UPDATE may have written is loaded again when read.
            touched = set_keys | reload | {attr for attr, _ in known}
            _expire(session, obj, get_state(obj), sorted(touched & obj.__dict__.keys()))


class _Change:
    """One UPDATE's effect on a matched object."""

    def __init__(
        self,
        evaluators: dict[str, Evaluator],
        set_keys: set[str],
        known: list[tuple[str, str]],
        compiled: Mapping[str, Any],
        reload: set[str],
        log: UndoLog | None,
    ) -> None:
        self.evaluators = evaluators
        self.set_keys = set_keys
        self.known = known
        self.compiled = compiled
        self.reload = reload
        self.log = log

    def apply(self, session: Session, obj: Any) -> None:
        """New values become loaded, committed values; attributes changed and not
        flushed, and values not evaluable, are expired (the ORM's rules)."""
        state = get_state(obj)
        d = obj.__dict__
        for attr, key in self.known:
            d[attr] = self.compiled[key]
        gone = self.reload & d.keys()
        if gone:
            _expire(session, obj, state, sorted(gone))
        changed = state.committed or {}
        stale = self.set_keys & d.keys()
        written = []
        for attr, evaluate in self.evaluators.items():
            if attr in changed or attr not in d:
                continue
            value = evaluate(obj)
            if value is UNKNOWN:
                continue  # the ORM stores its marker as the value; expired instead
            d[attr] = value
            written.append(attr)
            stale.discard(attr)
        _committed(obj, state, written, self.log)
        if stale:
            _expire(session, obj, state, sorted(stale))


def sync_by_key(session: Session, mapper: Mapper, rows: list[Mapping[str, Any]]) -> None:
    """UPDATE by primary key: the objects of the updated keys take the dicts' values
    (loaded, unchanged attributes); attributes changed and not flushed are expired."""
    imap = session._tracker.identity_map
    pk_attrs = mapper.pk_attr_keys
    version = mapper.version_attr
    attrs = mapper.attr_index
    log = _log(session)
    for row in rows:
        key = row[pk_attrs[0]] if mapper.single_pk else tuple(row[a] for a in pk_attrs)
        obj = imap.lookup(mapper, key)
        if obj is None:
            continue
        state = get_state(obj)
        d = obj.__dict__
        changed = state.committed or {}
        new = {k: v for k, v in row.items() if k in attrs and k not in pk_attrs}
        if version is not None and version in new:
            new[version] = mapper.version_generator(new[version])
        written = [k for k in new if k in d and k not in changed]
        for k in written:
            d[k] = new[k]
        _committed(obj, state, written, log)
        stale = [k for k in new if k in d and k not in written]
        if stale:
            _expire(session, obj, state, stale)


def _committed(obj: Any, state: InstanceState, written: list[str], log: UndoLog | None) -> None:
    """The written values are what the row holds now: no history, not expired. The
    object is recorded as changed by the transaction: a SAVEPOINT rollback expires it."""
    committed = state.committed
    if committed:
        for attr in written:
            committed.pop(attr, None)
    expired = state.expired
    if expired:
        rest = expired.difference(written)
        # No longer *wholly* expired (a copy of the set, as the ORM clears its flag):
        # get() returns it without a SELECT, the next read loads what is missing.
        state.expired = frozenset(rest) if rest else None
    if log is not None:
        log.updated.append((weakref.ref(obj), state))


def _expire(session: Session, obj: Any, state: InstanceState, keys: list[str] | None) -> None:
    tracker = session._tracker
    tracker.identity_map.unfresh(state)
    expire_state(obj, state, Expiry("bulk"), keys)
    if keys is None:
        tracker.modified.pop(state, None)


def _log(session: Session) -> UndoLog | None:
    txn = session._tracker.transaction
    return None if txn is None else txn.log
