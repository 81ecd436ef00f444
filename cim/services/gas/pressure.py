"""GB 50028 gas pressure classes (压力级制) read from ``pipe_segment.pressure`` text or MPa.

GB 50028-2006 Table 6.1.6 sorts town-gas pipes into seven classes by design pressure P (MPa):
低压 P < 0.01; 中压B 0.01 ≤ P ≤ 0.2; 中压A 0.2 < P ≤ 0.4; 次高压B 0.4 < P ≤ 0.8;
次高压A 0.8 < P ≤ 1.6; 高压B 1.6 < P ≤ 2.5; 高压A 2.5 < P ≤ 4.0. The table was read in two
consistent secondary copies (m.06v13.cn/company/product--151875--632874.html and
m.benwan.com.cn/service/life/2238.html), not in the standard itself. The class names that
the clearance rules already know (``cim/data/gb50289_clearances.yaml``) are accepted too.

Examples
--------
>>> pressure_class("中压B"), pressure_class("0.4MPa"), pressure_class("次高压 A")
('medium_b', 'medium_a', 'sub_high_a')
>>> pressure_class("1.0"), pressure_class("高压"), pressure_class(None)
('sub_high_a', None, None)
"""

from __future__ import annotations

import re

#: The seven classes, lowest first; the position is the class's rank in the risk score.
PRESSURE_CLASSES = (
    "low",
    "medium_b",
    "medium_a",
    "sub_high_b",
    "sub_high_a",
    "high_b",
    "high_a",
)
#: Chinese names as GB 50028 writes them.
CLASS_NAMES_ZH = {
    "low": "低压",
    "medium_b": "中压B",
    "medium_a": "中压A",
    "sub_high_b": "次高压B",
    "sub_high_a": "次高压A",
    "high_b": "高压B",
    "high_a": "高压A",
}
#: Upper bound (MPa, inclusive) of each class but the lowest, whose bound is exclusive (< 0.01).
UPPER_MPA = (
    (0.01, "low"),
    (0.2, "medium_b"),
    (0.4, "medium_a"),
    (0.8, "sub_high_b"),
    (1.6, "sub_high_a"),
    (2.5, "high_b"),
    (4.0, "high_a"),
)
_NAMES = {
    **{name.lower(): key for key, name in CLASS_NAMES_ZH.items()},
    **{key: key for key in PRESSURE_CLASSES},
    "lp": "low",
    "mpb": "medium_b",
    "mpa": "medium_a",
    "hpb": "sub_high_b",
    "hpa": "sub_high_a",
}
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(mpa|kpa|pa)?$")


def pressure_class(text: str | None) -> str | None:
    """The GB 50028 class of a pressure text (class name or a design pressure, MPa unless
    ``kPa``/``Pa`` follows); ``None`` when the text says nothing usable (``中压``, ``高压``
    without A/B are ambiguous)."""
    if text is None:
        return None
    key = re.sub(r"[\s_\-]", "", text).lower()
    if key in _NAMES:
        return _NAMES[key]
    known = {k.replace("_", ""): v for k, v in _NAMES.items()}
    if key in known:
        return known[key]
    match = _NUMBER.match(key)
    if match is None:
        return None
    value = float(match.group(1)) / {"kpa": 1e3, "pa": 1e6}.get(match.group(2) or "mpa", 1.0)
    if value < UPPER_MPA[0][0]:
        return "low"
    for upper, name in UPPER_MPA[1:]:
        if value <= upper:
            return name
    return None


def pressure_rank(name: str | None) -> int | None:
    """0 for 低压 … 6 for 高压A; ``None`` for an unknown class."""
    return PRESSURE_CLASSES.index(name) if name in PRESSURE_CLASSES else None
