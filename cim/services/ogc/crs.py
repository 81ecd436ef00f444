"""CRS handling of OGC API Features Part 2: CRS URIs, axis order, bbox transforms into storage.

CRS84 (lon, lat) is the default; the storage CRS, EPSG:4490 (CGCS2000) and EPSG:4326 are also
offered. Coordinates follow each CRS's authority axis order as Part 2 requires, so EPSG:4490
and EPSG:4326 are (lat, lon) and a north-first projected CRS such as EPSG:4547 is (N, E).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from pyproj import CRS

from cim.crs import transformer
from cim.errors import InvalidInput, UnsupportedCRS

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
EXTRA_EPSG = (4490, 4326)
_EPSG_FORMS = (
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/(\d+)$"),
    re.compile(r"^EPSG:(\d+)$", re.IGNORECASE),
    re.compile(r"^urn:ogc:def:crs:EPSG::(\d+)$", re.IGNORECASE),
)


@dataclass(frozen=True)
class OgcCrs:
    """A CRS as the API speaks it: its URI, the PostGIS SRID, and whether axes are swapped."""

    uri: str
    srid: int
    north_first: bool
    geographic: bool


def offered_uris(storage_srid: int) -> list[str]:
    """CRS URIs every collection offers, CRS84 first."""
    codes = [storage_srid, *[c for c in EXTRA_EPSG if c != storage_srid]]
    return [CRS84, *[EPSG_URI.format(code=c) for c in codes]]


@lru_cache(maxsize=32)
def _describe(code: int) -> tuple[bool, bool]:
    crs = CRS.from_epsg(code)
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return first in ("north", "south"), bool(crs.is_geographic)


def parse_ogc_crs(value: str | None, storage_srid: int) -> OgcCrs:
    """The offered CRS named by ``value`` (None = CRS84); UnsupportedCRS for anything else."""
    if value is None or value.strip() in ("", CRS84, "OGC:CRS84", "CRS84"):
        return OgcCrs(CRS84, 4326, north_first=False, geographic=True)
    text = value.strip().strip("[]")
    for form in _EPSG_FORMS:
        match = form.match(text)
        if match:
            code = int(match.group(1))
            if code in (storage_srid, *EXTRA_EPSG):
                north, geographic = _describe(code)
                return OgcCrs(EPSG_URI.format(code=code), code, north, geographic)
    raise UnsupportedCRS(
        f"CRS {value!r} is not offered; use one of {', '.join(offered_uris(storage_srid))}"
    )


def parse_bbox(value: str) -> tuple[float, ...]:
    """``minx,miny,maxx,maxy`` or with z (6 numbers), finite and ordered."""
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise InvalidInput("bbox must have 4 or 6 comma-separated numbers")
    try:
        numbers = tuple(float(part) for part in parts)
    except ValueError:
        raise InvalidInput("bbox must have 4 or 6 comma-separated numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidInput("bbox numbers must be finite")
    half = len(numbers) // 2
    if any(numbers[i] > numbers[i + half] for i in range(half)):
        raise InvalidInput("bbox minimum is larger than its maximum")
    return numbers


def bbox_to_storage(
    bbox: tuple[float, float, float, float], crs: OgcCrs, storage_srid: int
) -> tuple[float, float, float, float] | None:
    """The storage-CRS box enclosing ``bbox`` (given in ``crs`` axis order); None if disjoint.

    Geographic boxes are clipped to the storage CRS's area of use first, so a world-wide bbox
    does not ask the projection for coordinates it cannot compute.
    """
    a, b, c, d = bbox
    minx, miny, maxx, maxy = (b, a, d, c) if crs.north_first else (a, b, c, d)
    if crs.srid == storage_srid:
        return (minx, miny, maxx, maxy)
    if crs.geographic:
        area = CRS.from_epsg(storage_srid).area_of_use
        if area is not None:
            minx, miny = max(minx, area.west), max(miny, area.south)
            maxx, maxy = min(maxx, area.east), min(maxy, area.north)
            if minx > maxx or miny > maxy:
                return None
    try:
        out = transformer(crs.srid, storage_srid).transform_bounds(
            minx, miny, maxx, maxy, densify_pts=21
        )
    except Exception as exc:  # pyproj raises ProjError with no stable subclass
        raise InvalidInput(f"bbox cannot be transformed to the storage CRS: {exc}") from None
    if not all(math.isfinite(v) for v in out):
        raise InvalidInput("bbox cannot be transformed to the storage CRS")
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))


def extent_to_crs84(
    box: tuple[float, float, float, float], storage_srid: int
) -> list[float] | None:
    """A storage-CRS extent as a CRS84 bbox (lon/lat), or None if it cannot be transformed."""
    try:
        out = transformer(storage_srid, 4326).transform_bounds(*box, densify_pts=21)
    except Exception:  # same as above: an untransformable extent is simply not advertised
        return None
    if not all(math.isfinite(v) for v in out):
        return None
    return [round(float(v), 9) for v in out]
