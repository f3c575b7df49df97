"""The seed stories on typed models: the ORM's classes declared with its own
``DeclarativeBase`` / ``Mapped[]`` / ``mapped_column()``, sessionkit's with sessionkit's,
from one source text (``models_typed.py``), on SQLite, PostgreSQL and MariaDB.

The stories are not copied. Their test functions run as they are, with the pair that
``compare()`` runs (``reference.COMPARED``) set to ``SK_TYPED`` / ``ORM_TYPED``: the shared
models (``models.setup_users()``, ``setup_users_table()``...) are then typed ones. That
covers every story of test_seed_stories.py and test_readd_merge.py that takes its model
from models.py:

* rollback expires and reloads (docs/behaviour.md: rollback-1 … rollback-10;
  ``test_rolling_back``);
* close detaches, and an expired read raises DetachedInstanceError (close-1 … close-7;
  ``test_closing``), ``expire_on_commit=False`` (commit-3), the context managers;
* re-add and merge (attach-1 … attach-6: all of test_readd_merge.py).

Their own spot checks run too. The transaction-rollback program declares its model inside
the scenario, so it has a typed twin here. Last, each scenario runs with typed models on
one side and Column models on the other, within one library: a typed declaration must
change nothing that a session does.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import models
import pytest
import test_readd_merge
import test_seed_stories
from models import typed
from reference import COMPARED, ORM, ORM_TYPED, SK, SK_TYPED, Api, Obs, compare
from sqlalchemy import Engine

from support import by_label, event_kinds

# The models.py helpers that declare the shared models (typed for SK_TYPED / ORM_TYPED).
SETUPS = frozenset({"setup_users", "setup_users_table", "setup_items", "empty_users", "user_model"})


@pytest.fixture
def typed_models() -> Iterator[None]:
    """``compare()`` without an explicit pair runs SK_TYPED against ORM_TYPED."""
    token = COMPARED.set((SK_TYPED, ORM_TYPED))
    try:
        yield
    finally:
        COMPARED.reset(token)


def _names(
    code: types.CodeType, module: types.ModuleType, seen: set[str] | None = None
) -> set[str]:
    """The global names a function uses, with those of its nested functions and of the
    module's functions it calls (a scenario function)."""
    seen = set() if seen is None else seen
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const, module, seen)
    for name in found - seen:
        seen.add(name)
        value = getattr(module, name, None)
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            found |= _names(value.__code__, module, seen)
    return found


