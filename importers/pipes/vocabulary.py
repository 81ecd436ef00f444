"""CJJ 61 value vocabularies: feature/appurtenance -> node kind, valve states, pipe sizes, years."""

from __future__ import annotations

import re
from typing import Any

from importers.pipes.network import clean_text

FEATURE_KINDS = {
    "三通": "tee",
    "四通": "cross",
    "五通": "cross",
    "多通": "cross",
    "弯头": "bend",
    "拐点": "bend",
    "转折点": "bend",
    "变径": "reducer",
    "变材": "material_change",
    "直线点": "straight",
    "预留口": "stub",
    "出水口": "outlet",
    "出口": "outlet",
    "进水口": "inlet",
    "入户": "service",
    "非普查": "survey_end",
    "井边点": "well_edge",
    "起讫点": "end",
    "盖堵": "cap",
    "堵头": "cap",
    "上杆": "pole",
    "交叉点": "crossing",
}
APPURTENANCE_KINDS = {
    "阀门": "valve",
    "阀门井": "valve",
    "闸阀": "valve",
    "蝶阀": "valve",
    "阀门孔": "valve",
    "排气阀": "air_valve",
    "排泥阀": "drain_valve",
    "消火栓": "hydrant",
    "消防栓": "hydrant",
    "水表": "meter",
    "水表井": "meter",
    "检修井": "manhole",
    "检查井": "manhole",
    "窨井": "manhole",
    "污水井": "manhole",
    "雨水井": "manhole",
    "人孔": "manhole",
    "雨水篦": "inlet",
    "雨篦": "inlet",
    "雨水口": "inlet",
    "化粪池": "septic_tank",
    "凝水缸": "condensate_trap",
    "调压箱": "regulator",
    "手孔": "handhole",
    "接线箱": "junction_box",
    "变压器": "transformer",
    "路灯": "lamp",
    "泵站": "pump_station",
    "水塔": "tank",
    "水池": "tank",
    "水源": "reservoir",
}
VALVE_STATES = {
    "开": "open",
    "开启": "open",
    "常开": "open",
    "open": "open",
    "opened": "open",
    "关": "closed",
    "关闭": "closed",
    "常闭": "closed",
    "closed": "closed",
    "close": "closed",
    "损坏": "broken",
    "坏": "broken",
    "broken": "broken",
    "无法操作": "inaccessible",
    "不可及": "inaccessible",
    "埋没": "inaccessible",
    "inaccessible": "inaccessible",
}
_SIZE = re.compile(r"^\D*?(\d+(?:\.\d+)?)\s*(?:[x×X*＊]\s*(\d+(?:\.\d+)?))?\s*(mm)?\s*$")
_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")


def node_kind(feature: str | None, appurtenance: str | None) -> str:
    """``valve`` for 阀门, ``tee`` for 三通 ...; ``junction`` when neither says more."""
    if appurtenance and appurtenance in APPURTENANCE_KINDS:
        return APPURTENANCE_KINDS[appurtenance]
    if feature and feature in FEATURE_KINDS:
        return FEATURE_KINDS[feature]
    return "junction"


def valve_state(value: Any) -> str | None:
    """Valve state from 阀门状态 text; unknown text is kept as None (and in attrs)."""
    text = clean_text(value)
    return VALVE_STATES.get(text.lower()) if text else None


def parse_size(value: Any) -> tuple[str, float | None, float | None, float | None] | None:
    """``300``/``DN300``/``Φ300`` -> circular 300 mm; ``800×600`` -> rectangular 800 wide.

    Returns (shape, diameter, width, height) in mm, or None when the text is not a size.
    """
    text = clean_text(value)
    if text is None:
        return ("circular", None, None, None)
    match = _SIZE.match(text)
    if match is None:
        return None
    first = float(match.group(1))
    if match.group(2) is not None:
        return ("rectangular", None, first, float(match.group(2)))
    return ("circular", first, None, None)


def parse_year(value: Any) -> int | None:
    """A year from ``2005``, ``2005-03-01``, ``2005年``; None otherwise."""
    text = clean_text(value)
    if text is None:
        return None
    match = _YEAR.search(text)
    return int(match.group(1)) if match else None
