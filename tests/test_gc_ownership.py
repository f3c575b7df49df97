"""The garbage collector belongs to the application.

sessionkit holds back the collector's automatic passes while it builds or bookkeeps
thousands of objects (that is half the cost of a large load). Whatever the application
does to the collector meanwhile, from another thread or from its own code running inside
the flush, stays done: sessionkit never enables or disables it, and gives back thresholds
only where they are still its own.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, String, TypeDecorator, select

import sessionkit
from sessionkit import Session

ROWS = 1500  # above the size where the pause starts


class Gate(TypeDecorator[str]):
    """Stops the flush in the middle of binding one value until the test lets it go."""

    impl = String(20)
    cache_ok = True
    inside = threading.Event()
    go = threading.Event()

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value == "gate":
            Gate.inside.set()
            assert Gate.go.wait(10), "the test never opened the gate"
        return value


Base = sessionkit.declarative_base()


class Row(Base):
    __tablename__ = "gc_rows"
    id = Column(Integer, primary_key=True)
    label = Column(Gate())


@pytest.fixture
def rows(engine: Engine) -> Iterator[Engine]:
    Base.metadata.create_all(engine)
    Gate.inside.clear()
    Gate.go.clear()
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield engine
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def flush_in_thread(engine: Engine) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with Session(engine) as s:
                s.add_all(
                    Row(id=i, label="gate" if i == ROWS // 2 else "x") for i in range(1, ROWS + 1)
                )
                s.commit()
        except BaseException as err:  # reported by the test
            errors.append(err)
            Gate.inside.set()

    thread = threading.Thread(target=work)
    thread.start()
    assert Gate.inside.wait(10), "the flush never reached the gate"
    return thread, errors


def finish(thread: threading.Thread, errors: list[BaseException]) -> None:
    Gate.go.set()
    thread.join(10)
    assert not thread.is_alive()
    assert not errors, errors


def test_gc_disable_in_another_thread_during_a_flush_stays(rows: Engine) -> None:
    gc.enable()
    thread, errors = flush_in_thread(rows)
    gc.disable()  # the application's own decision, while the flush is paused
    finish(thread, errors)
    assert not gc.isenabled(), "the flush turned the application's collector back on"


def test_gc_enable_in_another_thread_during_a_flush_stays(rows: Engine) -> None:
    gc.enable()
    thread, errors = flush_in_thread(rows)
    gc.disable()
    gc.enable()
    finish(thread, errors)
    assert gc.isenabled()


def test_thresholds_set_by_the_application_during_a_flush_stay(rows: Engine) -> None:
    gc.enable()
    gc.set_threshold(700, 10, 10)
    thread, errors = flush_in_thread(rows)
    gc.set_threshold(555, 7, 3)
    finish(thread, errors)
    assert gc.get_threshold() == (555, 7, 3)


def test_thresholds_come_back_after_bulk_work(rows: Engine) -> None:
    gc.enable()
    gc.set_threshold(701, 9, 8)
    with Session(rows) as s:
        s.add_all(Row(id=i, label="x") for i in range(1, ROWS + 1))
        s.commit()
        assert len(s.scalars(select(Row)).all()) == ROWS
    assert gc.get_threshold() == (701, 9, 8)
    assert gc.isenabled()


def test_collector_passes_are_held_back_during_a_bulk_flush(rows: Engine) -> None:
    """The point of it all: while the flush works, no automatic pass can start."""
    gc.enable()
    gc.set_threshold(100, 10, 10)
    thread, errors = flush_in_thread(rows)
    held_back = not gc.isenabled() or gc.get_threshold()[0] > 100 * ROWS
    finish(thread, errors)
    assert held_back
    assert gc.get_threshold() == (100, 10, 10)


def test_a_collector_disabled_by_the_application_stays_off(rows: Engine) -> None:
    gc.disable()
    with Session(rows) as s:
        s.add_all(Row(id=i, label="x") for i in range(1, ROWS + 1))
        s.commit()
    assert not gc.isenabled()
