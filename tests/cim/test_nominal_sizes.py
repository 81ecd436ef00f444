"""Nominal sizes: inch conversions take the ASME NPS -> DN table, other sizes the nearest DN."""

from __future__ import annotations

import numpy as np
import pytest

from cim.nominal_sizes import nominal_dn, nominal_dn_array
from cim.services.pipes.sections import section_label

# shared/reference/wave2-facts.md §6, typed again here as the oracle (not imported).
NPS = [(0.125, 6), (0.25, 8), (0.375, 10), (0.5, 15), (0.75, 20), (1, 25), (1.25, 32),
       (1.5, 40), (2, 50), (2.5, 65), (3, 80), (3.5, 90), (4, 100), (5, 125), (6, 150),
       (8, 200), (10, 250), (12, 300), (14, 350), (16, 400), (18, 450), (20, 500), (24, 600),
       (30, 750), (36, 900), (42, 1050), (48, 1200)]  # fmt: skip


@pytest.mark.parametrize(("inches", "dn"), NPS)
def test_inch_sizes_take_the_asme_table(inches: float, dn: int) -> None:
    assert nominal_dn(inches * 25.4) == dn


def test_one_eighth_inch_is_dn6_not_dn8() -> None:
    # one online table says DN8; the ASME convention and the other tables say DN6
    assert nominal_dn(3.175) == 6


@pytest.mark.parametrize(
    ("diameter", "dn"),
    [(300, 300), (311, 300), (326, 350), (325, 300), (112.5, 100), (112.6, 125), (1700, 1600),
     (1701, 1800), (5000, 4000), (2, 6), (700, 700), (1100, 1000)],
)  # fmt: skip
def test_metric_sizes_take_the_nearest_dn_ties_to_the_smaller(diameter: float, dn: int) -> None:
    assert nominal_dn(diameter) == dn


@pytest.mark.parametrize("missing", [None, 0.0, -5.0, float("nan")])
def test_unknown_diameters_have_no_nominal_size(missing: float | None) -> None:
    assert nominal_dn(missing) is None


def test_the_array_form_agrees_with_the_scalar_one() -> None:
    values = np.concatenate([np.linspace(0.5, 4500, 90_001), [25.4 * i for i, _ in NPS]])
    scalar = [nominal_dn(v) for v in values]
    assert nominal_dn_array(values).astype(int).tolist() == scalar
    assert np.isnan(nominal_dn_array([np.nan, 0, -1])).all()


def test_labels_show_the_nominal_size_and_sections_their_exact_size() -> None:
    assert section_label("circular", 304.8, None, None) == "DN300"
    assert section_label("circular", 101.6, None, None) == "DN100"
    assert section_label("rectangular", None, 800.0, 600.0) == "800x600"
    assert section_label("circular", None, None, None) == "?"
