"""Run one scenario twice: on sessionkit and on the SQLAlchemy ORM (the reference).

A scenario is a function ``scenario(api, engine, obs)`` written once against the names
both libraries share (``api.Session``, ``api.declarative_base``, ``api.inspect``...). It
appends what it observes to ``obs``; ``compare()`` runs it on each library with its own
database and asserts both observation lists are equal.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy.orm as orm
import sqlalchemy.orm.exc as orm_exc
from sqlalchemy import Engine

import sessionkit
import sessionkit.exc as sk_exc
from support import SQLRecorder

STATES = ("transient", "pending", "persistent", "deleted", "detached")


@dataclass(frozen=True)
class Typed:
    """One library's typed declarative names, as ``models.typed(api)`` binds them."""

    DeclarativeBase: Any
    Mapped: Any
    mapped_column: Any
    MappedAsDataclass: Any


@dataclass
class Api:
    name: str
    Session: Any
    sessionmaker: Any
    declarative_base: Any
    inspect: Any
    make_transient: Any
    make_transient_to_detached: Any
    DetachedInstanceError: type[BaseException]
    ObjectDeletedError: type[BaseException]
    UnmappedInstanceError: type[BaseException]
    StaleDataError: type[BaseException]
    state_key: str
    typed: Typed
    # True: the shared models of models.py (user_model(), item_model()...) are declared
    # with DeclarativeBase / Mapped[] / mapped_column() instead of declarative_base() and
    # Column (see SK_TYPED, ORM_TYPED).
    typed_models: bool = False

    def state(self, obj: object) -> str:
        """The one lifecycle state name that ``inspect(obj)`` reports as True."""
        insp = self.inspect(obj)
        names = [n for n in STATES if getattr(insp, n)]
        assert len(names) == 1, names
        return names[0]

    def visible(self, obj: object) -> dict[str, Any]:
        """``obj.__dict__`` without the one bookkeeping entry."""
        return {k: v for k, v in obj.__dict__.items() if k != self.state_key}

    def loaded(self, obj: object) -> list[str]:
        return sorted(self.visible(obj))


SK = Api(
    name="sessionkit",
    Session=sessionkit.Session,
    sessionmaker=sessionkit.sessionmaker,
    declarative_base=sessionkit.declarative_base,
    inspect=sessionkit.inspect,
    make_transient=sessionkit.make_transient,
    make_transient_to_detached=sessionkit.make_transient_to_detached,
    DetachedInstanceError=sk_exc.DetachedInstanceError,
    ObjectDeletedError=sk_exc.ObjectDeletedError,
    UnmappedInstanceError=sk_exc.UnmappedInstanceError,
    StaleDataError=sk_exc.StaleDataError,
    state_key="_sa_sk_state",
    typed=Typed(
        DeclarativeBase=sessionkit.DeclarativeBase,
        Mapped=sessionkit.Mapped,
        mapped_column=sessionkit.mapped_column,
        MappedAsDataclass=sessionkit.MappedAsDataclass,
    ),
)

ORM = Api(
    name="orm",
    Session=orm.Session,
    sessionmaker=orm.sessionmaker,
    declarative_base=orm.declarative_base,
    inspect=__import__("sqlalchemy").inspect,
    make_transient=orm.make_transient,
    make_transient_to_detached=orm.make_transient_to_detached,
    DetachedInstanceError=orm_exc.DetachedInstanceError,
    ObjectDeletedError=orm_exc.ObjectDeletedError,
    UnmappedInstanceError=orm_exc.UnmappedInstanceError,
    StaleDataError=orm_exc.StaleDataError,
    state_key="_sa_instance_state",
    typed=Typed(
        DeclarativeBase=orm.DeclarativeBase,
        Mapped=orm.Mapped,
        mapped_column=orm.mapped_column,
        MappedAsDataclass=orm.MappedAsDataclass,
    ),
)

