"""The Session's reads: ``get``, ``get_one``, ``execute``, ``scalars``, ``scalar``, ``query``.

A base class of ``Session``, so that these methods can carry the ORM's typing (overloads
on ``TypedReturnsRows``: ``session.scalars(select(User)).all()`` is a ``Sequence[User]``
to a type checker, with no plugin) while session.py stays a readable size. What they use
of the Session (its autoflush, transaction and identity map) is declared here, defined
there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Result, ScalarResult
from sqlalchemy.sql.dml import UpdateBase
from typing_extensions import Never, TypeVarTuple, Unpack

from .awaiting import implicit_io_error, outside_await
from .bulk import MAPPER_KEY, run_dml
from .exc import NoResultFound, ObjectDeletedError, warn
from .loader import load_rows
from .loading import (
    apply_loaded,
    execute,
    fetch_by_pk,
    for_update_arg,
    pk_params,
    select_entity_by_pk,
)
from .mapping import Mapper, mapper_of_class
from .query import Query
from .relloading import eager_by_default, from_identity_map, load_lazy, prepare, strategy_for
from .state import STATE_KEY

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import ForUpdateArg, ForUpdateParameter, TypedReturnsRows

    from .identity import IdentityMap, Ref
    from .relationships import Relationship
    from .session import Session
    from .state import InstanceState
    from .tracking import Tracker

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
# Core's parameters: one dict of bind values, or a list of them for an executemany.
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
TupleAny = tuple[Any, ...]


class SessionReads:
    """The reading methods of ``Session``; see there."""

    if TYPE_CHECKING:
        identity_map: IdentityMap
        _tracker: Tracker
        _fresh: dict[type, dict[Any, Ref]]

        _ref: Any

        def connection(self) -> Connection: ...

        def _autobegin(self) -> Any: ...

        def _autoflush(self) -> None: ...

        def _load_expired_attribute(self, obj: object, state: InstanceState, key: str) -> None: ...

        _async_owner: Any

    def get(
        self,
        entity: type[_T],
        ident: Any,
        *,
        populate_existing: bool = False,
        with_for_update: ForUpdateParameter = None,
    ) -> _T | None:
        """The object with this primary key: from the identity map, else one SELECT.

        ``with_for_update`` always SELECTs (``FOR UPDATE``: the lock is the point); as in
        the ORM, the row only fills expired attributes unless ``populate_existing``.
        """
        # Fast path: one lookup in the index of loaded, unexpired objects; no SQL.
        try:
            obj = self._fresh[entity][ident]()
        except (KeyError, TypeError):  # not indexed (yet), or an unhashable identifier
            obj = None
        if obj is not None and not populate_existing and with_for_update is None:
            return obj  # type: ignore[no-any-return]
        mapper = mapper_of_class(entity)
        key = mapper.normalize_key(ident)
        lock = None
        if with_for_update is not None:
            lock = for_update_arg(with_for_update, f"get({mapper.class_.__name__}, {ident!r})")
        if key is None or (not mapper.single_pk and key.count(None) == len(key)):
            warn(
                "fully NULL primary key identity cannot load any object.  This condition may "
                f"raise an error in a future release. (get({mapper.class_.__name__}, "
                f"{ident!r}): pass the primary-key value to load.)"
            )
        txn = self._tracker.transaction
        if txn is not None:
            txn._check_active()
        if lock is None and not populate_existing:
            obj = self.identity_map.lookup(mapper, key)
            if obj is not None:
                return self._get_mapped(obj, mapper, key)  # type: ignore[no-any-return]
        self._autoflush()
        if mapper.relationships and eager_by_default(mapper):
            return self._get_eager(mapper, key, lock, populate_existing)  # type: ignore[no-any-return]
        row = fetch_by_pk(self.connection(), mapper, key, mapper.attr_keys, lock)
        if row is None:
            return None
        tracker = self._tracker
        objs = load_rows(tracker.identity_map, mapper, (row,), populate_existing, tracker.modified)
        return objs[0]  # type: ignore[no-any-return]

    def _get_eager(
        self, mapper: Mapper, key: Any, lock: ForUpdateArg | None, populate: bool
    ) -> Any:
        """get() of a class with ``lazy="joined"`` or ``"selectin"`` relationships: they
        load with the object, as the reference's get() loads them."""
        stmt = select_entity_by_pk(mapper, lock)
        opts = {"populate_existing": True} if populate else {}
        conn, tracker = self.connection(), self._tracker
        result = execute(
            conn,
            stmt,
            pk_params(mapper, key),
            opts,
            tracker.identity_map,
            tracker.modified,
            prepare,
        )
        return result.unique().scalars().first()

    def get_one(
        self,
        entity: type[_T],
        ident: Any,
        *,
        populate_existing: bool = False,
        with_for_update: ForUpdateParameter = None,
    ) -> _T:
        """``get()`` for a row that must exist: none is ``NoResultFound``, as in the ORM."""
        obj = self.get(
            entity, ident, populate_existing=populate_existing, with_for_update=with_for_update
        )
        if obj is None:
            name = entity.__name__
            raise NoResultFound(
                f"No row was found when one was required: get_one({name}, {ident!r}) found "
                f"no {name} row with primary key {ident!r}. Use session.get() to get None "
                f"for a missing row instead."
            )
        return obj

    def _get_mapped(self, obj: Any, mapper: Mapper, key: Any) -> Any:
        """get() of an object in the identity map: only a fully expired one is loaded;
        one whose row is gone becomes *deleted* and get() returns None."""
        state = obj.__dict__[STATE_KEY]
        if state.expired is not mapper.all_attrs:
            self.identity_map.note_fresh(mapper, key)
            return obj
        try:
            self._load_expired_attribute(obj, state, "")
            return obj
        except ObjectDeletedError:
            pass
        row = fetch_by_pk(self.connection(), mapper, key, mapper.attr_keys)
        if row is None:
            txn = self._tracker.transaction
            self._tracker.mark_row_gone(obj, state, None if txn is None else txn.log)
            return None
        apply_loaded(obj, state, mapper.attr_keys, row, overwrite=False)
        return obj

    # The overloads are the ORM Session's: a typed statement (``select(User, Account)``)
    # gives a typed result (``Result[User, Account]``), any other statement ``Any``.

    @overload
    def execute(
        self,
        statement: TypedReturnsRows[Unpack[_Ts]],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[_Ts]]: ...

    @overload
    def execute(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[TupleAny]]: ...

    def execute(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[TupleAny]]:
        """Run a Core statement; selects of mapped classes yield identity-mapped objects,
        INSERT / UPDATE / DELETE of a mapped class synchronise them (bulk.py)."""
        opts = execution_options or {}
        if isinstance(statement, UpdateBase):
            mapper = statement.table._annotations.get(MAPPER_KEY)
            if mapper is not None:
                return run_dml(cast("Session", self), statement, mapper, params, opts)
        self._autoflush()
        conn = self.connection()
        modified = self._tracker.modified
        return execute(conn, statement, params, opts, self.identity_map, modified, prepare)

    def _load_relationship(self, obj: object, rel: Relationship) -> None:
        """An unloaded relationship of a persistent, attached object was read: load it
        (with the others of its result or expiry, unless its strategy says otherwise).
        Autoflushes first, as every load does."""
        self._autobegin()._check_active()
        if from_identity_map(self.identity_map, obj, rel):
            return  # a many-to-one the session holds: no autoflush, no SQL, as the ORM
        if self._async_owner is not None and outside_await(self):
            if strategy_for(obj, rel)[0] in ("raise", "raise_on_sql"):
                raise rel.raise_error(obj)
            raise implicit_io_error(obj, obj.__dict__.get(STATE_KEY), rel.key, True)
        self._autoflush()
        d = obj.__dict__
        state = d.get(STATE_KEY)
        if rel.key in d or state is None or state.session_ref is not self._ref:
            return  # the autoflush loaded it, or failed and let the object go
        load_lazy(self.connection(), self.identity_map, self._tracker.modified, obj, rel)

    @overload
    def scalars(
        self,
        statement: TypedReturnsRows[_T],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[_T]: ...

    @overload
    def scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[Any]: ...

    def scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[Any]:
        return self.execute(statement, params, execution_options=execution_options).scalars()

    # TypedReturnsRows[Never] first, as in the ORM: it works around mypy issue 20651.
    @overload
    def scalar(
        self,
        statement: TypedReturnsRows[Never],
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any | None: ...

    @overload
    def scalar(
        self,
        statement: TypedReturnsRows[_T],
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> _T | None: ...

    @overload
    def scalar(
        self,
        statement: Executable,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any: ...

    def scalar(
        self,
        statement: Executable,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any:
        return self.execute(statement, params, execution_options=execution_options).scalar()

    def query(self, entity: type[_T]) -> Query[_T]:
        """The small legacy facade: ``session.query(User).filter(...).all()``."""
        return Query(cast("Session", self), mapper_of_class(entity))
