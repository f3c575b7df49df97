"""``scoped_session``: one Session per thread (or per scope), reached through one object.

A registry maps the current scope to its Session: the thread by default, or whatever
``scopefunc()`` returns (``asyncio.current_task``, a request id). The proxies forward to
that Session. They are written out one by one, not produced by ``__getattr__``, so that
type checkers see each method's own signature; the list is the ORM's, less what
sessionkit's Session does not implement, and asking for one of those raises an
``AttributeError`` that says so instead of doing something else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.engine import Result, ScalarResult
from typing_extensions import Never, TypeVarTuple, Unpack

from .exc import ArgumentError, InvalidRequestError, warn
from .mapping import mapper_of_class
from .objects import object_session as _object_session
from .query import Query
from .session import Session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import ForUpdateParameter, TypedReturnsRows

    from .identity import IdentityMap
    from .reading import Params
    from .session import _IdentitySet
    from .transaction import SessionTransaction

_S = TypeVar("_S", bound=Session)
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
TupleAny = tuple[Any, ...]


class ScopedRegistry(Generic[_S]):
    """One object per scope: ``scopefunc()`` is the key, ``createfunc()`` makes a value."""

    def __init__(self, createfunc: Callable[[], _S], scopefunc: Callable[[], Any]) -> None:
        self.createfunc = createfunc
        self.scopefunc = scopefunc
        self.registry: Any = {}

    def __call__(self) -> _S:
        key = self.scopefunc()
        try:
            return self.registry[key]  # type: ignore[no-any-return]
        except KeyError:
            return self.registry.setdefault(key, self.createfunc())  # type: ignore[no-any-return]

    def has(self) -> bool:
        """Whether the current scope has its object yet."""
        return self.scopefunc() in self.registry

    def set(self, obj: _S) -> None:
        self.registry[self.scopefunc()] = obj

    def clear(self) -> None:
        self.registry.pop(self.scopefunc(), None)


class ThreadLocalRegistry(ScopedRegistry[_S]):
    """One object per thread, in a ``threading.local``: it goes when the thread does."""

    def __init__(self, createfunc: Callable[[], _S]) -> None:
        self.createfunc = createfunc
        self.registry = threading.local()

    def __call__(self) -> _S:
        try:
            return self.registry.value  # type: ignore[no-any-return]
        except AttributeError:
            value = self.registry.value = self.createfunc()
            return value

    def has(self) -> bool:
        return hasattr(self.registry, "value")

    def set(self, obj: _S) -> None:
        self.registry.value = obj

    def clear(self) -> None:
        self.registry.__dict__.pop("value", None)


class QueryPropertyDescriptor(Protocol):
    """The type of ``query = Session.query_property()``: ``User.query`` is a ``Query[User]``."""

    def __get__(self, instance: Any, owner: type[_T]) -> Query[_T]: ...


class _QueryProperty:
    __slots__ = ("query_cls", "scoped")

    def __init__(self, scoped: scoped_session[Any], query_cls: type[Query[Any]] | None) -> None:
        self.scoped = scoped
        self.query_cls = query_cls

    def __get__(self, instance: Any, owner: type[_T]) -> Query[_T]:
        session: Session = self.scoped.registry()
        if self.query_cls is None:
            return session.query(owner)
        return self.query_cls(session, mapper_of_class(owner))


# What the ORM's scoped_session proxies and sessionkit's Session does not implement.
_NOT_IMPLEMENTED = {
    "delete_all": "call delete(obj) for each object",
    "merge_all": "call merge(obj) for each object",
    "bulk_save_objects": "add_all() the objects, or run Core's insert() through execute()",
    "bulk_insert_mappings": "run execute(insert(User), [dict, ...]): Core's executemany",
    "bulk_update_mappings": "run execute(update(User.__table__), [dict, ...]) with bindparam()",
    "binds": "a Session has one bind: sessionmaker(bind=engine)",
    "execution_options": "pass execution_options= to execute(), scalars() or scalar()",
    "identity_key": "use inspect(obj).identity_key",
}


class scoped_session(Generic[_S]):
    """A registry of Sessions, one per scope, that also acts as the current one.

    ``Session = scoped_session(sessionmaker(bind=engine))``; then ``Session()`` (or any
    proxied method, ``Session.add(obj)``) reaches this thread's session, and
    ``Session.remove()`` closes and forgets it at the end of the unit of work.
    """

    session_factory: sessionmaker[_S]
    registry: ScopedRegistry[_S]

    def __init__(
        self, session_factory: sessionmaker[_S], scopefunc: Callable[[], Any] | None = None
    ) -> None:
        if not callable(session_factory):
            raise ArgumentError(
                f"scoped_session() takes a factory of Sessions, such as "
                f"sessionmaker(bind=engine), got {type(session_factory).__name__}: write "
                f"scoped_session(sessionmaker(bind=engine))."
            )
        if scopefunc is not None and not callable(scopefunc):
            raise ArgumentError(
                f"scoped_session(scopefunc=...) takes a function returning the current "
                f"scope's key, such as asyncio.current_task (not its result), got "
                f"{type(scopefunc).__name__}."
            )
        self.session_factory = session_factory
        if scopefunc is not None:
            self.registry = ScopedRegistry(self._create, scopefunc)
        else:
            self.registry = ThreadLocalRegistry(self._create)

    def _create(self, **kw: Any) -> _S:
        session = self.session_factory(**kw)
        if not isinstance(session, Session):
            raise ArgumentError(
                f"scoped_session's factory made a {type(session).__module__}."
                f"{type(session).__qualname__}, not a sessionkit Session: pass "
                f"sessionkit.sessionmaker(...) (or a function returning sessionkit Sessions)."
            )
        return session

    def __call__(self, **kw: Any) -> _S:
        """The current scope's Session, made by the factory (with ``kw``) if it has none."""
        if not kw:
            return self.registry()
        if self.registry.has():
            raise InvalidRequestError(
                "Scoped session is already present; no new arguments may be specified. "
                "Call remove() to end this scope's session first, or configure() the "
                "factory before any session is made."
            )
        session = self._create(**kw)
        self.registry.set(session)
        return session

    def configure(self, **kwargs: Any) -> None:
        """Reconfigure the factory; a session that already exists keeps its settings."""
        if self.registry.has():
            warn(
                "At least one scoped session is already present.  configure() can not affect "
                "sessions that have already been created. (Call remove() first to have the "
                "next session made with the new settings.)"
            )
        self.session_factory.configure(**kwargs)

    def remove(self) -> None:
        """Close the current scope's Session (ROLLBACK, connection back to the pool) and
        forget it; the next call makes a new one. Forgotten even if ``close()`` raised."""
        try:
            if self.registry.has():
                self.registry().close()
        finally:
            self.registry.clear()

    def query_property(self, query_cls: type[Query[Any]] | None = None) -> QueryPropertyDescriptor:
        """A class attribute giving ``session.query(cls)`` of the current session:
        ``User.query.filter(...)``."""
        if query_cls is not None and not (
            isinstance(query_cls, type) and issubclass(query_cls, Query)
        ):
            raise ArgumentError(
                f"query_property(query_cls=...) takes a subclass of sessionkit.Query, got "
                f"{query_cls!r}."
            )
        return _QueryProperty(self, query_cls)

    if not TYPE_CHECKING:  # a type checker must not see every name as a valid attribute

        def __getattr__(self, name: str) -> Any:
            if name in _NOT_IMPLEMENTED:
                raise AttributeError(
                    f"sessionkit's Session has no {name!r}, so scoped_session does not proxy "
                    f"it (the ORM's does): {_NOT_IMPLEMENTED[name]}.",
                    name=name,
                    obj=self,
                )
            # What the current session (if any) or its class has; both are None while
            # unpickling, before __init__ has run.
            registry = self.__dict__.get("registry")
            factory = self.__dict__.get("session_factory")
            if registry is not None and registry.has():
                known = registry()
            else:
                known = getattr(factory, "class_", Session)
            if not name.startswith("_") and hasattr(known, name):
                raise AttributeError(
                    f"scoped_session does not proxy {name!r}, as the ORM's does not: ask "
                    f"the current session, which calling the scoped_session returns "
                    f"(DBSession().{name} for DBSession = scoped_session(...)).",
                    name=name,
                    obj=self,
                )
            raise AttributeError(
                f"'scoped_session' object has no attribute {name!r}", name=name, obj=self
            )

    # -- proxies: the current session's methods ------------------------------------------

    def __contains__(self, instance: object) -> bool:
        return instance in self.registry()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.registry())

    def add(self, instance: object) -> None:
        self.registry().add(instance)

    def add_all(self, instances: Iterable[object]) -> None:
        self.registry().add_all(instances)

    def begin(self) -> SessionTransaction:
        return self.registry().begin()

    def begin_nested(self) -> SessionTransaction:
        return self.registry().begin_nested()

    def close(self) -> None:
        self.registry().close()

    def reset(self) -> None:
        self.registry().reset()

    def commit(self) -> None:
        self.registry().commit()

    def connection(self) -> Connection:
        return self.registry().connection()

    def delete(self, instance: object) -> None:
        self.registry().delete(instance)

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
        return self.registry().execute(statement, params, execution_options=execution_options)

    def expire(self, instance: object, attribute_names: Iterable[str] | None = None) -> None:
        self.registry().expire(instance, attribute_names)

    def expire_all(self) -> None:
        self.registry().expire_all()

    def expunge(self, instance: object) -> None:
        self.registry().expunge(instance)

    def expunge_all(self) -> None:
        self.registry().expunge_all()

    def flush(self) -> None:
        self.registry().flush()

    def get(
        self,
        entity: type[_T],
        ident: Any,
        *,
        populate_existing: bool = False,
        with_for_update: ForUpdateParameter = None,
    ) -> _T | None:
        return self.registry().get(
            entity, ident, populate_existing=populate_existing, with_for_update=with_for_update
        )

    def get_one(
        self,
        entity: type[_T],
        ident: Any,
        *,
        populate_existing: bool = False,
        with_for_update: ForUpdateParameter = None,
    ) -> _T:
        return self.registry().get_one(
            entity, ident, populate_existing=populate_existing, with_for_update=with_for_update
        )

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine | Connection:
        return self.registry().get_bind(mapper, **kw)

    def is_modified(self, instance: object) -> bool:
        return self.registry().is_modified(instance)

    def merge(self, instance: _T, *, load: bool = True) -> _T:
        return self.registry().merge(instance, load=load)

    def query(self, entity: type[_T]) -> Query[_T]:
        return self.registry().query(entity)

    def refresh(
        self,
        instance: object,
        attribute_names: Iterable[str] | None = None,
        with_for_update: ForUpdateParameter = None,
    ) -> None:
        self.registry().refresh(instance, attribute_names, with_for_update)

    def rollback(self) -> None:
        self.registry().rollback()

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
        return self.registry().scalar(statement, params, execution_options=execution_options)

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
        return self.registry().scalars(statement, params, execution_options=execution_options)

    @classmethod
    def object_session(cls, instance: object) -> Session | None:
        """The session ``instance`` is attached to, whatever the scope: ``object_session()``."""
        return _object_session(instance)

    # -- proxies: the current session's attributes ---------------------------------------

    @property
    def bind(self) -> Engine | Connection | None:
        return self.registry().bind

    @bind.setter
    def bind(self, bind: Engine | Connection | None) -> None:
        self.registry().bind = bind

    @property
    def autoflush(self) -> bool:
        return self.registry().autoflush

    @autoflush.setter
    def autoflush(self, value: bool) -> None:
        self.registry().autoflush = value

    @property
    def dirty(self) -> _IdentitySet:
        return self.registry().dirty

    @property
    def deleted(self) -> _IdentitySet:
        return self.registry().deleted

    @property
    def new(self) -> _IdentitySet:
        return self.registry().new

    @property
    def identity_map(self) -> IdentityMap:
        return self.registry().identity_map

    @property
    def is_active(self) -> bool:
        return self.registry().is_active

    @property
    def no_autoflush(self) -> AbstractContextManager[_S]:
        return self.registry().no_autoflush

    @property
    def info(self) -> dict[Any, Any]:
        return self.registry().info
