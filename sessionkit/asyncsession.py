"""``AsyncSession``: the same Session, driven from asyncio.

There is one unit of work. An ``AsyncSession`` owns an ordinary ``Session`` bound to the
``AsyncEngine``'s (or ``AsyncConnection``'s) synchronous facade and runs each method that
may reach the database inside Core's greenlet bridge (``greenlet_spawn``), as
``sqlalchemy.ext.asyncio`` does for Core: the SQL, its order and every lifecycle rule are
the synchronous session's, byte for byte. Methods that never do I/O are plain calls.

Reading an expired or unloaded attribute outside an awaited call would need the database
where nothing can await it; the session refuses it before any SQL with
``ImplicitIOError`` (awaiting.py), a ``MissingGreenlet`` that names the fixes.

``sqlalchemy.ext.asyncio`` (whose package also imports the ORM) is imported only when an
async object is first used: an application with an ``AsyncEngine`` has it loaded already,
and one without pays nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.util.concurrency import greenlet_spawn
from typing_extensions import Never, TypeVarTuple, Unpack

from .exc import ArgumentError, InvalidRequestError
from .mapping import state_of
from .reading import Params, TupleAny
from .session import Session

if TYPE_CHECKING:
    from sqlalchemy.engine import Result, ScalarResult
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncResult, AsyncScalarResult
    from sqlalchemy.sql.selectable import TypedReturnsRows

    from .identity import IdentityMap
    from .transaction import SessionTransaction

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_AS = TypeVar("_AS", bound="AsyncSession")


def _sync_bind(bind: Any, call: str) -> Any:
    """The synchronous Engine or Connection behind an AsyncEngine or AsyncConnection."""
    if bind is None:
        return None
    if isinstance(bind, (Engine, Connection)):
        raise ArgumentError(
            f"{call}(bind=...) takes an AsyncEngine or an AsyncConnection, got "
            f"{type(bind).__name__}: use sessionkit.Session for a synchronous engine, or "
            f"create_async_engine() for an asyncio one."
        )
    sync = getattr(bind, "sync_engine", None)
    if sync is not None:
        return sync
    if hasattr(bind, "sync_connection"):
        if bind.sync_connection is None:
            raise InvalidRequestError(
                f"{call}(bind=<AsyncConnection>): the connection is not started; open it "
                f"first (async with engine.connect() as conn: ...)."
            )
        return bind.sync_connection
    raise ArgumentError(
        f"{call}(bind=...) takes an AsyncEngine or an AsyncConnection, got {type(bind).__name__}."
    )


async def run_to_completion(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run cleanup (``close()`` on leaving ``async with``) to its end even if the task is
    cancelled meanwhile; the cancellation is raised afterwards. Abandoned half way, the
    ROLLBACK would never be sent and the connection would return to the pool later, in
    the background, or not at all."""
    task = asyncio.ensure_future(coro)
    cancelled: BaseException | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done():
                raise
            cancelled = err
            continue
        if cancelled is not None:
            raise cancelled
        return result


