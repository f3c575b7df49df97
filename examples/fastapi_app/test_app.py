"""The example service through FastAPI's test client, one session per request.

Runs on SQLite (aiosqlite) always, and on PostgreSQL (asyncpg) and MariaDB (aiomysql)
when ``SESSIONKIT_PG_URL`` / ``SESSIONKIT_MYSQL_URL`` name a server (CI sets both), each
in a schema or database of its own, created empty.
"""

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from examples.fastapi_app.app import create_app

with warnings.catch_warnings():
    # Starlette asks for httpx2 instead of httpx; either drives the test client.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NAME = f"sk_example_{os.getpid()}"


def _postgresql(url: str) -> Iterator[AsyncEngine]:
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {NAME} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {NAME}"))
    aurl = make_url(url).set(drivername="postgresql+asyncpg")
    yield create_async_engine(aurl, connect_args={"server_settings": {"search_path": NAME}})
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {NAME} CASCADE"))
    admin.dispose()


def _mariadb(url: str) -> Iterator[AsyncEngine]:
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {NAME}"))
        conn.execute(text(f"CREATE DATABASE {NAME}"))
    aurl = make_url(url).set(drivername="mysql+aiomysql", database=NAME)
    yield create_async_engine(aurl.difference_update_query(["ssl_disabled"]))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {NAME}"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "sqlite":
        engines: Iterator[AsyncEngine] = iter(
            [create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'example.db'}")]
        )
    else:
        var = "SESSIONKIT_PG_URL" if request.param == "postgresql" else "SESSIONKIT_MYSQL_URL"
        url = os.environ.get(var)
        if not url:
            pytest.skip(f"{var} is not set")
        engines = _postgresql(url) if request.param == "postgresql" else _mariadb(url)
    engine = next(engines)
    with TestClient(create_app(engine)) as client:
        yield client
    for _ in engines:  # the generator's clean-up
        pass


def test_create_read_update_delete(client: TestClient) -> None:
    made = client.post("/authors", json={"name": "ann", "books": ["b1", "b2"]})
    assert made.status_code == 201
    ann = made.json()
    assert ann == {"id": ann["id"], "name": "ann", "books": ["b1", "b2"]}
    client.post("/authors", json={"name": "bob"})

    assert client.get(f"/authors/{ann['id']}").json()["books"] == ["b1", "b2"]
    more = client.post(f"/authors/{ann['id']}/books", params={"title": "b3"})
    assert more.status_code == 201 and more.json()["books"] == ["b1", "b2", "b3"]
    listed = client.get("/authors").json()
    assert [(a["name"], a["books"]) for a in listed] == [("ann", ["b1", "b2", "b3"]), ("bob", [])]

    assert client.delete(f"/authors/{ann['id']}").status_code == 204
    assert client.get(f"/authors/{ann['id']}").status_code == 404
    assert [a["name"] for a in client.get("/authors").json()] == ["bob"]


def test_a_failed_request_keeps_nothing(client: TestClient) -> None:
    """A duplicate name fails at COMMIT; the request's session is closed, the next
    request gets a fresh one and the first author is intact."""
    assert client.post("/authors", json={"name": "ann", "books": ["b1"]}).status_code == 201
    with pytest.raises(IntegrityError):  # the test client re-raises the server's error
        client.post("/authors", json={"name": "ann", "books": ["other"]})
    listed = client.get("/authors").json()
    assert [(a["name"], a["books"]) for a in listed] == [("ann", ["b1"])]
