"""Session and mapper events, declared on Core's own event system.

``sqlalchemy.event`` lets a library declare event targets of its own: ``SessionEvents``
makes ``event.listen(Session | sessionmaker | session, "before_flush", fn)`` work, and
``MapperEvents`` makes ``event.listen(User, "before_insert", fn)`` work, with the ORM's
names and arguments. Registering a listener also records its name in ``hooks``, which is
what the session and the flush test before asking the dispatch: code with no listeners
pays nothing per object.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from . import hooks
from .declarative import DeclarativeMeta
from .exc import InvalidRequestError
from .mapping import Mapper
from .portable import ON_MAPPED
from .scoping import scoped_session
from .session import Session, sessionmaker
from .state import MAPPER_ATTR

# The ORM's session and instance events that sessionkit does not have: listening to
# them is refused, never accepted and left silent.
_NOT_SUPPORTED = {
    "do_orm_execute": "sessionkit runs statements through Core: listen to the Engine's "
    "'before_execute' or 'before_cursor_execute' events instead",
    "after_bulk_update": "use 'after_flush' or inspect the result of session.execute()",
    "after_bulk_delete": "use 'after_flush' or inspect the result of session.execute()",
}
_INSTANCE_EVENTS = ("init", "init_failure", "load", "refresh", "refresh_flush", "expire")


def _refuse(target: Any, identifier: str, fix: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"sessionkit does not support the event {identifier!r} (listening on {target!r}): {fix}."
    )


class SessionEvents(event.Events[Session]):
    """The ORM's session events; arguments as in ``sqlalchemy.orm.SessionEvents``."""

    _target_class_doc = "SomeSessionClassOrObject"
    _dispatch_target = Session

    @classmethod
    def _accept_with(cls, target: Any, identifier: str) -> Any:
        if isinstance(target, scoped_session):
            target = getattr(target, "session_factory", None)
        if isinstance(target, sessionmaker):
            target = target.class_
        if isinstance(target, Session) or (
            isinstance(target, type) and issubclass(target, Session)
        ):
            if identifier in _NOT_SUPPORTED:
                raise _refuse(target, identifier, _NOT_SUPPORTED[identifier])
            return target
        return None

    @classmethod
    def _listen(cls, event_key: Any, *, raw: bool = False, **kw: Any) -> None:
        if raw:
            raise InvalidRequestError(
                f"event.listen(..., {event_key.identifier!r}, raw=True) is not supported: "
                f"sessionkit passes the mapped object itself; use sessionkit.inspect(obj) "
                f"inside the listener for its state."
            )
        kw.pop("restore_load_context", None)  # sessionkit has no loader context to restore
        hooks.SESSION.add(event_key.identifier)
        event_key.base_listen(**kw)

    def after_transaction_create(self, session: Session, transaction: Any) -> None:
        """A session transaction began: autobegin, begin(), begin_nested() or a flush."""

    def after_transaction_end(self, session: Session, transaction: Any) -> None:
        """A session transaction ended (committed, rolled back or closed)."""

    def before_commit(self, session: Session) -> None:
        """Before the commit's flush."""

    def after_commit(self, session: Session) -> None:
        """After COMMIT (or RELEASE SAVEPOINT), before objects are expired."""

    def after_rollback(self, session: Session) -> None:
        """After an actual rollback, before objects are put back."""

    def after_soft_rollback(self, session: Session, previous_transaction: Any) -> None:
        """After any rollback() call, including of an already failed transaction."""

    def before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Before a flush collects its work: objects added here are flushed too."""

    def after_flush(self, session: Session, flush_context: Any) -> None:
        """After the flush's statements, before object states change."""

    def after_flush_postexec(self, session: Session, flush_context: Any) -> None:
        """After the flush, object states updated."""

    def after_begin(self, session: Session, transaction: Any, connection: Any) -> None:
        """A connection-level transaction (BEGIN or SAVEPOINT) began for the session."""

    def before_attach(self, session: Session, instance: Any) -> None:
        """An object is about to be attached."""

    def after_attach(self, session: Session, instance: Any) -> None:
        """An object was attached."""

    def transient_to_pending(self, session: Session, instance: Any) -> None: ...

    def pending_to_transient(self, session: Session, instance: Any) -> None: ...

    def persistent_to_transient(self, session: Session, instance: Any) -> None: ...

    def pending_to_persistent(self, session: Session, instance: Any) -> None: ...

    def detached_to_persistent(self, session: Session, instance: Any) -> None: ...

    def loaded_as_persistent(self, session: Session, instance: Any) -> None: ...

    def persistent_to_deleted(self, session: Session, instance: Any) -> None: ...

    def deleted_to_persistent(self, session: Session, instance: Any) -> None: ...

    def deleted_to_detached(self, session: Session, instance: Any) -> None: ...

    def persistent_to_detached(self, session: Session, instance: Any) -> None: ...

    # Declared only to be refused with a message (see _NOT_SUPPORTED).
    def do_orm_execute(self, orm_execute_state: Any) -> None: ...

    def after_bulk_update(self, update_context: Any) -> None: ...

    def after_bulk_delete(self, delete_context: Any) -> None: ...


