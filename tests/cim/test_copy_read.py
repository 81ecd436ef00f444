"""``cim.db.copy.read_fixed_rows``: fixed-width rows of a query as numpy records, by binary COPY,
checked against the same query read row by row; a NULL is refused rather than misread."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from cim.db import copy as copy_module
from cim.db.copy import read_fixed_rows

SQL = (
    "SELECT g::int8 * 1000003, g::float8 / 7, (g % 5)::int4, g % 3 = 0"
    " FROM generate_series(1, 50000) AS g"
)
FIELDS = (("id", ">i8"), ("x", ">f8"), ("small", ">i4"), ("flag", "?"))


def test_records_equal_the_rows_across_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_module, "READ_CHUNK_BYTES", 100_000)  # many chunk boundaries
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        chunks = list(read_fixed_rows(driver, SQL, FIELDS))
        with driver.cursor() as cursor:
            rows = cursor.execute(SQL).fetchall()
    finally:
        connection.close()
    assert len(chunks) > 5
    records = np.concatenate(chunks)
    assert records["id"].tolist() == [r[0] for r in rows]
    assert records["x"].tolist() == [r[1] for r in rows]  # the same doubles, bit for bit
    assert records["small"].tolist() == [r[2] for r in rows]
    assert records["flag"].tolist() == [r[3] for r in rows]


def test_a_null_is_refused(engine: Engine) -> None:
    connection = engine.raw_connection()
    try:
        with pytest.raises(ValueError, match="NULL"):
            list(
                read_fixed_rows(
                    connection.driver_connection,
                    "SELECT g::int8, CASE WHEN g = 7 THEN NULL ELSE 1.0 END::float8"
                    " FROM generate_series(1, 10) AS g",
                    (("id", ">i8"), ("x", ">f8")),
                )
            )
    finally:
        connection.close()