class AsyncSession:
    """``Session`` for asyncio: ``await session.execute(...)``, ``await
    session.commit()``; the ORM's ``AsyncSession`` names and behaviour."""

    sync_session_class: type[Session] = Session

    def __init__(
        self,
        bind: Any = None,
        *,
        sync_session_class: type[Session] | None = None,
        **kw: Any,
    ) -> None:
        self.bind = bind
        if sync_session_class is not None:
            self.sync_session_class = sync_session_class
        self.sync_session = self.sync_session_class(bind=_sync_bind(bind, "AsyncSession"), **kw)
        self.sync_session._async_owner = weakref.ref(self)

    def __repr__(self) -> str:
        return f"<sessionkit.AsyncSession at {hex(id(self))}>"

    async def __aenter__(self: _AS) -> _AS:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await run_to_completion(self.close())

    # -- awaited: everything that may reach the database ---------------------------------

    @overload
    async def execute(
        self,
        statement: TypedReturnsRows[Unpack[_Ts]],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[_Ts]]: ...

    @overload
    async def execute(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[TupleAny]]: ...

    async def execute(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Result[Unpack[TupleAny]]:
        """The rows (and the objects built from them) are all read inside the awaited
        call: the result needs no I/O afterwards. ``stream()`` reads as it goes."""
        opts = dict(execution_options or {})
        get_own = getattr(statement, "get_execution_options", None)
        own = get_own() if get_own is not None else {}
        if any(o.get("stream_results") or o.get("yield_per") for o in (opts, own)):
            from sqlalchemy.ext.asyncio.exc import AsyncMethodRequired

            raise AsyncMethodRequired(
                "Can't use the AsyncSession.execute() method with a server-side cursor "
                "(stream_results or yield_per). Use AsyncSession.stream() (or "
                "stream_scalars()) to stream the rows."
            )
        opts["prebuffer_rows"] = True
        result: Result[Unpack[TupleAny]] = await greenlet_spawn(
            self.sync_session.execute, statement, params, execution_options=opts
        )
        return result

    @overload
    async def scalars(
        self,
        statement: TypedReturnsRows[_T],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[_T]: ...

    @overload
    async def scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[Any]: ...

    async def scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> ScalarResult[Any]:
        result = await self.execute(statement, params, execution_options=execution_options)
        return result.scalars()

    # TypedReturnsRows[Never] first, as in the ORM (and Session.scalar): mypy issue 20651.
    @overload
    async def scalar(
        self,
        statement: TypedReturnsRows[Never],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any | None: ...

    @overload
    async def scalar(
        self,
        statement: TypedReturnsRows[_T],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> _T | None: ...

    @overload
    async def scalar(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any: ...

    async def scalar(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> Any:
        result = await self.execute(statement, params, execution_options=execution_options)
        return result.scalar()

    @overload
    async def stream(
        self,
        statement: TypedReturnsRows[Unpack[_Ts]],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncResult[Unpack[_Ts]]: ...

    @overload
    async def stream(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncResult[Unpack[TupleAny]]: ...

    async def stream(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncResult[Unpack[TupleAny]]:
        """A result read batch by batch (a server-side cursor where the driver has one),
        each batch fetched and its objects built inside an awaited call."""
        from sqlalchemy.ext.asyncio import AsyncResult

        opts = {**(execution_options or {}), "stream_results": True}
        result = await greenlet_spawn(
            self.sync_session.execute, statement, params, execution_options=opts
        )
        return AsyncResult(result)

    @overload
    async def stream_scalars(
        self,
        statement: TypedReturnsRows[_T],
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncScalarResult[_T]: ...

    @overload
    async def stream_scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncScalarResult[Any]: ...

    async def stream_scalars(
        self,
        statement: Executable,
        params: Params | None = None,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> AsyncScalarResult[Any]:
        result = await self.stream(statement, params, execution_options=execution_options)
        return result.scalars()

    async def get(self, entity: type[_T], ident: Any, **kw: Any) -> _T | None:
        return await greenlet_spawn(self.sync_session.get, entity, ident, **kw)

    async def get_one(self, entity: type[_T], ident: Any, **kw: Any) -> _T:
        return await greenlet_spawn(self.sync_session.get_one, entity, ident, **kw)

    async def refresh(
        self,
        instance: object,
        attribute_names: Iterable[str] | None = None,
        with_for_update: Any = None,
    ) -> None:
        await greenlet_spawn(self.sync_session.refresh, instance, attribute_names, with_for_update)

    async def merge(self, instance: _T, *, load: bool = True) -> _T:
        return await greenlet_spawn(self.sync_session.merge, instance, load=load)

    async def delete(self, instance: object) -> None:
        """Awaited: the delete cascade may load the related objects."""
        await greenlet_spawn(self.sync_session.delete, instance)

    async def flush(self) -> None:
        await greenlet_spawn(self.sync_session.flush)

    async def commit(self) -> None:
        await greenlet_spawn(self.sync_session.commit)

    async def rollback(self) -> None:
        await greenlet_spawn(self.sync_session.rollback)

    async def close(self) -> None:
        await greenlet_spawn(self.sync_session.close)

    async def aclose(self) -> None:
        await self.close()

    async def reset(self) -> None:
        await greenlet_spawn(self.sync_session.reset)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        """``fn(sync_session, *args, **kw)`` inside the greenlet bridge: synchronous code,
        lazy loads included, runs as with a ``Session``."""
        return await greenlet_spawn(fn, self.sync_session, *args, **kw)

    async def connection(self) -> AsyncConnection:
        """The ``AsyncConnection`` of the session's transaction (begun if needed)."""
        from sqlalchemy.ext.asyncio import AsyncConnection

        sync = await greenlet_spawn(self.sync_session.connection)
        return AsyncConnection._retrieve_proxy_for_target(sync)

    # -- transactions --------------------------------------------------------------------

    def begin(self) -> AsyncSessionTransaction:
        """``async with session.begin():`` (or ``await session.begin()``)."""
        return AsyncSessionTransaction(self)

    def begin_nested(self) -> AsyncSessionTransaction:
        """A SAVEPOINT: ``async with session.begin_nested():``."""
        return AsyncSessionTransaction(self, nested=True)

    def get_transaction(self) -> AsyncSessionTransaction | None:
        sync = self.sync_session.get_transaction()
        return None if sync is None else AsyncSessionTransaction._for(self, sync)

    def get_nested_transaction(self) -> AsyncSessionTransaction | None:
        sync = self.sync_session.get_nested_transaction()
        return None if sync is None else AsyncSessionTransaction._for(self, sync)

    def in_transaction(self) -> bool:
        return self.sync_session.in_transaction()

    def in_nested_transaction(self) -> bool:
        return self.sync_session.in_nested_transaction()

    # -- plain: no I/O -------------------------------------------------------------------

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Iterable[object]) -> None:
        self.sync_session.add_all(instances)

    def expunge(self, instance: object) -> None:
        self.sync_session.expunge(instance)

    def expunge_all(self) -> None:
        self.sync_session.expunge_all()

    def expire(self, instance: object, attribute_names: Iterable[str] | None = None) -> None:
        self.sync_session.expire(instance, attribute_names)

    def expire_all(self) -> None:
        self.sync_session.expire_all()

    def __contains__(self, instance: object) -> bool:
        return instance in self.sync_session

    def __iter__(self) -> Iterator[object]:
        return iter(self.sync_session)

    @property
    def new(self) -> Any:
        return self.sync_session.new

    @property
    def dirty(self) -> Any:
        return self.sync_session.dirty

    @property
    def deleted(self) -> Any:
        return self.sync_session.deleted

    @property
    def identity_map(self) -> IdentityMap:
        return self.sync_session.identity_map

    @property
    def is_active(self) -> bool:
        return self.sync_session.is_active

    @property
    def info(self) -> dict[Any, Any]:
        return self.sync_session.info

    @property
    def autoflush(self) -> bool:
        return self.sync_session.autoflush

    @autoflush.setter
    def autoflush(self, value: bool) -> None:
        self.sync_session.autoflush = value

    @property
    def no_autoflush(self) -> Any:
        return self.sync_session.no_autoflush


class AsyncSessionTransaction:
    """What ``AsyncSession.begin()`` / ``begin_nested()`` return: awaited, or used as
    ``async with``; commit on success, rollback on an exception."""

    def __init__(self, session: AsyncSession, nested: bool = False) -> None:
        self.session = session
        self.nested = nested
        self.sync_transaction: SessionTransaction | None = None

    @classmethod
    def _for(cls, session: AsyncSession, sync: SessionTransaction) -> AsyncSessionTransaction:
        txn = cls(session, nested=sync.nested)
        txn.sync_transaction = sync
        return txn

    def _sync(self) -> SessionTransaction:
        if self.sync_transaction is None:
            raise InvalidRequestError(
                "This AsyncSessionTransaction has not started: use 'async with "
                "session.begin():' or 'await session.begin()' first."
            )
        return self.sync_transaction

    @property
    def is_active(self) -> bool:
        return self.sync_transaction is not None and self.sync_transaction.is_active

    async def start(self, is_ctxmanager: bool = False) -> AsyncSessionTransaction:
        sync = self.session.sync_session
        self.sync_transaction = await greenlet_spawn(
            sync.begin_nested if self.nested else sync.begin
        )
        if is_ctxmanager:
            self.sync_transaction.__enter__()
        return self

    def __await__(self) -> Any:
        return self.start().__await__()

    async def __aenter__(self) -> AsyncSessionTransaction:
        return await self.start(is_ctxmanager=True)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await greenlet_spawn(self._sync().__exit__, exc_type, exc, tb)

    async def commit(self) -> None:
        await greenlet_spawn(self._sync().commit)

    async def rollback(self) -> None:
        await greenlet_spawn(self._sync().rollback)


class async_sessionmaker(Generic[_AS]):
    """A factory of ``AsyncSession`` with fixed options; ``async with maker.begin() as
    session:`` for a session in a transaction committed (or rolled back) at the end."""

    class_: type[_AS]

    # Typed as the ORM's: async_sessionmaker(engine) makes AsyncSessions, class_=X X's.
    @overload
    def __init__(self, bind: Any = ..., *, class_: type[_AS], **kw: Any) -> None: ...

    @overload
    def __init__(self: async_sessionmaker[AsyncSession], bind: Any = ..., **kw: Any) -> None: ...

    def __init__(
        self,
        bind: Any = None,
        *,
        class_: type[Any] = AsyncSession,
        **kw: Any,
    ) -> None:
        if bind is not None:
            _sync_bind(bind, "async_sessionmaker")  # checked now, not at first use
        self.class_ = class_
        self.kw: dict[str, Any] = {**kw, "bind": bind}

    def __call__(self, **local_kw: Any) -> _AS:
        return self.class_(**{**self.kw, **local_kw})

    def configure(self, **new_kw: Any) -> None:
        self.kw.update(new_kw)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_AS]:
        async with self() as session, session.begin():
            yield session

    def __repr__(self) -> str:
        return f"async_sessionmaker(class_={self.class_.__name__}, {self.kw!r})"


class _AwaitableAttrs:
    __slots__ = ("_instance",)

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def __getattr__(self, name: str) -> Any:
        return greenlet_spawn(getattr, self._instance, name)


class AsyncAttrs:
    """Mixin: ``await obj.awaitable_attrs.books`` reads an attribute inside an awaited
    call, loading it (batched, as any read) if it is expired or unloaded."""

    __slots__ = ()

    @property
    def awaitable_attrs(self) -> Any:
        return _AwaitableAttrs(self)


def async_object_session(instance: object) -> AsyncSession | None:
    """The AsyncSession ``instance`` belongs to, if any."""
    state = state_of(instance)
    ref = getattr(state, "session_ref", None)
    session = None if ref is None else ref()
    owner = None if session is None else session._async_owner
    found = None if owner is None else owner()
    return found if isinstance(found, AsyncSession) else None
