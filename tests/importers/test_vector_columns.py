"""Column-at-a-time conversions of the vector importers equal their value-by-value oracles:
``to_floats`` = ``to_float`` per value, ``_ints`` = ``_int`` per value, ``_records`` =
``DataFrame.to_dict(orient="records")``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cim.errors import InvalidInput
from importers.citymodel.footprints import _int, _ints
from importers.vector_table import _records, to_float, to_floats

NUMERIC: list[Any] = [1, 2.5, None, math.nan, True, np.int64(3), np.float32(2.5), -0.0, 10**6]
TEXTUAL: list[Any] = ["1,200", " ", "", "3", 4, None, "5.5"]


def rows(n: int, offset: int = 0) -> np.ndarray[Any, Any]:
    return offset + np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("values", [NUMERIC, TEXTUAL, [], [None, None]])
def test_to_floats_equals_to_float_per_value(values: list[Any]) -> None:
    expected = [to_float(v, what="x", row=i) for i, v in enumerate(values)]
    got = to_floats(values, what="x", rows=rows(len(values)))
    assert got.dtype == np.float64 and len(got) == len(values)
    assert [None if math.isnan(g) else g for g in got.tolist()] == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, 2.0, math.inf], "row 13: height inf is not a finite number"),
        ([1.0, "abc", 2.0], "row 12: height 'abc' is not a number"),
        ([1.0, "-inf"], "row 12: height '-inf' is not a finite number"),
        ([1.0, [1, 2]], "row 12: height [1, 2] is not a number"),
    ],
)
def test_to_floats_names_the_row_of_a_bad_value(values: list[Any], message: str) -> None:
    with pytest.raises(InvalidInput) as numbered:
        to_floats(values, what="height", rows=rows(len(values), offset=10))
    assert str(numbered.value) == message


def test_ints_equal_int_per_value() -> None:
    for values in (
        [3.7, None, math.nan, -2.5, 4, True, np.int64(7)],
        ["4", "x", 3.2, None, " ", "2.9"],
    ):
        assert _ints(values) == [_int(v) for v in values]
    assert _ints([math.inf, 2.0]) == [None, 2] == [_int(math.inf), 2]


def test_records_equal_pandas_to_dict() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [1.5, math.nan, 3.0],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2026-01-01", "2026-06-30", None]),
        }
    )
    expected = frame.to_dict(orient="records")
    got = _records(frame)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert list(mine) == list(theirs)
        for key in mine:
            a, b = mine[key], theirs[key]
            assert type(a) is type(b), key
            assert (a != a and b != b) or a == b or (a is pd.NaT and b is pd.NaT), key
    assert _records(pd.DataFrame(index=range(2))) == [{}, {}]
