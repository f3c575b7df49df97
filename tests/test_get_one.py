"""``Session.get_one()`` (docs/behaviour.md, identity-10): ``get()`` for a row that must
exist, on sessionkit and on the ORM.

A hit is exactly ``get()``'s (same SQL, same object, no SQL from the identity map); a
miss raises ``sqlalchemy.exc.NoResultFound`` where ``get()`` returns None, whatever the
reason there is no row: never there, deleted behind the session's back, deleted by the
session itself, or a NULL key. sessionkit's message starts with the ORM's words and then
names the class and the key.
"""

from __future__ import annotations

import warnings
from typing import Any

import sqlalchemy.exc as sa_exc
from models import setup_users
from reference import SK, Api, Obs, compare
from sqlalchemy import Engine

from sessionkit import Session
from support import behind_the_back, by_unique_label, event_kinds, message_starts_or_none

ORM_WORDS = "No row was found when one was required"


def _miss(obs: Obs, label: str, call: Any) -> None:
    """Record the error of a miss: its class, its base and the ORM's words."""
    err = obs.error(label, call)
    obs.append((f"{label}: NoResultFound", isinstance(err, sa_exc.NoResultFound)))
    obs.append((f"{label}: message", message_starts_or_none(err, ORM_WORDS)))


def test_hit_and_miss(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        sandy = session.get_one(User, 1)
        obs.sql("hit: SELECT")
        obs.append(("loaded", sandy.name, api.state(sandy)))
        again = session.get_one(User, 1)
        obs.sql("identity map hit: no SQL")
        obs.append(("same object as get()", again is sandy, session.get(User, 1) is sandy))
        _miss(obs, "miss", lambda: session.get_one(User, 99))
        obs.sql("miss: SELECT")
        obs.append(("session still usable", session.get_one(User, 2).name))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["hit: SELECT"][1]) == ["BEGIN", "SELECT"]
    assert facts["loaded"][1:] == ("sandy", "persistent")
    assert facts["identity map hit: no SQL"][1] == []
    assert facts["same object as get()"][1:] == (True, True)
    assert facts["miss"][1:] == ("raises", "NoResultFound")
    assert facts["miss: NoResultFound"][1] is True
    assert facts["miss: message"][1] is True
    assert event_kinds(facts["miss: SELECT"][1]) == ["SELECT"]
    assert facts["session still usable"][1] == "patrick"


def test_rows_that_are_gone(engine: Engine, ref_engine: Engine) -> None:
    """An expired object whose row was deleted elsewhere, and one the session deleted."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get_one(User, 1)
        patrick = session.get_one(User, 2)
        session.commit()  # both expired
        behind_the_back(obs, engine, "DELETE FROM user_account WHERE id = 1")
        obs.rec.clear()
        _miss(obs, "deleted elsewhere", lambda: session.get_one(User, 1))
        obs.sql("deleted elsewhere: SQL")
        obs.append(("deleted elsewhere: state", api.state(sandy), sandy in session))
        session.delete(patrick)
        session.flush()
        obs.rec.clear()
        _miss(obs, "deleted here", lambda: session.get_one(User, 2))
        obs.sql("deleted here: SQL")
        obs.append(("deleted here: state", api.state(patrick)))
        session.rollback()
        obs.append(("after rollback", session.get_one(User, 2) is patrick, patrick.name))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    for label in ("deleted elsewhere", "deleted here"):
        assert facts[label][1:] == ("raises", "NoResultFound")
        assert facts[f"{label}: message"][1] is True
    assert facts["after rollback"][1:] == (True, "patrick")


def test_populate_existing(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get_one(User, 1)
        with session.no_autoflush:
            sandy.name = "changed"
            obs.rec.clear()
            same = session.get_one(User, 1, populate_existing=True)
            obs.sql("populate_existing: SELECT")
        obs.append(("overwritten", same is sandy, sandy.name, session.is_modified(sandy)))
        _miss(obs, "miss", lambda: session.get_one(User, 99, populate_existing=True))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["populate_existing: SELECT"][1]) == ["SELECT"]
    assert facts["overwritten"][1:] == (True, "sandy", False)
    assert facts["miss"][1:] == ("raises", "NoResultFound")


def test_null_key_and_wrong_arguments(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _miss(obs, "NULL key", lambda: session.get_one(User, None))
        obs.append(("NULL key: warnings", [str(w.message)[:50] for w in caught]))
        sandy = session.get_one(User, 1)
        obs.error("an instance for the class", lambda: session.get_one(sandy, 1))
        obs.error("a wrong identifier", lambda: session.get_one(User, (1, 2)))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["NULL key"][1:] == ("raises", "NoResultFound")
    assert facts["NULL key: warnings"][1] == ["fully NULL primary key identity cannot load any ob"]
    assert facts["an instance for the class"][1:] == ("raises", "ArgumentError")
    assert facts["a wrong identifier"][1:] == ("raises", "InvalidRequestError")


def test_message_names_the_class_and_the_key(engine: Engine) -> None:
    User = setup_users(SK, engine)
    with Session(engine) as session:
        try:
            session.get_one(User, 42)
        except sa_exc.NoResultFound as err:
            message = str(err)
        else:
            raise AssertionError("get_one() of a missing row returned")
    assert message.startswith(ORM_WORDS)
    assert "get_one(User, 42)" in message
    assert "no User row with primary key 42" in message