class MapperEvents(event.Events[Mapper]):
    """The ORM's persistence events on a mapped class: ``(mapper, connection, target)``.

    Listening on an unmapped base class (a ``DeclarativeBase``, a mixin) needs
    ``propagate=True`` and then applies to every mapped subclass, now and later.
    """

    _target_class_doc = "SomeClass"
    _dispatch_target = Mapper

    @classmethod
    def _accept_with(cls, target: Any, identifier: str) -> Any:
        if identifier in _INSTANCE_EVENTS:
            if isinstance(target, Mapper) or (
                isinstance(target, type) and MAPPER_ATTR in target.__dict__
            ):
                raise _refuse(
                    target,
                    identifier,
                    "instance events are not available; use the session events "
                    "(loaded_as_persistent, pending_to_persistent...) or a validator",
                )
            return None
        if isinstance(target, Mapper):
            return target
        if isinstance(target, type):
            if issubclass(target, Mapper):
                return Mapper
            mapper = target.__dict__.get(MAPPER_ATTR)
            if mapper is not None:
                return mapper
            if _ours(target):
                return Mapper  # an unmapped base or mixin: _listen requires propagate=True
        return None

    @classmethod
    def _listen(
        cls,
        event_key: Any,
        *,
        raw: bool = False,
        retval: bool = False,
        propagate: bool = False,
        **kw: Any,
    ) -> None:
        target, identifier = event_key.target, event_key.identifier
        if raw:
            raise InvalidRequestError(
                f"event.listen(..., {identifier!r}, raw=True) is not supported: sessionkit "
                f"passes the mapped object itself."
            )
        if (
            isinstance(target, type)
            and not issubclass(target, Mapper)
            and MAPPER_ATTR not in target.__dict__
        ):
            if not propagate:
                raise InvalidRequestError(
                    f"Class {target.__name__} is not mapped, so event {identifier!r} "
                    f"cannot be listened to on it; pass propagate=True to listen on "
                    f"every mapped subclass of {target.__name__}, or listen on a "
                    f"mapped class."
                )
            # As the ORM: on each mapped subclass, now and when one is mapped later.
            hooks.MAPPER.add(identifier)
            _held.append((target, event_key, kw))
            for mapper in _mapped_subclasses(target):
                event_key.with_dispatch_target(mapper).base_listen(**kw)
            return
        hooks.MAPPER.add(identifier)
        event_key.base_listen(**kw)

    def before_insert(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """Before the object's INSERT: values set here are inserted."""

    def after_insert(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """After the INSERT, generated keys set."""

    def before_update(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """Before the UPDATE of a changed object: values set here are updated too."""

    def after_update(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """After the UPDATE (also for a changed object with no net change)."""

    def before_delete(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """Before the DELETE."""

    def after_delete(self, mapper: Mapper, connection: Any, target: Any) -> None:
        """After the DELETE."""

    # Declared only to be refused on sessionkit classes (see _accept_with).
    def init(self, target: Any, args: Any, kwargs: Any) -> None: ...

    def init_failure(self, target: Any, args: Any, kwargs: Any) -> None: ...

    def load(self, target: Any, context: Any) -> None: ...

    def refresh(self, target: Any, context: Any, attrs: Any) -> None: ...

    def refresh_flush(self, target: Any, flush_context: Any, attrs: Any) -> None: ...

    def expire(self, target: Any, attrs: Any) -> None: ...


def _ours(cls: type) -> bool:
    """An unmapped class whose subclasses sessionkit maps: one of its declarative
    classes, or a mixin of a sessionkit-mapped class. Any other class is left to other
    event systems (the ORM's, when both are in one program)."""
    if isinstance(cls, DeclarativeMeta):
        return True
    stack: list[type] = list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        if MAPPER_ATTR in sub.__dict__:
            return True
        stack.extend(sub.__subclasses__())
    return False


# Listeners on unmapped bases, applied to each subclass mapped later (see _on_mapped).
_held: list[tuple[type, Any, dict[str, Any]]] = []


def _mapped_subclasses(base: type) -> list[Mapper]:
    out: list[Mapper] = []
    stack: list[type] = list(base.__subclasses__())
    seen: set[type] = set()
    while stack:
        sub = stack.pop(0)
        if sub in seen:
            continue
        seen.add(sub)
        mapper = sub.__dict__.get(MAPPER_ATTR)
        if mapper is not None:
            out.append(mapper)
        stack.extend(sub.__subclasses__())
    return out


def _on_mapped(cls: type) -> None:
    mapper = cls.__dict__.get(MAPPER_ATTR)
    if mapper is None or not _held:
        return
    for base, event_key, kw in list(_held):
        if not event.contains(base, event_key.identifier, event_key.fn):
            _held.remove((base, event_key, kw))  # removed with event.remove() since
        elif issubclass(cls, base):
            event_key.with_dispatch_target(mapper).base_listen(**kw)


ON_MAPPED.append(_on_mapped)


def _consulted_first(events: type[event.Events[Any]]) -> None:
    """Put ``events`` first among the event classes Core asks to accept a target.

    Core asks each class that declares an event name, in the order they were declared;
    the ORM's mapper events accept *any* class and hold the listener until the ORM maps
    it, so, imported first, they would silently keep listeners meant for sessionkit's
    classes. Ours accept only sessionkit's targets and pass on every other one.
    """
    registrars: Any = event.base._registrars
    for name in dir(events):
        if not name.startswith("_") and events in registrars.get(name, ()):
            registrars[name].remove(events)
            registrars[name].insert(0, events)


_consulted_first(SessionEvents)
_consulted_first(MapperEvents)
