"""``object_session(obj)`` and ``Session.get_bind()``, on sessionkit and on the ORM.

``object_session`` answers for every state an object passes through; ``get_bind`` returns
what the session was created with, and an unbound session's ``get_bind()`` raises
``UnboundExecutionError`` starting with the ORM's words.
"""

from __future__ import annotations

import pytest
import sqlalchemy.exc as sa_exc
import sqlalchemy.orm as orm
from models import setup_users
from reference import Api, Obs, compare
from sqlalchemy import Engine

import sessionkit
from support import message_starts


def _object_session(api: Api) -> object:
    return sessionkit.object_session if api.name == "sessionkit" else orm.object_session


def test_object_session_through_the_states(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        object_session = _object_session(api)
        session = api.Session(engine)
        other = api.Session(engine)

        def where(label: str, obj: object) -> None:
            found = object_session(obj)  # type: ignore[operator]
            name = "this" if found is session else "other" if found is other else found
            obs.append((label, api.state(obj), name))

        new = User(name="new")
        where("transient", new)
        session.add(new)
        where("pending", new)
        session.flush()
        where("persistent", new)
        sandy = session.get(User, 1)
        session.delete(sandy)
        where("marked for deletion", sandy)
        session.flush()
        where("deleted", sandy)
        session.expunge(new)
        where("expunged", new)
        other.add(new)
        where("in the other session", new)
        session.commit()
        where("deleted, committed", sandy)
        other.close()
        where("other closed", new)
        obs.error("unmapped", lambda: object_session(object()))  # type: ignore[operator]
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert [o[1:] for o in obs[:3]] == [
        ("transient", None),
        ("pending", "this"),
        ("persistent", "this"),
    ]
    assert obs[-1][1:] == ("raises", "UnmappedInstanceError")


def test_get_bind(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        obs.append(("engine", session.get_bind() is engine, session.get_bind(User) is engine))
        with engine.connect() as conn:
            joined = api.Session(bind=conn)
            obs.append(("connection", joined.get_bind() is conn))
            joined.close()
        made = api.sessionmaker(engine)()
        obs.append(("sessionmaker", made.get_bind() is engine))
        err = obs.error("unbound", lambda: api.Session().get_bind())
        obs.append(("words", message_starts(err, "This session is not bound to a single Engine")))
        session.close()
        made.close()

    obs = compare(scen, engine, ref_engine)
    assert obs[-2][1:] == ("raises", "UnboundExecutionError")
    assert obs[-1][1] is True


@pytest.mark.parametrize("target", ["class", "maker", "instance"])
def test_sessionmaker_listeners_stay_with_their_sessions(engine: Engine, target: str) -> None:
    """Each sessionmaker makes a subclass of its own, so a listener on one factory hears
    its sessions only, as in the ORM."""
    from sqlalchemy import event

    first, second = sessionkit.sessionmaker(engine), sessionkit.sessionmaker(engine)
    a, b = first(), second()
    heard: list[object] = []
    where = {"class": sessionkit.Session, "maker": first, "instance": a}[target]

    def listener(session: object, transaction: object) -> None:
        heard.append(session)

    event.listen(where, "after_transaction_create", listener)
    try:
        a.connection()
        b.connection()
    finally:
        event.remove(where, "after_transaction_create", listener)
        a.close()
        b.close()
    assert heard == ([a, b] if target == "class" else [a])
    assert isinstance(a, sessionkit.Session) and type(a) is not type(b)
    assert type(a).__name__ == "Session"


def test_unknown_event_names_are_refused() -> None:
    from sqlalchemy import event

    with pytest.raises(sa_exc.InvalidRequestError, match="do_orm_execute"):
        event.listen(sessionkit.Session, "do_orm_execute", lambda state: None)
    with pytest.raises(sa_exc.InvalidRequestError, match="No such event 'before_fluhs'"):
        event.listen(sessionkit.Session, "before_fluhs", lambda *a: None)
