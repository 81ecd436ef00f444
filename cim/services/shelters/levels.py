"""Per-level shelter defaults (GB 51143 levels): service radius and per-capita effective area.

Why one table: the importer computes a capacity from an effective area with the per-capita area
of the shelter's level, and the planner uses the same table for service radii; both can be
overridden per plan. The values are configurable defaults, not verified norms - see ``SOURCES``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cim.db.models.shelter import SHELTER_LEVELS
from cim.errors import InvalidInput


@dataclass(frozen=True)
class LevelDefaults:
    """Service radius (m, straight line) and effective area per person (m²) of one level."""

    radius_m: float
    area_per_person_m2: float


DEFAULT_LEVELS: dict[str, LevelDefaults] = {
    # 紧急避难场所: "就地" shelter, 500 m ~ 10 min on foot (Guangdong guidance, see SOURCES).
    "emergency": LevelDefaults(radius_m=500.0, area_per_person_m2=0.5),
    # 短期/中期/长期固定避难场所: "就近" shelters; radii 1.0/1.5/2.5 km and 2.0/3.0/4.5 m² are the
    # commonly cited GB 51143 table values, UNVERIFIED against the standard's own text.
    "short": LevelDefaults(radius_m=1000.0, area_per_person_m2=2.0),
    "medium": LevelDefaults(radius_m=1500.0, area_per_person_m2=3.0),
    "long": LevelDefaults(radius_m=2500.0, area_per_person_m2=4.5),
    # 中心避难场所: serves a city district (<= 50 km², <= 500,000 people); treated like a long-term
    # fixed shelter for radius and area (our assumption).
    "central": LevelDefaults(radius_m=2500.0, area_per_person_m2=4.5),
}

SOURCES: dict[str, str] = {
    "levels": "GB 51143-2015 §3.1.4 / 基本规定 4: 紧急, 固定 (短期/中期/长期), 中心 "
    "(yjgl.qhd.gov.cn/home/details?id=14006) - confirmed",
    "emergency.radius_m": "500 m, about 10 minutes on foot: Guangdong guidance "
    "(whgsj.com/zwgk/fggw/zcjd/bmjd/content/post_58898.html) - confirmed for 紧急 only",
    "fixed.radius_m": "1.0 / 1.5 / 2.5 km for 短期 / 中期 / 长期: commonly cited GB 51143 table "
    "values - UNVERIFIED (no copy of the table text was found)",
    "area_per_person_m2": "0.5 / 2.0 / 3.0 / 4.5 m² per person: commonly cited GB 51143 values - "
    "UNVERIFIED; GB 21734-2008 §5.4 asks > 1.5 m² per person for a shelter site",
    "central": "中心 <= 50 km² and <= 500,000 people (gf.cabr-fire.com/m/article-42575.htm); "
    "radius and area taken equal to 长期 - an assumption",
}

LEVEL_SYNONYMS: dict[str, str] = {
    "紧急": "emergency",
    "緊急": "emergency",
    "紧急避难场所": "emergency",
    "短期": "short",
    "短期固定": "short",
    "短期固定避难场所": "short",
    "中期": "medium",
    "中期固定": "medium",
    "中期固定避难场所": "medium",
    "长期": "long",
    "長期": "long",
    "长期固定": "long",
    "长期固定避难场所": "long",
    "中心": "central",
    "中心避难场所": "central",
    "short-term": "short",
    "medium-term": "medium",
    "long-term": "long",
}


def normalise_level(value: object) -> str:
    """The canonical level for ``value`` (a level name or a Chinese synonym); InvalidInput if none.

    Examples
    --------
    >>> normalise_level("短期固定避难场所")
    'short'
    >>> normalise_level(" Emergency ")
    'emergency'
    """
    text = str(value).strip()
    lowered = text.lower()
    if lowered in SHELTER_LEVELS:
        return lowered
    if text in LEVEL_SYNONYMS or lowered in LEVEL_SYNONYMS:
        return LEVEL_SYNONYMS.get(text) or LEVEL_SYNONYMS[lowered]
    raise InvalidInput(
        f"unknown shelter level {value!r}; one of {', '.join(SHELTER_LEVELS)} "
        "(or map it with a values: table in --mapping)"
    )


def level_table(
    radius_m: dict[str, float] | None = None, area_per_person_m2: dict[str, float] | None = None
) -> dict[str, LevelDefaults]:
    """The defaults with per-level overrides applied; InvalidInput for unknown levels or <= 0."""
    table = dict(DEFAULT_LEVELS)
    for name, overrides in (("radius_m", radius_m), ("area_per_person_m2", area_per_person_m2)):
        for level, value in (overrides or {}).items():
            if level not in table:
                raise InvalidInput(f"{name}: unknown level {level!r}")
            if not value > 0:
                raise InvalidInput(f"{name}[{level}] must be > 0, got {value}")
            current = table[level]
            table[level] = (
                LevelDefaults(radius_m=float(value), area_per_person_m2=current.area_per_person_m2)
                if name == "radius_m"
                else LevelDefaults(radius_m=current.radius_m, area_per_person_m2=float(value))
            )
    return table
