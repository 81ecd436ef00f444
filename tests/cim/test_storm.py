"""Design storms: the Shenzhen 2024 table's check values, the Chicago hyetograph's shape and
total, the SWMM time series, and parameters out of range."""

from __future__ import annotations

import math

import pytest

from cim.errors import InvalidInput
from cim.services.simulation.storm import (
    FORMULAS,
    chicago_storm,
    formula_named,
    raingage_line,
    timeseries_lines,
)

SHENZHEN = FORMULAS["shenzhen-2024-central"]


@pytest.mark.parametrize(
    ("period", "minutes", "depth"),
    [(2, 5, 12.475), (2, 60, 59.067), (10, 30, 58.706), (100, 60, 110.095)],
)
def test_shenzhen_check_values(period: float, minutes: float, depth: float) -> None:
    # 深圳 2024 中部流域: the official table's depths (mm)
    assert SHENZHEN.depth_mm(period, minutes) == pytest.approx(depth, abs=1e-3)


def test_interval_form_between_published_periods() -> None:
    # P = 2 through the interval formula: q = 4728.6/(t + 18.446)^0.770, as published
    a, b, n = SHENZHEN.intervals[0].a, SHENZHEN.intervals[0].b, SHENZHEN.intervals[0].n
    assert a[0] + a[1] * math.log(2 - a[2]) == pytest.approx(4728.605 / 167, 1e-3)
    assert b[0] + b[1] * math.log(2 - b[2]) == pytest.approx(18.446, abs=1e-3)
    assert n[0] + n[1] * math.log(2 - n[2]) == pytest.approx(0.770, abs=1e-3)
    low, high = SHENZHEN.depth_mm(3, 60), SHENZHEN.depth_mm(5, 60)
    assert low < SHENZHEN.depth_mm(4, 60) < high


def test_single_form() -> None:
    beijing = formula_named("beijing-classic")
    # q = 2001(1 + 0.811 lg 10)/(t + 8)^0.711 at t = 60: i = q/167 mm/min, H = i·t
    q = 2001 * (1 + 0.811) / (60 + 8) ** 0.711
    assert beijing.depth_mm(10, 60) == pytest.approx(q / 167 * 60, rel=1e-9)


@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.5, 0.8])
def test_chicago_total_and_peak(ratio: float) -> None:
    storm = chicago_storm(SHENZHEN, return_period=2, duration_min=120, peak_ratio=ratio)
    assert len(storm.depths_mm) == 24
    assert sum(storm.depths_mm) == pytest.approx(SHENZHEN.depth_mm(2, 120), rel=1e-9)
    peak_step = storm.intensities_mm_h.index(storm.peak_intensity_mm_h)
    # the wettest step is the one holding the peak r·T or a neighbour of it
    assert abs(peak_step - int(ratio * 120 // 5)) <= 1
    # rises to the peak, falls after it
    before, after = storm.depths_mm[:peak_step], storm.depths_mm[peak_step + 1 :]
    assert before == sorted(before) and after == sorted(after, reverse=True)


def test_chicago_peak_window_holds_the_formula_depth() -> None:
    # Keifer-Chu: the rain in any window of length t around the peak (split r : 1 - r) is H(t)
    storm = chicago_storm(SHENZHEN, return_period=5, duration_min=100, peak_ratio=0.5, step_min=5)
    middle = len(storm.depths_mm) // 2
    assert sum(storm.depths_mm[middle - 2 : middle + 2]) == pytest.approx(
        SHENZHEN.depth_mm(5, 20), rel=1e-9
    )


def test_swmm_lines() -> None:
    storm = chicago_storm(SHENZHEN, return_period=2, duration_min=60, step_min=5)
    lines = timeseries_lines(storm, "TS", us_units=False)
    assert len(lines) == 13 and lines[-1] == "TS 1:00 0.000000"
    assert float(lines[0].split()[2]) == pytest.approx(storm.intensities_mm_h[0], abs=1e-6)
    inches = timeseries_lines(storm, "TS", us_units=True)
    assert float(inches[3].split()[2]) == pytest.approx(storm.intensities_mm_h[3] / 25.4, 1e-5)
    assert raingage_line(storm, "G", "TS") == "G INTENSITY 0:05 1.0 TIMESERIES TS"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"return_period": 0.5}, "return period"),
        ({"return_period": 200}, "return period"),
        ({"duration_min": 2}, "duration"),
        ({"duration_min": 600}, "duration"),
        ({"peak_ratio": 0.0}, "peak position"),
        ({"peak_ratio": 1.0}, "peak position"),
        ({"step_min": 7}, "step"),
        ({"duration_min": 90, "step_min": 60}, "step"),
    ],
)
def test_out_of_range(kwargs: dict[str, float], message: str) -> None:
    arguments = {"return_period": 2, "duration_min": 120} | kwargs
    with pytest.raises(InvalidInput, match=message):
        chicago_storm(SHENZHEN, **arguments)  # type: ignore[arg-type]


def test_unknown_formula() -> None:
    with pytest.raises(InvalidInput, match="shenzhen-2024-central"):
        formula_named("atlantis")
