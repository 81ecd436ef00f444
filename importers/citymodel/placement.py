"""Where a city model's coordinates are: its CRS (horizontal part) and the move to storage.

A CityJSON ``referenceSystem`` is usually compound (EPSG:7415 = RD New + NAP height): x/y are
transformed from its horizontal part to the storage CRS with pyproj, heights are kept as given
(as for every other source; see the README). ``--crs`` is used only when the file names none.
A model far outside the storage CRS's area of use is refused: projecting Dutch coordinates into a
Chinese Gauss-Krüger zone gives numbers, but not a place anyone means.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pyproj import CRS

from cim.crs import crs_label, parse_crs, to_storage, transformer
from cim.errors import InvalidInput, UnsupportedCRS
from importers.citymodel.cityjson import epsg_of

AREA_OF_USE_SLACK_DEGREES = 2.0
"""How far (degrees) outside the storage CRS's area of use a model may lie (as for IFC)."""


def source_crs(reference_system: str | None, override: str | None, where: str) -> CRS:
    """The horizontal CRS of a model: the file's ``referenceSystem``, else ``--crs``."""
    text = reference_system or override
    if not text:
        raise InvalidInput(f"{where}: the file names no CRS (metadata.referenceSystem); pass --crs")
    return horizontal_part(parse_crs(epsg_of(text)))


def horizontal_part(crs: CRS) -> CRS:
    """The horizontal sub-CRS of a compound CRS (heights are kept as given), else ``crs``.

    Examples
    --------
    >>> horizontal_part(CRS.from_epsg(7415)).to_epsg()
    28992
    """
    if crs.is_compound:
        for sub in crs.sub_crs_list:
            if sub.is_projected or sub.is_geographic:
                return sub
    return crs


def check_area_of_use(crs: CRS, storage_srid: int, xy: npt.NDArray[np.float64]) -> None:
    """Refuse a model whose centre lies far outside the storage CRS's area of use (``xy`` in
    ``crs``, which may be the storage CRS itself; coordinates that did not transform count as
    outside)."""
    if len(xy) == 0:
        return
    area = CRS.from_epsg(storage_srid).area_of_use
    if area is None:
        return
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    lon, lat = transformer(crs, 4326).transform(float(centre[0]), float(centre[1]))
    west, south, east, north = area.bounds
    outside = max(west - lon, lon - east, south - lat, lat - north, 0.0)
    if not (np.isfinite(lon) and np.isfinite(lat)) or outside > AREA_OF_USE_SLACK_DEGREES:
        raise UnsupportedCRS(
            f"the model lies at {lat:.4f}, {lon:.4f} ({crs_label(crs)}), outside the area of use "
            f"of the storage CRS EPSG:{storage_srid} ({area.name}); use a database whose "
            "CIM_SRID covers it"
        )


def triangles_to_storage(
    crs: CRS, storage_srid: int, triangles: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(n, 3, 3) triangles in ``crs`` -> the storage CRS (z unchanged)."""
    if crs.to_epsg() == storage_srid or len(triangles) == 0:
        return triangles
    flat = triangles.reshape(-1, 3)
    x, y, _ = to_storage(crs, storage_srid, flat[:, 0], flat[:, 1])
    return np.column_stack([x, y, flat[:, 2]]).reshape(triangles.shape)


class AreaCheck:
    """The source coordinates checked against the storage CRS's area of use: the first batch at
    once (a wrong file fails early), the whole extent ([[min x, min y], [max x, max y]]) once
    every batch has been seen."""

    def __init__(self, horizontal: CRS, srid: int) -> None:
        self.horizontal, self.srid = horizontal, srid
        self.extent: npt.NDArray[np.float64] | None = None

    def add(self, xy: npt.NDArray[np.float64]) -> None:
        low, high = xy.min(axis=0), xy.max(axis=0)
        if self.extent is None:
            check_area_of_use(self.horizontal, self.srid, xy)
        else:
            low, high = np.minimum(self.extent[0], low), np.maximum(self.extent[1], high)
        self.extent = np.vstack([low, high])

    def finish(self) -> None:
        if self.extent is not None:
            check_area_of_use(self.horizontal, self.srid, self.extent)
