"""Stress: 8 threads x 500 transfers between 50 accounts through sessionkit sessions.

Each transfer is one unit of work run by ``run_transaction``: read two accounts, move
money, commit. Accounts are versioned (``version_id_col``), so a transfer that lost a
race raises StaleDataError and is retried on fresh data, as are the deadlocks and
serialization failures the server may report. At the end the total balance is what it
was, no account is negative, every transfer is accounted for, and no connection leaked.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, func, select

import sessionkit
from sessionkit.exc import StaleDataError
from support import Backend

THREADS = 8
TRANSFERS = 500
ACCOUNTS = 50
OPENING = 1_000


def _model() -> Any:
    Base = sessionkit.declarative_base()

    class Account(Base):
        __tablename__ = "accounts"
        id = Column(Integer, primary_key=True, autoincrement=False)
        balance = Column(Integer, nullable=False)
        version = Column(Integer, nullable=False)
        __mapper_args__ = {"version_id_col": version}

    class Transfer(Base):
        __tablename__ = "transfers"
        id = Column(Integer, primary_key=True)
        src = Column(Integer, nullable=False)
        dst = Column(Integer, nullable=False)
        amount = Column(Integer, nullable=False)

    return Base, Account, Transfer


def _retry_on(err: BaseException) -> bool:
    return sessionkit.is_retryable(err) or isinstance(err, StaleDataError)


def test_concurrent_transfers_keep_the_total(backend: Backend, engine: Engine) -> None:
    if backend.is_sqlite:
        pytest.skip("concurrent writers need a server: SQLite allows one writer at a time")
    Base, Account, Transfer = _model()
    Base.metadata.create_all(engine)
    factory = sessionkit.sessionmaker(engine)
    with factory() as session:
        session.add_all([Account(id=i, balance=OPENING) for i in range(ACCOUNTS)])
        session.commit()

    done = [0] * THREADS
    refused = [0] * THREADS
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            for _ in range(TRANSFERS):
                src, dst = rng.sample(range(ACCOUNTS), 2)
                amount = rng.randint(1, 150)

                def transfer(
                    session: sessionkit.Session,
                    src: int = src,
                    dst: int = dst,
                    amount: int = amount,
                ) -> bool:
                    a = session.get(Account, src)
                    b = session.get(Account, dst)
                    if a.balance < amount:
                        return False
                    a.balance -= amount
                    b.balance += amount
                    session.add(Transfer(src=src, dst=dst, amount=amount))
                    return True

                if sessionkit.run_transaction(
                    factory, transfer, attempts=25, base_delay=0.001, retry_on=_retry_on
                ):
                    done[n] += 1
                else:
                    refused[n] += 1
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(done) + sum(refused) == THREADS * TRANSFERS
    assert engine.pool.checkedout() == 0

    with engine.connect() as conn:
        total, lowest = conn.execute(
            select(func.sum(Account.balance), func.min(Account.balance))
        ).one()
        transfers = conn.execute(select(func.count()).select_from(Transfer)).scalar_one()
        moved = conn.execute(
            select(Transfer.src, Transfer.dst, Transfer.amount).order_by(Transfer.id)
        ).all()
        balances = dict(conn.execute(select(Account.id, Account.balance)).all())
    assert total == ACCOUNTS * OPENING
    assert lowest >= 0
    assert transfers == sum(done)
    # Every balance is its opening balance plus what the recorded transfers moved.
    expected = dict.fromkeys(range(ACCOUNTS), OPENING)
    for src, dst, amount in moved:
        expected[src] -= amount
        expected[dst] += amount
    assert balances == expected
