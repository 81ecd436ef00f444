"""Nominal pipe sizes (DN): the label a survey institute writes, from the exact diameter we store.

Networks converted from inches (EPANET files in US units) and measured diameters carry exact
values such as 304.8 mm or 311 mm; nobody calls such a pipe ``DN304.8``. cim keeps the exact value
in ``diameter_mm`` and labels the pipe with the nominal size of the standard series:

* a diameter that is a whole or fractional inch size of the NPS list (within 0.01 inch) takes its
  DN from the ASME B36.10M NPS -> DN convention (12 in -> DN300, 3½ in -> DN90, 30 in -> DN750);
* any other diameter takes the nearest size of the metric series (ties go to the smaller size):
  ISO 6708 as listed by the DEXPI DN enumeration (DN15 ... DN1600), the small NPS sizes
  DN6/8/10 below it, and DN1800 ... DN4000 in steps of 200 above it for large drainage culverts.

Sources (``shared/reference/wave2-facts.md`` §6): ISO 6708 DN list in the DEXPI enum; the
NPS -> DN table of ASME B36.10M as several code tables agree (one online table wrongly gives
1/8 in -> DN8; it is DN6). GB/T 1047-2019 (the Chinese DN standard) has not been read; it adopts
ISO 6708, which is why the series is used for Chinese networks too. Plastic (PE/PVC) pipes are
sized by outside diameter ``dn`` in their own standard (ISO 11922); a plastic pipe's stored
diameter is labelled with the nearest DN all the same, and the exact value stays in the data.

Examples
--------
>>> nominal_dn(304.8), nominal_dn(101.6), nominal_dn(300.0), nominal_dn(311.0)
(300, 100, 300, 300)
>>> nominal_dn(88.9), nominal_dn(3.175), nominal_dn(None)
(90, 6, None)
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np
import numpy.typing as npt

MM_PER_INCH = 25.4
INCH_TOLERANCE = 0.01

# ASME B36.10M: nominal pipe size (inches) -> DN.
NPS_TO_DN: dict[float, int] = {
    0.125: 6, 0.25: 8, 0.375: 10, 0.5: 15, 0.75: 20, 1.0: 25, 1.25: 32, 1.5: 40, 2.0: 50,
    2.5: 65, 3.0: 80, 3.5: 90, 4.0: 100, 5.0: 125, 6.0: 150, 8.0: 200, 10.0: 250, 12.0: 300,
    14.0: 350, 16.0: 400, 18.0: 450, 20.0: 500, 24.0: 600, 30.0: 750, 36.0: 900, 42.0: 1050,
    48.0: 1200,
}  # fmt: skip

# ISO 6708 (DEXPI enum) with DN6/8/10 below and DN1800-4000 above.
METRIC_SERIES: tuple[int, ...] = (
    6, 8, 10, 15, 20, 25, 32, 40, 50, 65, 80, 100, 125, 150, 200, 250, 300, 350, 400, 450, 500,
    600, 700, 800, 900, 1000, 1200, 1400, 1600, *range(1800, 4001, 200),
)  # fmt: skip

_NPS_INCHES = np.array(sorted(NPS_TO_DN), dtype=np.float64)
_NPS_DN = np.array([NPS_TO_DN[k] for k in sorted(NPS_TO_DN)], dtype=np.int64)
_SERIES = np.array(METRIC_SERIES, dtype=np.float64)


def nominal_dn(diameter_mm: float | None) -> int | None:
    """The nominal DN of an exact inner diameter in mm (``None`` when unknown or not positive)."""
    if diameter_mm is None or not diameter_mm > 0 or diameter_mm != diameter_mm:
        return None
    inches = diameter_mm / MM_PER_INCH
    for size, dn in NPS_TO_DN.items():
        if abs(inches - size) <= INCH_TOLERANCE:
            return dn
    at = bisect_left(METRIC_SERIES, diameter_mm)
    if at == 0:
        return METRIC_SERIES[0]
    if at == len(METRIC_SERIES):
        return METRIC_SERIES[-1]
    below, above = METRIC_SERIES[at - 1], METRIC_SERIES[at]
    return below if diameter_mm - below <= above - diameter_mm else above


def nominal_dn_array(diameters_mm: Any) -> npt.NDArray[np.float64]:
    """:func:`nominal_dn` over an array (NaN where unknown), for the importers' bulk writes."""
    d = np.asarray(diameters_mm, dtype=np.float64)
    out = np.full(d.shape, np.nan)
    known = np.isfinite(d) & (d > 0)
    if not known.any():
        return out
    values = d[known]
    at = np.clip(np.searchsorted(_SERIES, values), 1, len(_SERIES) - 1)
    below, above = _SERIES[at - 1], _SERIES[at]
    metric = np.where(values - below <= above - values, below, above)
    metric = np.where(values <= _SERIES[0], _SERIES[0], metric)
    metric = np.where(values >= _SERIES[-1], _SERIES[-1], metric)
    inches = values / MM_PER_INCH
    nearest = np.abs(inches[:, None] - _NPS_INCHES[None, :]).argmin(axis=1)
    is_inch = np.abs(inches - _NPS_INCHES[nearest]) <= INCH_TOLERANCE
    out[known] = np.where(is_inch, _NPS_DN[nearest], metric)
    return out