# The same two libraries, with the shared models of models.py declared typed.
SK_TYPED = replace(SK, typed_models=True)
ORM_TYPED = replace(ORM, typed_models=True)

# The pair compare() runs when it is given none: (SK, ORM) unless a test sets it, as
# test_typed_seed_stories.py does to re-run existing scenarios on typed models.
COMPARED: ContextVar[tuple[Api, Api]] = ContextVar("COMPARED", default=(SK, ORM))


class Obs(list[Any]):
    """The observation log of one run, with a recorder on that run's engine."""

    def __init__(self, api: Api, engine: Engine) -> None:
        super().__init__()
        self.api = api
        self.rec = SQLRecorder(engine)

    def sql(self, label: str = "sql", pool: bool = False) -> None:
        """Record and reset what the engine saw since the last call."""
        events = self.rec.events if pool else self.rec.without_pool()
        self.append((label, [_normalize(e) for e in events]))
        self.rec.clear()

    def error(self, label: str, fn: Callable[[], Any]) -> BaseException | None:
        """Run ``fn``; record the class name of what it raised (or that it did not)."""
        try:
            fn()
        except Exception as err:
            self.append((label, "raises", _error_name(err)))
            return err
        self.append((label, "ok"))
        return None


_EQUIVALENT = {
    # sessionkit re-declares the ORM errors with the same names and bases.
    "sessionkit.exc": "sqlalchemy.orm.exc",
}


def _error_name(err: BaseException) -> str:
    return type(err).__name__


def _normalize(event: tuple[Any, ...]) -> tuple[Any, ...]:
    return event


def run(api: Api, engine: Engine, scenario: Callable[[Api, Engine, Obs], None]) -> Obs:
    obs = Obs(api, engine)
    try:
        scenario(api, engine, obs)
    finally:
        obs.rec.detach()
    return obs


def compare(
    scenario: Callable[[Api, Engine, Obs], None],
    engine: Engine,
    ref_engine: Engine,
    apis: tuple[Api, Api] | None = None,
) -> Obs:
    """Run on both; assert equal observations; return sessionkit's for extra checks.

    ``apis`` is the (sessionkit, ORM) pair to run, ``COMPARED``'s by default.
    """
    sk_api, orm_api = COMPARED.get() if apis is None else apis
    ours = run(sk_api, engine, scenario)
    theirs = run(orm_api, ref_engine, scenario)
    mine, ref = _without_database_name(ours, engine), _without_database_name(theirs, ref_engine)
    if mine != ref:
        raise AssertionError(_diff(mine, ref))
    return ours


def _without_database_name(obs: Obs, engine: Engine) -> list[Any]:
    """The observations, with the run's database name replaced by ``<database>`` on
    MySQL/MariaDB.

    Dialect fact: MariaDB has no schemas, so the two runs use two databases of one
    server, and MariaDB names the database in SQL that SQLAlchemy emits (``DESCRIBE
    `db`.`table``` before CREATE TABLE) and in its error messages (foreign key
    violations). Everywhere else the name would differ only because the databases do.
    """
    database = engine.url.database
    if engine.dialect.name not in ("mysql", "mariadb") or not database:
        return list(obs)
    return [_replace_in(item, database, "<database>") for item in obs]


def _replace_in(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, tuple):
        return tuple(_replace_in(v, old, new) for v in value)
    if isinstance(value, list):
        return [_replace_in(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _replace_in(v, old, new) for k, v in value.items()}
    return value


def _diff(ours: list[Any], theirs: list[Any]) -> str:
    lines = ["sessionkit and the ORM observed different things:"]
    for i in range(max(len(ours), len(theirs))):
        a = ours[i] if i < len(ours) else "<missing>"
        b = theirs[i] if i < len(theirs) else "<missing>"
        if a != b:
            lines.append(f"  step {i}:\n    sessionkit: {a!r}\n    orm:        {b!r}")
    return "\n".join(lines)
