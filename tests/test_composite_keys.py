"""Composite primary keys: get() by a tuple or a dict of both columns, identity keys, UPDATEs
and DELETEs keyed by both columns, and a key change undone by rollback. Each scenario runs
on sessionkit and on the SQLAlchemy ORM.

Every scenario records the SQL and transaction events the engine sees, object states,
``__dict__`` contents, error class names and warning categories; the two libraries must
record the same thing. The assertions after ``compare()`` check the expected facts so that
a bug shared by both runs cannot hide.
"""

from __future__ import annotations

from typing import Any

from models_uow import membership_model
from reference import Api, Obs, compare
from sqlalchemy import Engine, select
from sqlalchemy.exc import InvalidRequestError

from support import by_label, event_kinds, named_key, sql_statements, unrecorded_rows


def _memberships(api: Api, engine: Engine) -> Any:
    Base, Membership = membership_model(api)
    Base.metadata.create_all(engine)
    with api.Session(engine) as s:
        s.add_all(
            [
                Membership(group_id=1, member="a", role="owner"),
                Membership(group_id=1, member="b", role="member"),
                Membership(group_id=2, member="a", role="member"),
            ]
        )
        s.commit()
    return Membership


def test_composite_pk_get_and_identity(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        obs.rec.clear()
        m = session.get(Membership, (1, "a"))
        obs.sql("get miss: SELECT by both columns")
        insp = api.inspect(m)
        obs.append(("identity", named_key(api, m), insp.identity))
        obs.append(("hit", session.get(Membership, (1, "a")) is m))
        obs.append(("dict form", session.get(Membership, {"group_id": 1, "member": "a"}) is m))
        obs.sql("hits: no SQL")
        obs.append(("in map", (Membership, (1, "a"), None) in session.identity_map))
        other = session.get(Membership, (2, "a"))
        obs.append(("other", other is m, other.role))
        obs.append(("missing", session.get(Membership, (2, "b"))))
        everything = session.scalars(select(Membership)).all()
        obs.append(("query", everything == [m, session.get(Membership, (1, "b")), other]))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    load = facts["get miss: SELECT by both columns"][1]
    assert event_kinds(load) == ["BEGIN", "SELECT"]
    assert "memberships.group_id = " in load[1][1] and "memberships.member = " in load[1][1]
    assert load[1][2] == (1, "a")
    assert facts["identity"][1:] == (("Membership", (1, "a"), None), (1, "a"))
    assert facts["hit"][1] is True and facts["dict form"][1] is True
    assert facts["hits: no SQL"][1] == []
    assert facts["in map"][1] is True
    assert facts["other"][1:] == (False, "member")
    assert facts["missing"][1] is None
    assert facts["query"][1] is True


def test_composite_pk_get_with_wrong_number_of_values(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        err = obs.error("one value", lambda: session.get(Membership, 1))
        obs.append(("is InvalidRequestError", isinstance(err, InvalidRequestError)))
        err = obs.error("three values", lambda: session.get(Membership, (1, "a", 2)))
        obs.append(("is InvalidRequestError", isinstance(err, InvalidRequestError)))
        session.close()

    obs = compare(scen, engine, ref_engine)
    assert obs[0] == ("one value", "raises", "InvalidRequestError")


def test_composite_pk_update_and_key_change(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        a1 = session.get(Membership, (1, "a"))
        b1 = session.get(Membership, (1, "b"))
        a2 = session.get(Membership, (2, "a"))
        obs.rec.clear()
        a1.role = "admin"
        b1.role = "admin"
        session.flush()
        obs.sql("updates: one executemany keyed by both columns")
        a2.member = "z"
        session.flush()
        obs.sql("key change")
        obs.append(("moved", named_key(api, a2), session.get(Membership, (2, "z")) is a2))
        obs.sql("hit on the new key")
        obs.append(("old key", session.get(Membership, (2, "a"))))
        session.rollback()
        obs.append(("rolled back", named_key(api, a2), a2.member, a1.role))
        session.close()

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    (update,) = sql_statements(facts["updates: one executemany keyed by both columns"][1], "UPDATE")
    assert update[0].startswith("UPDATE memberships SET role=")
    assert "memberships.group_id = " in update[0] and "memberships.member = " in update[0]
    assert update[1] == [("admin", 1, "a"), ("admin", 1, "b")]
    (change,) = sql_statements(facts["key change"][1], "UPDATE")
    assert change[1] == ("z", 2, "a")
    assert facts["moved"][1:] == (("Membership", (2, "z"), None), True)
    assert facts["hit on the new key"][1] == []
    assert facts["old key"][1] is None
    assert facts["rolled back"][1:] == (("Membership", (2, "a"), None), "a", "owner")


def test_composite_pk_delete(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        Membership = _memberships(api, engine)
        session = api.Session(engine)
        a1 = session.get(Membership, (1, "a"))
        a2 = session.get(Membership, (2, "a"))
        session.delete(a2)
        session.delete(a1)
        obs.rec.clear()
        session.flush()
        obs.sql("flush")
        obs.append(("states", api.state(a1), api.state(a2)))
        obs.append(("map", sorted(k[1] for k in session.identity_map)))
        session.commit()
        rows = unrecorded_rows(
            obs, engine, "SELECT group_id, member FROM memberships ORDER BY 1, 2"
        )
        obs.append(("rows", rows))

    obs = compare(scen, engine, ref_engine)
    facts = by_label(obs)
    (delete,) = sql_statements(facts["flush"][1], "DELETE")
    assert delete[0].startswith("DELETE FROM memberships WHERE memberships.group_id = ")
    assert delete[1] == [(1, "a"), (2, "a")]
    assert facts["states"][1:] == ("deleted", "deleted")
    assert facts["map"][1] == []
    assert facts["rows"][1] == [(1, "b")]
