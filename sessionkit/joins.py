"""How a relationship joins its two tables: the column pairs and the direction.

Found from the foreign keys (``foreign_keys=`` narrowing them), from ``primaryjoin=``
(column == column comparisons), or through a ``secondary`` table; ``remote_side=`` tells
a self-referential many-to-one from a one-to-many. The functions fill ``rel.direction``
and ``rel.pairs`` (and ``rel.secondary_pairs``) of a relationships.Relationship.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Column, Table
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList

from .exc import ArgumentError

MANY_TO_ONE: Final = "many-to-one"
ONE_TO_MANY: Final = "one-to-many"
MANY_TO_MANY: Final = "many-to-many"


def configure_foreign_keys(rel: Any, foreign: set[Column[Any]], remote: set[Column[Any]]) -> None:
    assert rel.parent is not None
    local_t, target_t = rel.parent.table, rel.target.table

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
            raise no_join(rel)
        if remote and all(ref in remote for _, ref in to_target):
            rel.direction = MANY_TO_ONE
            rel.pairs = [(fkc, ref) for fkc, ref in to_target]
        else:
            rel.direction = ONE_TO_MANY
            rel.pairs = [(ref, fkc) for fkc, ref in to_target]
        return
    if to_target and to_local:
        raise ArgumentError(
            f"relationship {rel.name}: tables {local_t.name!r} and {target_t.name!r} have "
            f"foreign keys to each other; name the ones this relationship uses with "
            f"foreign_keys=[...]."
        )
    if to_target:
        rel.direction = MANY_TO_ONE
        rel.pairs = _single_path(rel.name, to_target)
    elif to_local:
        rel.direction = ONE_TO_MANY
        rel.pairs = [(ref, fkc) for fkc, ref in _single_path(rel.name, to_local)]
    else:
        raise no_join(rel)


def no_join(rel: Any) -> ArgumentError:
    assert rel.parent is not None
    return ArgumentError(
        f"Could not determine join condition between parent/child tables on "
        f"relationship {rel.name} - there are no foreign keys linking these tables "
        f"({rel.parent.table.name!r}, {rel.target.table.name!r}). Add a ForeignKey to "
        f"one of them, or pass primaryjoin= (with foreign_keys=)."
    )


def configure_primaryjoin(rel: Any, foreign: set[Column[Any]], remote: set[Column[Any]]) -> None:
    assert rel.parent is not None
    expr = rel._resolve(rel.primaryjoin_arg, "primaryjoin")
    raw = _equalities(expr, rel.name)
    local_t, target_t = rel.parent.table, rel.target.table
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
                f"relationship {rel.name}: primaryjoin compares {a} and {b}, which are "
                f"not columns of {local_t.name!r} and {target_t.name!r}."
            )
        if x in foreign and y not in foreign:
            pairs_m2o.append((x, y))
        elif y in foreign and x not in foreign:
            pairs_o2m.append((x, y))
    if pairs_m2o and not pairs_o2m:
        rel.direction, rel.pairs = MANY_TO_ONE, pairs_m2o
    elif pairs_o2m and not pairs_m2o:
        rel.direction, rel.pairs = ONE_TO_MANY, pairs_o2m
    else:
        raise ArgumentError(
            f"relationship {rel.name}: cannot tell which side of primaryjoin "
            f"{expr} holds the foreign key; pass foreign_keys=[...] (and remote_side= "
            f"for a self-referential relationship)."
        )


def configure_secondary(rel: Any, secondary: Table, foreign: set[Column[Any]]) -> None:
    assert rel.parent is not None
    local_t, target_t = rel.parent.table, rel.target.table
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
            f"relationship {rel.name}: a self-referential many-to-many needs "
            f"primaryjoin/secondaryjoin, which sessionkit does not map yet."
        )
    if not to_local or not to_target:
        raise ArgumentError(
            f"relationship {rel.name}: the secondary table {secondary.name!r} needs "
            f"foreign keys to both {local_t.name!r} and {target_t.name!r}."
        )
    rel.direction = MANY_TO_MANY
    rel.pairs = to_local
    rel.secondary_pairs = to_target


def base_column(item: Any) -> Column[Any] | None:
    if isinstance(item, Column):
        return item
    column = getattr(item, "column", None)  # a mapped_column() named in the class body
    if isinstance(column, Column):
        return column
    inner = getattr(item, "__clause_element__", None)
    if inner is not None:
        return base_column(inner())
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
        left, right = base_column(expr.left), base_column(expr.right)
        if left is not None and right is not None:
            return [(left, right)]
    raise ArgumentError(
        f"relationship {name}: primaryjoin {expr} is not supported; sessionkit maps joins "
        f"made of column == column comparisons joined by and_()."
    )
