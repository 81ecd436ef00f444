"""A hand-made CJJ 61 survey in two versions (tests of versions, diff and time travel).

The second survey moves well W2 by 3 m, makes L2 DN500, removes L3 and its end well W4, and adds
well W5 with pipe L4 — so the expected changes are known by construction.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

POINTS_V1 = [
    ["物探点号", "X", "Y", "地面高程", "特征", "附属物", "井底埋深"],
    ["W1", "3400000", "500000", "20.00", "", "检查井", "2.00"],
    ["W2", "3400000", "500030", "20.00", "", "检查井", "2.00"],
    ["W3", "3400000", "500060", "20.00", "", "检查井", "2.00"],
    ["W4", "3400000", "500090", "20.00", "", "检查井", "2.00"],
]
LINES_V1 = [
    ["管线编号", "起点号", "终点号", "起点埋深", "终点埋深", "管径", "材质"],
    ["L1", "W1", "W2", "2.00", "2.00", "400", "砼"],
    ["L2", "W2", "W3", "2.00", "2.00", "400", "砼"],
    ["L3", "W3", "W4", "2.00", "2.00", "400", "砼"],
]
# W2 moved 3 m east; L2 now DN500; L3 and W4 gone; W5 and L4 new.
POINTS_V2 = [
    POINTS_V1[0],
    POINTS_V1[1],
    ["W2", "3400003", "500030", "20.00", "", "检查井", "2.00"],
    POINTS_V1[3],
    ["W5", "3400030", "500060", "20.00", "", "检查井", "2.00"],
]
LINES_V2 = [
    LINES_V1[0],
    LINES_V1[1],
    ["L2", "W2", "W3", "2.00", "2.00", "500", "砼"],
    ["L4", "W3", "W5", "2.00", "2.00", "300", "PVC"],
]

MOVED_LENGTH_M = math.hypot(3.0, 30.0)
"""L1 and L2 end at W2: 30 m long before, the hypotenuse of 3 m and 30 m after W2 moved."""
CHANGES: dict[str, dict[str, dict[str, Any]]] = {
    "L1": {"length_m": {"from": 30, "to": MOVED_LENGTH_M}},
    "L2": {
        "diameter_mm": {"from": 400, "to": 500},
        # a gravity pipe's depth is to its invert (20 m ground - 2 m = 18 m): the top is 18 m + D
        "end_top_z": {"from": 18.4, "to": 18.5},
        "length_m": {"from": 30, "to": MOVED_LENGTH_M},
        "nominal_dn": {"from": 400, "to": 500},
        "start_top_z": {"from": 18.4, "to": 18.5},
    },
}
"""What ``changes`` of the diff v1 -> v2 holds for each changed feature that has any (W2 only
moved: its geometry is in ``moved_m``, not here)."""


def survey(folder: Path, points: list[list[str]], lines: list[list[str]]) -> list[Path]:
    folder.mkdir()
    paths = []
    for name, rows in (("PS_POINT.csv", points), ("PS_LINE.csv", lines)):
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        paths.append(folder / name)
    return paths
