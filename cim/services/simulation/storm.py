"""Design storms: a storm-intensity formula (暴雨强度公式) and a Chicago hyetograph (芝加哥雨型).

The formula gives the mean intensity over a duration ``t`` (min) for a return period ``P`` (a)::

    q = 167 · A1 (1 + C lg P) / (t + b)^n      L/(s·hm²)   (single form, A1 in mm/min)
    q = 167 · A(P) / (t + b(P))^n(P)           (interval form, A/b/n = p1 + p2 · ln(P - p3))

so ``i = q / 167`` mm/min and the depth over ``t`` is ``H(t) = i · t``. The Chicago (Keifer–Chu)
hyetograph puts the peak at ``r · T``; with ``a = A1 (1 + C lg P)`` (or ``A(P)``), the intensity
``t_b`` minutes before the peak is ``a [(1 - n) t_b / r + b] / (t_b / r + b)^(1 + n)`` and
``t_a`` after it ``a [(1 - n) t_a / (1 - r) + b] / (t_a / (1 - r) + b)^(1 + n)``. Those are the
derivatives of ``r F(t_b / r)`` and ``(1 - r) F(t_a / (1 - r))`` with ``F(τ) = a τ / (τ + b)^n``,
so each step is integrated exactly from them, and the total is rescaled to ``H(T)`` (a no-op
up to rounding: the two branches add up to ``F(T) = H(T)``).

Formulas kept here (``FORMULAS``), with their sources:

* ``shenzhen-2024-central`` - 深圳市分流域暴雨强度公式 (2024版), 中部流域和水系, interval form,
  P 1-10 a and 10-100 a, t 5-180 min, with the published single-P forms used at the standard
  return periods (the official tables come from them) (深圳市气象局、规划和自然资源局、水务局,
  copied in YYer-ai/swmm-copilot ``data/rainfall/shenzhen.yaml``; checked: P = 2 gives
  12.475 mm in 5 min and 59.067 mm in 60 min, the official table's values).
* ``guangzhou-2021``, ``beijing-classic``, ``shanghai-db31`` - single-P forms from compilations,
  not checked against the official texts: use them as examples, not for design.

No peak position is given by the standards read: r = 0.4 is the default here, between the
values local studies report (0.32 葫芦岛, 0.43 苏州 180 min); give the city's own.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from cim.errors import InvalidInput
from cim.services.results import Result

DEFAULT_PEAK_RATIO = 0.4
DEFAULT_STEP_MIN = 5
STEPS_MIN = (1, 2, 5, 10, 15, 30, 60)
"""Time steps a design storm may use (min); the duration must be a whole number of them."""


@dataclass(frozen=True)
class Interval:
    """One return-period range of an interval formula: A, b, n = p1 + p2 · ln(P - p3)."""

    low: float
    high: float
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    n: tuple[float, float, float]


@dataclass(frozen=True)
class StormFormula:
    """A city's storm-intensity formula: single form (``a1`` mm/min, ``c``, ``b``, ``n``) or
    interval form (``intervals``), the return periods and durations it was fitted for."""

    name: str
    source: str
    checked: bool
    a1: float = 0.0
    c: float = 0.0
    b: float = 0.0
    n: float = 0.0
    intervals: tuple[Interval, ...] = ()
    #: published single-P forms of an interval formula {P: (q numerator, b, n)}: the official
    #: tables are computed from them, so they are used at exactly those return periods
    published: tuple[tuple[float, float, float, float], ...] = ()
    return_periods: tuple[float, float] = (1.0, 100.0)
    durations_min: tuple[float, float] = (5.0, 180.0)

    def parameters(self, return_period: float) -> tuple[float, float, float]:
        """(a mm/min, b min, n) for return period ``P`` (years)."""
        low, high = self.return_periods
        if not low <= return_period <= high:
            raise InvalidInput(
                f"return period {return_period:g} a is outside {low:g}-{high:g} a, the range "
                f"formula {self.name} was fitted for"
            )
        for period, numerator, b, n in self.published:
            if period == return_period:
                return numerator / 167.0, b, n
        # the upper range wins at a shared bound (P = 10 a is fitted in the 10-100 a range)
        for part in reversed(self.intervals):
            if part.low <= return_period <= part.high:
                a, b, n = (
                    p1 + p2 * math.log(return_period - p3)
                    for p1, p2, p3 in (part.a, part.b, part.n)
                )
                return a, b, n
        return self.a1 * (1 + self.c * math.log10(return_period)), self.b, self.n

    def depth_mm(self, return_period: float, duration_min: float) -> float:
        """Rain depth H(t) = i · t over ``duration_min`` (mm)."""
        a, b, n = self.parameters(return_period)
        return float(a * duration_min / (duration_min + b) ** n)


FORMULAS = {
    f.name: f
    for f in (
        StormFormula(
            name="shenzhen-2024-central",
            source="深圳市分流域暴雨强度公式及查算图表 (2024版), 中部流域和水系",
            checked=True,
            intervals=(
                Interval(
                    1, 10, (27.622, 3.362, 0.771), (16.655, 2.828, 0.116), (0.786, -0.029, 0.247)
                ),
                Interval(
                    10,
                    100,
                    (33.652, -1.991, 6.737),
                    (22.609, -0.760, 6.185),
                    (0.762, -0.037, 5.080),
                ),
            ),
            published=(
                (1, 3785.222, 16.306, 0.794),
                (2, 4728.605, 18.446, 0.770),
                (3, 5062.939, 19.650, 0.757),
                (5, 5422.490, 21.140, 0.741),
                (10, 5226.599, 21.591, 0.703),
                (20, 4760.335, 20.613, 0.662),
                (30, 4573.629, 20.200, 0.643),
                (50, 4367.217, 19.736, 0.621),
                (100, 4111.874, 19.158, 0.594),
            ),
        ),
        StormFormula(
            name="guangzhou-2021",
            source="广州中心城区 2021, q = 13290.6(1+0.607lgP)/(t+39.12)^0.956 (compilation)",
            checked=False,
            a1=13290.6 / 167,
            c=0.607,
            b=39.12,
            n=0.956,
        ),
        StormFormula(
            name="beijing-classic",
            source="北京 (classic handbook), q = 2001(1+0.811lgP)/(t+8)^0.711 (compilation)",
            checked=False,
            a1=2001 / 167,
            c=0.811,
            b=8.0,
            n=0.711,
        ),
        StormFormula(
            name="shanghai-db31",
            source="上海 DB31/T 1043, q = 1600(1+0.846lgP)/(t+7.0)^0.656 (compilation)",
            checked=False,
            a1=1600 / 167,
            c=0.846,
            b=7.0,
            n=0.656,
        ),
    )
}
DEFAULT_FORMULA = "shenzhen-2024-central"


class DesignStorm(Result):
    """A Chicago design storm: the rain per step (mm) and as intensities (mm/h)."""

    formula: str
    formula_source: str
    formula_checked: bool
    return_period_a: float
    duration_min: int
    peak_ratio: float
    step_min: int
    a_mm_per_min: float
    b_min: float
    n: float
    total_mm: float  # H(T) of the formula
    peak_intensity_mm_h: float
    depths_mm: list[float]  # one per step, from the start
    intensities_mm_h: list[float]


def formula_named(name: str) -> StormFormula:
    """The formula of that name (refused with the known names otherwise)."""
    found = FORMULAS.get(name)
    if found is None:
        raise InvalidInput(f"unknown storm formula {name!r}; one of {', '.join(FORMULAS)}")
    return found


def chicago_storm(
    formula: StormFormula,
    *,
    return_period: float,
    duration_min: int,
    peak_ratio: float = DEFAULT_PEAK_RATIO,
    step_min: int = DEFAULT_STEP_MIN,
) -> DesignStorm:
    """The Chicago hyetograph of ``formula`` for ``P`` = ``return_period`` over ``duration_min``
    in steps of ``step_min``, peak at ``peak_ratio`` of the duration.

    Examples
    --------
    >>> storm = chicago_storm(FORMULAS["shenzhen-2024-central"], return_period=2, duration_min=60)
    >>> round(storm.total_mm, 3), len(storm.depths_mm)
    (59.067, 12)
    """
    _check(formula, return_period, duration_min, peak_ratio, step_min)
    a, b, n = formula.parameters(return_period)
    total = formula.depth_mm(return_period, duration_min)
    peak = peak_ratio * duration_min

    def shape(tau: float) -> float:  # F(τ) = a τ / (τ + b)^n
        return float(a * tau / (tau + b) ** n)

    def cumulative(t: float) -> float:
        if t <= peak:
            return peak_ratio * (shape(peak / peak_ratio) - shape((peak - t) / peak_ratio))
        after = (t - peak) / (1 - peak_ratio)
        return peak_ratio * shape(peak / peak_ratio) + (1 - peak_ratio) * shape(after)

    edges = [cumulative(float(k * step_min)) for k in range(duration_min // step_min + 1)]
    depths = [hi - lo for lo, hi in itertools.pairwise(edges)]
    scale = total / sum(depths)
    depths = [d * scale for d in depths]
    intensities = [d * 60.0 / step_min for d in depths]
    return DesignStorm(
        formula=formula.name,
        formula_source=formula.source,
        formula_checked=formula.checked,
        return_period_a=return_period,
        duration_min=duration_min,
        peak_ratio=peak_ratio,
        step_min=step_min,
        a_mm_per_min=round(a, 6),
        b_min=round(b, 6),
        n=round(n, 6),
        total_mm=total,
        peak_intensity_mm_h=max(intensities),
        depths_mm=depths,
        intensities_mm_h=intensities,
    )


def _check(
    formula: StormFormula, return_period: float, duration: int, ratio: float, step: int
) -> None:
    if not math.isfinite(return_period):
        raise InvalidInput("the return period must be a number of years")
    formula.parameters(return_period)  # refuses P outside the formula's range
    low, high = formula.durations_min
    if not low <= duration <= high:
        raise InvalidInput(
            f"storm duration {duration} min is outside {low:g}-{high:g} min, the range formula "
            f"{formula.name} was fitted for"
        )
    if not 0 < ratio < 1:
        raise InvalidInput(f"peak position r = {ratio:g} must be between 0 and 1 (exclusive)")
    if step not in STEPS_MIN or duration % step:
        raise InvalidInput(
            f"storm step {step} min must be one of {', '.join(map(str, STEPS_MIN))} and divide "
            f"the duration ({duration} min)"
        )


def timeseries_lines(storm: DesignStorm, name: str, *, us_units: bool) -> list[str]:
    """The storm as SWMM [TIMESERIES] lines (hours:minutes, intensity in mm/h or in/h), ending
    with a zero at the storm's end so no rain is held over."""
    factor = 1 / 25.4 if us_units else 1.0
    lines = []
    for k, value in enumerate([*storm.intensities_mm_h, 0.0]):
        minutes = k * storm.step_min
        lines.append(f"{name} {minutes // 60}:{minutes % 60:02d} {value * factor:.6f}")
    return lines


def raingage_line(storm: DesignStorm, gage: str, series: str) -> str:
    """A SWMM [RAINGAGES] line reading ``series`` as intensities at the storm's step."""
    return (
        f"{gage} INTENSITY {storm.step_min // 60}:{storm.step_min % 60:02d} 1.0 TIMESERIES {series}"
    )
