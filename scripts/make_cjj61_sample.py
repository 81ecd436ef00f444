#!/usr/bin/env python3
"""Write a CJJ 61-2017 point + line table set (给水 JS) derived from the real KY4 network.

Inputs (real, BSD, see data/samples/SOURCES.md): ``data/samples/ky4.inp`` (EPANET, EPSG:3547
US ft) and ``data/samples/ky4_elevation.tif`` (DEM, heights in metres). Outputs, UTF-8 with BOM
as Excel writes them: ``data/samples/cjj61/JS_POINT.csv`` and ``JS_LINE.csv``.

What is real and what is derived:
  * positions: the KY4 junctions, tanks and reservoir, transformed by pyproj to UTM 16N
    (EPSG:32616) and written the CJJ 61 way (X = northing, Y = easting), to the millimetre;
    the pipes' EPANET vertices are dropped (CJJ 61 lines run point to point);
  * 地面高程: the DEM cell value at each point;
  * 管径: the EPANET diameter in mm; 特征: from the number of pipes at the point (三通 = 3 ...);
  * 管线编号 JSL1.. numbers the lines, so KY4's parallel pipes (same two points) stay distinct;
  * derived, not surveyed: 管顶 cover of 1.0 m at every line end (起点/终点埋深 = 1.0, 高程 =
    地面高程 - 1.0), 材质 from the Hazen-Williams C (>= 140 PE, >= 120 球墨铸铁, else 铸铁),
    埋设方式 直埋. The pumps are lines with no diameter and 备注 水泵.
Run: ``.venv/bin/python scripts/make_cjj61_sample.py`` (deterministic; rewrites both files).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import rasterio
import wntr
from pyproj import Transformer

HERE = Path(__file__).resolve().parents[1] / "data" / "samples"
OUT = HERE / "cjj61"
COVER_M = 1.0
POINT_HEADERS = ["物探点号", "图上点号", "X", "Y", "地面高程", "特征", "附属物", "井底埋深", "备注"]
LINE_HEADERS = [
    "管线编号", "起点号", "终点号", "起点埋深", "终点埋深", "起点高程", "终点高程", "管径", "材质",
    "埋设方式", "压力", "权属单位", "建设年代", "备注",
]  # fmt: skip


def feature_of(degree: int, kind: str) -> tuple[str, str]:
    """(特征, 附属物) of a point from its pipe count and EPANET type."""
    if kind == "tank":
        return "", "水塔"
    if kind == "reservoir":
        return "", "水源"
    return {1: "预留口", 2: "直线点", 3: "三通", 4: "四通"}.get(degree, "多通"), ""


def material_of(roughness: float) -> str:
    return "PE" if roughness >= 140 else ("球墨铸铁" if roughness >= 120 else "铸铁")


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = wntr.network.WaterNetworkModel(str(HERE / "ky4.inp"))
    to_utm = Transformer.from_crs("EPSG:3547", "EPSG:32616", always_xy=True)
    names = list(wn.node_name_list)
    xy = np.array([wn.get_node(n).coordinates for n in names], dtype=np.float64)
    east, north = to_utm.transform(xy[:, 0], xy[:, 1])
    with rasterio.open(HERE / "ky4_elevation.tif") as dem:
        ground = np.array([v[0] for v in dem.sample(xy.tolist())], dtype=np.float64)
        nodata = dem.nodata
    degree: Counter[str] = Counter()
    for _, link in wn.links():
        degree[link.start_node_name] += 1
        degree[link.end_node_name] += 1
    codes = {name: f"JS{i + 1}" for i, name in enumerate(names)}
    ground_of: dict[str, float] = {}
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "JS_POINT.csv", "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(POINT_HEADERS)
        for i, name in enumerate(names):
            node = wn.get_node(name)
            height = ground[i]
            if nodata is not None and (height == nodata or not math.isfinite(height)):
                raise SystemExit(f"{name}: no DEM value")
            ground_of[name] = round(float(height), 3)
            feature, appurtenance = feature_of(degree[name], node.node_type.lower())
            writer.writerow([
                codes[name], name, f"{north[i]:.3f}", f"{east[i]:.3f}", f"{ground_of[name]:.3f}",
                feature, appurtenance, "", "",
            ])  # fmt: skip
    with open(OUT / "JS_LINE.csv", "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(LINE_HEADERS)
        for number, (name, link) in enumerate(wn.links(), start=1):
            start, end = link.start_node_name, link.end_node_name
            is_pipe = link.link_type == "Pipe"
            writer.writerow([
                f"JSL{number}", codes[start], codes[end], f"{COVER_M:.2f}", f"{COVER_M:.2f}",
                f"{ground_of[start] - COVER_M:.3f}", f"{ground_of[end] - COVER_M:.3f}",
                f"{round(link.diameter * 1000)}" if is_pipe else "",
                material_of(link.roughness) if is_pipe else "", "直埋", "", "", "",
                f"EPANET {name}" if is_pipe else f"水泵 EPANET {name}",
            ])  # fmt: skip
    print(f"wrote {len(names)} points and {wn.num_links} lines to {OUT}")


if __name__ == "__main__":
    main()
