"""``cim.db.copy.reserve_id_array``: ids for rows that a COPY will write, drawn from the table's
sequence. A bulk writer holding the table exclusively takes its range in one step; any other
reservation of the same table waits for it instead of drawing values inside that range."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.copy import reserve_id_array


@pytest.fixture
def table(engine: Engine) -> Iterator[str]:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE reserve_t (id bigserial PRIMARY KEY, x int)")
    yield "reserve_t"
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE reserve_t")


def _nextval(session: Session) -> int:
    value = session.execute(text("SELECT nextval('reserve_t_id_seq')")).scalar_one()
    return int(value)


def test_an_exclusive_holder_takes_one_range_and_others_wait_for_it(
    engine: Engine, table: str
) -> None:
    others: list[np.ndarray] = []
    with Session(engine) as bulk, bulk.begin():
        bulk.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        before = _nextval(bulk)
        ids = reserve_id_array(bulk, table=table, count=100_000)

        def reserve_beside() -> None:
            with Session(engine) as other, other.begin():
                others.append(reserve_id_array(other, table=table, count=10))

        beside = threading.Thread(target=reserve_beside)
        beside.start()
        beside.join(timeout=1.0)
        assert beside.is_alive()  # waits for the bulk writer's lock, draws nothing meanwhile
        # The sequence moved by exactly the range.
        assert ids.tolist() == list(range(int(before) + 1, int(before) + 100_001))
        assert _nextval(bulk) == int(ids[-1]) + 1
    beside.join(timeout=10)
    assert not beside.is_alive()
    assert others[0].tolist() == list(range(int(ids[-1]) + 2, int(ids[-1]) + 12))


def test_without_the_lock_ids_come_from_nextval_and_never_repeat(
    engine: Engine, table: str
) -> None:
    with Session(engine) as first, first.begin():
        a = reserve_id_array(first, table=table, count=1000)
        with Session(engine) as second, second.begin():
            b = reserve_id_array(second, table=table, count=1000)  # ROW EXCLUSIVE: no wait
        c = reserve_id_array(first, table=table, count=5)
    taken = np.concatenate([a, b, c])
    assert len(np.unique(taken)) == len(taken) == 2005
    assert (np.diff(a) == 1).all() and (np.diff(b) == 1).all()
    with Session(engine) as session:
        assert _nextval(session) == int(c[-1]) + 1
