"""``session.query(User)``: the small legacy facade, a thin builder over ``select()``.

Kept for code written in the 1.x style; every method builds a Core ``Select`` and runs it
through ``Session.execute``, so identity mapping and autoflush behave exactly as there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Select, delete, func, select, update

from .exc import InvalidRequestError

if TYPE_CHECKING:
    from sqlalchemy.engine import ScalarResult

    from .mapping import Mapper
    from .session import Session

_T = TypeVar("_T")


class Query(Generic[_T]):
    """Immutable: each method returns a new Query."""

    def __init__(self, session: Session, mapper: Mapper, stmt: Select[Any] | None = None) -> None:
        self.session = session
        self.mapper = mapper
        # The reference's legacy Query labels columns ``users.id AS users_id``; so do we.
        self.statement: Select[Any] = (
            stmt
            if stmt is not None
            else select(mapper.class_).set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
        )

    def _with(self, stmt: Select[Any]) -> Query[_T]:
        return Query(self.session, self.mapper, stmt)

    def filter(self, *criteria: Any) -> Query[_T]:
        return self._with(self.statement.where(*criteria))

    where = filter

    def filter_by(self, **kwargs: Any) -> Query[_T]:
        cols = self.mapper.column_for_attr
        for name in kwargs:
            if name not in cols:
                raise InvalidRequestError(
                    f"filter_by({name}=...): {self.mapper.class_.__name__} has no mapped "
                    f"attribute {name!r}; mapped attributes are "
                    f"{', '.join(self.mapper.attr_keys)}"
                )
        return self.filter(*(cols[k] == v for k, v in kwargs.items()))

    def order_by(self, *clauses: Any) -> Query[_T]:
        return self._with(self.statement.order_by(*clauses))

    def limit(self, limit: int | None) -> Query[_T]:
        return self._with(self.statement.limit(limit))

    def offset(self, offset: int | None) -> Query[_T]:
        return self._with(self.statement.offset(offset))

    def options(self, *options: Any) -> Query[_T]:
        """Loader options (``joinedload(...)`` and the others), as on a select()."""
        return self._with(self.statement.options(*options))

    def populate_existing(self) -> Query[_T]:
        return self._with(self.statement.execution_options(populate_existing=True))

    def all(self) -> list[_T]:
        return list(self._scalars(self.statement).all())

    def __iter__(self) -> Iterator[_T]:
        return iter(self.all())

    def first(self) -> _T | None:
        return self._scalars(self.statement.limit(1)).first()

    def one(self) -> _T:
        obj: _T = self._scalars(self.statement).one()
        return obj

    def one_or_none(self) -> _T | None:
        return self._scalars(self.statement).one_or_none()

    def _scalars(self, statement: Select[Any]) -> ScalarResult[_T]:
        """The objects, each once: the legacy Query de-duplicates its entities (a join
        to a collection repeats them), as the reference's does."""
        return self.session.execute(statement).scalars().unique()

    def get(self, ident: Any) -> _T | None:
        return self.session.get(self.mapper.class_, ident)

    def count(self) -> int:
        """``SELECT count(*) FROM (<query>) AS anon_1``, as the reference emits it."""
        stmt = select(func.count()).select_from(self.statement.subquery())
        return int(self.session.execute(stmt).scalar_one())

    # -- bulk UPDATE and DELETE (bulk.py) ---------------------------------------------------

    def update(
        self,
        values: dict[Any, Any],
        synchronize_session: Any = "auto",
        update_args: dict[str, Any] | None = None,
    ) -> int:
        """``UPDATE <table> SET values WHERE <the query's criteria>``; the matched row count.

        The session's objects are synchronised as by ``session.execute(update(...))``
        with that ``synchronize_session``.
        """
        self._bulk_check("update")
        args = dict(update_args or {})
        stmt = update(self.mapper.class_)
        if args.pop("preserve_parameter_order", False):
            stmt = stmt.ordered_values(*values)
        else:
            stmt = stmt.values(values)
        if args:
            stmt = stmt.with_dialect_options(**args)
        return self._bulk_run(stmt.where(*self.statement._where_criteria), synchronize_session)

    def delete(
        self, synchronize_session: Any = "auto", delete_args: dict[str, Any] | None = None
    ) -> int:
        """``DELETE FROM <table> WHERE <the query's criteria>``; the matched row count."""
        self._bulk_check("delete")
        stmt = delete(self.mapper.class_)
        if delete_args:
            stmt = stmt.with_dialect_options(**delete_args)
        return self._bulk_run(stmt.where(*self.statement._where_criteria), synchronize_session)

    def _bulk_check(self, method: str) -> None:
        """The ORM refuses what an UPDATE or DELETE cannot express, naming it."""
        stmt = self.statement
        for attr, words in _NOT_FOR_BULK:
            value = getattr(stmt, attr)  # a clause (never compared with ==), tuple or bool
            if bool(value) if isinstance(value, (tuple, bool)) else value is not None:
                raise InvalidRequestError(
                    f"Can't call Query.update() or Query.delete() when {words} has been "
                    f"called (Query.{method}() of {self.mapper.class_.__name__}: it would be "
                    f"ignored). Express the selection in filter() criteria instead."
                )

    def _bulk_run(self, stmt: Any, synchronize_session: Any) -> int:
        options = {
            **self.statement.get_execution_options(),
            "synchronize_session": synchronize_session,
        }
        result = self.session.execute(stmt, execution_options=options)
        result.close()
        return int(result.rowcount)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return str(self.statement)


# Query state an UPDATE or DELETE cannot express: (attribute of the Select, the method).
_NOT_FOR_BULK = (
    ("_limit_clause", "limit()"),
    ("_offset_clause", "offset()"),
    ("_order_by_clauses", "order_by()"),
    ("_group_by_clauses", "group_by()"),
    ("_distinct", "distinct()"),
    ("_setup_joins", "join(), outerjoin(), select_from(), or from_self()"),
    ("_from_obj", "join(), outerjoin(), select_from(), or from_self()"),
)
