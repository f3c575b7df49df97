"""Serializers read sessionkit objects as they read ORM objects.

``pydantic``'s ``from_attributes`` reads attributes (an expired one loads, as any read
does); FastAPI's ``jsonable_encoder``, which a FastAPI endpoint without a response_model
uses, walks ``vars(obj)`` and skips the keys starting with "_sa", which is why the state
key is "_sa_sk_state". Each scenario runs on sessionkit and on the SQLAlchemy ORM.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from models import setup_users
from pydantic import BaseModel, ConfigDict
from reference import Api, Obs, compare
from sqlalchemy import Engine

from support import by_label, event_kinds

with warnings.catch_warnings():
    # Starlette asks for httpx2 instead of httpx; either drives the test client.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SANDY = {"id": 1, "name": "sandy", "fullname": "Sandy"}


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    fullname: str | None


def validated(obj: Any) -> Any:
    return UserOut.model_validate(obj, from_attributes=True).model_dump()


def test_loaded_object_serializes_to_its_columns(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        obs.append(("attached", validated(sandy), jsonable_encoder(sandy)))
        obs.sql("attached: no SQL")
        session.close()
        obs.rec.clear()
        obs.append(("detached", validated(sandy), jsonable_encoder(sandy)))
        new = User(name="new")
        obs.append(("transient", jsonable_encoder(new)))
        obs.sql("no SQL")

    f = by_label(compare(scen, engine, ref_engine))
    assert f["attached"][1:] == (SANDY, SANDY)
    assert f["detached"][1:] == (SANDY, SANDY)
    assert f["transient"][1] == {"name": "new"}
    assert f["attached: no SQL"][1] == f["no SQL"][1] == []


def test_expired_object_serializes_as_in_the_orm(engine: Engine, ref_engine: Engine) -> None:
    """After commit: jsonable_encoder sees no values (it reads ``vars()``, no SQL), pydantic
    loads them while the Session is open and fails once it is closed."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        sandy = session.get(User, 1)
        session.commit()
        obs.rec.clear()
        obs.append(("encoder, expired", jsonable_encoder(sandy)))
        obs.sql("encoder: no SQL")
        obs.append(("pydantic, expired", validated(sandy)))
        obs.sql("pydantic: loads")
        session.commit()
        session.close()
        obs.rec.clear()
        obs.append(("encoder, detached", jsonable_encoder(sandy)))
        err = obs.error("pydantic, detached", lambda: validated(sandy))
        obs.append(("cause", "DetachedInstanceError" in str(err)))
        obs.sql("detached: no SQL")

    f = by_label(compare(scen, engine, ref_engine))
    assert f["encoder, expired"][1] == f["encoder, detached"][1] == {}
    assert f["encoder: no SQL"][1] == f["detached: no SQL"][1] == []
    assert f["pydantic, expired"][1] == SANDY
    assert event_kinds(f["pydantic: loads"][1]) == ["BEGIN", "SELECT"]
    assert f["pydantic, detached"][1:] == ("raises", "ValidationError")
    assert f["cause"][1] is True


def test_fastapi_endpoint_returns_the_object(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        app = FastAPI()

        @app.get("/users/{ident}", response_model=None)
        def get_user(ident: int) -> Any:
            with api.Session(engine) as session:
                return session.get(User, ident)

        @app.post("/users/{ident}/touch", response_model=None)
        def touch_user(ident: int) -> Any:
            with api.Session(engine) as session:
                user = session.get(User, ident)
                user.fullname = "Touched"
                session.commit()
                return user

        with TestClient(app) as client:
            for path in ("/users/1", "/users/2"):
                response = client.get(path)
                obs.append((path, response.status_code, response.json()))
            response = client.post("/users/1/touch")
            obs.append(("after commit", response.status_code, response.json()))
        obs.rec.clear()

    f = by_label(compare(scen, engine, ref_engine))
    assert f["/users/1"][1:] == (200, SANDY)
    assert f["/users/2"][1:] == (200, {"id": 2, "name": "patrick", "fullname": "Patrick"})
    assert f["after commit"][1:] == (200, {})