def _cases(fn: Callable[..., Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """(id, keyword arguments) for each parametrization of the test; None when it needs
    fixtures other than ``engine`` / ``ref_engine`` or a parametrization this cannot read."""
    extra = [p for p in inspect.signature(fn).parameters if p not in ("engine", "ref_engine")]
    cases: list[tuple[str, dict[str, Any]]] = [("", {})]
    for mark in getattr(fn, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        argnames, argvalues = mark.args[0], mark.args[1]
        if not isinstance(argnames, str) or "," in argnames:
            return None
        expanded = []
        for value in argvalues:
            values = getattr(value, "values", (value,))
            case_id = getattr(value, "id", None) or str(values[0])
            expanded += [(f"{i}[{case_id}]", {**kw, argnames: values[0]}) for i, kw in cases]
        cases = expanded
        extra.remove(argnames)
    return None if extra else cases


def stories(module: types.ModuleType) -> list[Any]:
    """The module's tests that ``compare()`` on a model from models.py."""
    params = []
    for name, fn in vars(module).items():
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        used = _names(fn.__code__, module)
        cases = _cases(fn)
        if "compare" not in used or not used & SETUPS or cases is None:
            continue
        for case_id, kwargs in cases:
            params.append(pytest.param(fn, kwargs, id=f"{module.__name__}::{name}{case_id}"))
    return params


SEED_STORIES = stories(test_seed_stories)
READD_STORIES = stories(test_readd_merge)


def test_the_stories_are_found() -> None:
    """The selection above must not quietly shrink to nothing."""
    seed = {p.values[0].__name__ for p in SEED_STORIES}
    assert {"test_rolling_back", "test_closing", "test_context_managers"} <= seed
    readd = {p.values[0].__name__ for p in READD_STORIES}
    assert "test_attach1_add_detached_reattaches_as_persistent" in readd
    assert "test_attach5_merge_autoflushes_first" in readd
    assert "test_attach6_make_transient_to_detached" in readd
    assert len(READD_STORIES) >= 12


@pytest.mark.parametrize(("story", "kwargs"), SEED_STORIES + READD_STORIES)
def test_story_on_typed_models(
    story: Callable[..., None],
    kwargs: dict[str, Any],
    engine: Engine,
    ref_engine: Engine,
    typed_models: None,
) -> None:
    """The story, its comparison with the ORM and its spot checks, on typed models."""
    story(engine, ref_engine, **kwargs)


def test_the_stories_run_typed_models(engine: Engine, typed_models: None) -> None:
    """What ``setup_users()`` declares under ``typed_models``: typed classes on each
    library's ``DeclarativeBase``, with the Column model's table."""
    sk_api, orm_api = COMPARED.get()
    for api, base in [(sk_api, SK.typed.DeclarativeBase), (orm_api, ORM.typed.DeclarativeBase)]:
        Base, User = models.user_model(api)
        assert issubclass(Base, base) and issubclass(User, base)
        assert User.__annotations__ == {
            "id": "Mapped[int]",
            "name": "Mapped[Optional[str]]",
            "fullname": "Mapped[str | None]",
        }
        _, Plain = models.user_model(SK if api is sk_api else ORM)
        assert [repr(c) for c in User.__table__.c] == [repr(c) for c in Plain.__table__.c]


# -- the transaction-rollback program, typed ----------------------------------------------


def typed_transaction_rollback_program(api: Api, engine: Engine, obs: Obs) -> None:
    """test_seed_stories.transaction_rollback_program with the typed ``User`` of table
    ``user`` (string key chosen by the application); the steps are the same."""
    Base, User = typed(api).string_user_model()
    Base.metadata.create_all(engine)
    obs.rec.clear()
    DBSession = api.sessionmaker(bind=engine)
    session = DBSession()
    first, second = User(id="5", name="lilei"), User(id="5", name="lucy")
    session.add(first)
    session.add(second)
    obs.append(("both pending", api.state(first), api.state(second), len(session.new)))
    session.rollback()
    obs.sql("duplicate pending keys then rollback: no SQL, no error")
    obs.append(("both transient", api.state(first), api.state(second)))

    user = User(id="7", name="hanmeimei")
    session.add(user)
    session.commit()
    obs.sql("add + commit")
    found = session.query(User).filter(User.id == "7").one()
    obs.append(("found", type(found).__name__, found is user, found.name))
    obs.sql("query")
    session.close()
    obs.sql("close")


def test_transaction_rollback_program_on_typed_models(
    engine: Engine, ref_engine: Engine, typed_models: None
) -> None:
    obs = compare(typed_transaction_rollback_program, engine, ref_engine)
    facts = by_label(obs)
    assert facts["duplicate pending keys then rollback: no SQL, no error"][1] == []
    assert facts["both transient"][1:] == ("transient", "transient")
    commit = facts["add + commit"][1]
    assert event_kinds(commit) == ["BEGIN", "INSERT", "COMMIT"]
    assert re.match(r'INSERT INTO [`"]?user[`"]? \(id, name\) VALUES', commit[1][1])
    assert commit[1][2] == ("7", "hanmeimei")
    assert facts["found"][1:] == ("User", True, "hanmeimei")
    assert event_kinds(facts["close"][1]) == ["ROLLBACK"]


# -- typed or Column: the same session behaviour ----------------------------------------


def column_transaction_rollback_program(api: Api, engine: Engine, obs: Obs) -> None:
    test_seed_stories.transaction_rollback_program(api, engine, obs)


SCENARIOS: list[tuple[Callable[[Api, Engine, Obs], None], Callable[[Api, Engine, Obs], None]]] = [
    (test_seed_stories.rolling_back, test_seed_stories.rolling_back),
    (test_seed_stories.closing, test_seed_stories.closing),
    (test_seed_stories.expire_on_commit_false, test_seed_stories.expire_on_commit_false),
    (test_seed_stories.context_managers, test_seed_stories.context_managers),
    (typed_transaction_rollback_program, column_transaction_rollback_program),
]


def _pair_scenario(
    typed_side: Callable[[Api, Engine, Obs], None],
    column_side: Callable[[Api, Engine, Obs], None],
) -> Callable[[Api, Engine, Obs], None]:
    def scenario(api: Api, engine: Engine, obs: Obs) -> None:
        (typed_side if api.typed_models else column_side)(api, engine, obs)

    return scenario


@pytest.mark.parametrize(
    "scenarios", SCENARIOS, ids=[typed_side.__name__ for typed_side, _ in SCENARIOS]
)
@pytest.mark.parametrize(
    "pair", [(SK_TYPED, SK), (ORM_TYPED, ORM)], ids=["sessionkit", "orm (the reference)"]
)
def test_typed_and_column_models_behave_alike(
    scenarios: tuple[Callable[[Api, Engine, Obs], None], Callable[[Api, Engine, Obs], None]],
    pair: tuple[Api, Api],
    engine: Engine,
    ref_engine: Engine,
) -> None:
    """Within one library, a scenario on typed models observes exactly what it observes on
    the Column models they mirror (the ORM's pair shows that the mirror is faithful)."""
    compare(_pair_scenario(*scenarios), engine, ref_engine, apis=pair)
