"""The risk score of an underground space next to a gas pipe, and its defaults and sources.

A space (a well, chamber, utility tunnel or basement) at horizontal distance ``d`` from the
nearest gas pipe scores

    risk = F_distance x F_pressure x F_condition x F_space x F_volume

* ``F_distance = 1 - d / (2 R)``: 1 at the pipe, 0.5 at the search radius ``R``;
* ``F_pressure = 1 + 0.5 x rank``: rank 0 低压, 1 中压B, 2 中压A, 3 次高压B, 4 次高压A, 5 高压B,
  6 高压A (GB 50028 classes, :mod:`cim.services.gas.pressure`); an unknown class counts as
  中压B (rank 1), the usual class of town distribution mains (an assumption, reported);
* ``F_condition = 1 + min(age / life, 2)``: age = ``as_of_year - year``; the service life by
  material from GB 55009-2021's commentary on §5.1.4 (gb55009.com/gjbz/GB55009/65.html: steel
  more than 30 years under good corrosion control, PE and cast iron 40-50 years): steel 30,
  PE 40, cast/ductile iron 40, unknown material 30; an unknown year counts as one life (2.0);
* ``F_space``: 电力 wells 1.5 (leaked gas follows power conduits into power wells - the Hefei
  lifeline case, reference notes), utility tunnels 1.5, telecom and drainage wells 1.3, heat
  wells 1.2, water and other wells 1.0, basements 2.0 (people inside);
* ``F_volume = 1 + log10(1 + V) / 2`` with ``V`` the enclosed volume in m³.

The vertical relation (space bottom above, level with or below the pipe) is reported, not
scored: natural gas rises and LPG sinks, and both migrate along bedding and conduits, so no
direction is safe to discount without a source.

The multiplicative form, the linear distance decay and every weight are a design choice of
this project, not a standard: they order the spaces to inspect, they are not a probability.
The default radius ``R`` = 5 m is **unverified**: no standard or guide read so far gives a
search distance for 燃气相邻地下空间 (DB34/T 4021-2021 and the 2025 浙江 guide are still to be
read). 5 m is more than twice the widest GB 50028 / GB 50289 horizontal clearance from a gas
main to another line (2.0 m, 次高压A to sewers), leaving room for gas migrating through the
soil and pipe bedding.

Examples
--------
>>> round(risk_score(distance_m=1.0, radius_m=5.0, pressure_rank=1, material="PE", year=2000,
...                  as_of_year=2020, space_type="power_well", volume_m3=9.0).risk, 6)
4.55625
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_RADIUS_M = 5.0
"""Search radius around the gas pipes (unverified default, see the module docstring)."""
UNKNOWN_PRESSURE_RANK = 1
"""An unknown pressure class counts as 中压B."""
MAX_AGE_LIVES = 2.0
"""The age term stops growing at two service lives."""

SPACE_WEIGHTS = {
    "power_well": 1.5,
    "utility_tunnel": 1.5,
    "telecom_well": 1.3,
    "drainage_well": 1.3,
    "heat_well": 1.2,
    "water_well": 1.0,
    "other_well": 1.0,
    "basement": 2.0,
}
"""``F_space`` by space type (design choice)."""

STEEL_LIFE, PE_LIFE, IRON_LIFE, UNKNOWN_LIFE = 30.0, 40.0, 40.0, 30.0


def material_life(material: str | None) -> float:
    """Service life (years) of a gas pipe material: CJJ 61 codes (G, PE, ZT, QM) or names.

    >>> material_life("PE100"), material_life("球墨铸铁"), material_life("G"), material_life(None)
    (40.0, 40.0, 30.0, 30.0)
    """
    if not material:
        return UNKNOWN_LIFE
    text = material.strip().upper()
    if any(tag in text for tag in ("铸", "ZT", "QM", "球墨")) or text in ("CI", "DI"):
        return IRON_LIFE
    if "PE" in text or "聚乙烯" in text:
        return PE_LIFE
    if "钢" in text or text in ("G", "ST", "STEEL", "GG"):
        return STEEL_LIFE
    return UNKNOWN_LIFE


@dataclass(frozen=True)
class RiskFactors:
    """The five factors of one space's score and their product."""

    distance: float
    pressure: float
    condition: float
    space: float
    volume: float

    @property
    def risk(self) -> float:
        return self.distance * self.pressure * self.condition * self.space * self.volume


def pipe_factors(
    *, pressure_rank: int | None, material: str | None, year: int | None, as_of_year: int
) -> tuple[float, float]:
    """``(F_pressure, F_condition)`` of a gas pipe: how much its leak matters per metre."""
    rank = UNKNOWN_PRESSURE_RANK if pressure_rank is None else pressure_rank
    if year is None:
        lives = 1.0
    else:
        lives = min(max(as_of_year - year, 0) / material_life(material), MAX_AGE_LIVES)
    return 1.0 + 0.5 * rank, 1.0 + lives


def risk_score(
    *,
    distance_m: float,
    radius_m: float,
    pressure_rank: int | None,
    material: str | None,
    year: int | None,
    as_of_year: int,
    space_type: str,
    volume_m3: float,
) -> RiskFactors:
    """The factors of a space at ``distance_m`` from a gas pipe (see the module docstring)."""
    pressure, condition = pipe_factors(
        pressure_rank=pressure_rank, material=material, year=year, as_of_year=as_of_year
    )
    return RiskFactors(
        distance=1.0 - distance_m / (2.0 * radius_m),
        pressure=pressure,
        condition=condition,
        space=SPACE_WEIGHTS[space_type],
        volume=1.0 + math.log10(1.0 + max(volume_m3, 0.0)) / 2.0,
    )
