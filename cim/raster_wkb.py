"""PostGIS raster WKB (one band, in-db) to and from numpy arrays plus an affine geotransform.

Why our own codec: the importer streams 256x256 tiles into ``terrain_raster`` with COPY, and
the hex form of this format is what the ``raster`` type's text input accepts - no GDAL driver
has to be enabled in the server (``ST_FromGDALRaster`` needs ``postgis.gdal_enabled_drivers``).
The terrain tiler reads tiles back with ``ST_AsBinary(rast)`` and decodes them here.

Layout (PostGIS ``raster/doc/RFC2-WellKnownBinaryFormat``): endian byte, version u16, band count
u16, scaleX, scaleY, ipX, ipY, skewX, skewY (float64), srid i32, width u16, height u16, then per
band a flags byte (0x40 has-nodata, 0x20 all-nodata, low nibble pixel type), the nodata value
and the pixels row by row.

Examples
--------
>>> import numpy as np
>>> grid = RasterGrid(np.array([[1.5, 2.0]], dtype="float32"), (10.0, 2.0, 0.0, 20.0, 0.0, -2.0),
...                   srid=32616, nodata=-9999.0)
>>> back = decode_raster(encode_raster(grid))
>>> back.values.tolist(), back.geotransform, back.srid, back.nodata
([[1.5, 2.0]], (10.0, 2.0, 0.0, 20.0, 0.0, -2.0), 32616, -9999.0)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_HEADER = struct.Struct("<BHHddddddiHH")
_PIXEL_TYPES: dict[int, np.dtype[np.generic]] = {
    3: np.dtype("int8"),
    4: np.dtype("uint8"),
    5: np.dtype("<i2"),
    6: np.dtype("<u2"),
    7: np.dtype("<i4"),
    8: np.dtype("<u4"),
    10: np.dtype("<f4"),
    11: np.dtype("<f8"),
}
_TYPE_CODES = {dtype: code for code, dtype in _PIXEL_TYPES.items()}
PIXEL_TYPE_NAMES = {
    3: "8BSI",
    4: "8BUI",
    5: "16BSI",
    6: "16BUI",
    7: "32BSI",
    8: "32BUI",
    10: "32BF",
    11: "64BF",
}


@dataclass
class RasterGrid:
    """One band of pixels with its GDAL-order geotransform ``(ulx, sx, rx, uly, ry, sy)``."""

    values: npt.NDArray[np.generic]
    geotransform: tuple[float, float, float, float, float, float]
    srid: int
    nodata: float | None


def pixel_type_name(dtype: npt.DTypeLike) -> str:
    """PostGIS name of the pixel type used for ``dtype`` (``float32`` -> ``32BF``)."""
    return PIXEL_TYPE_NAMES[_TYPE_CODES[np.dtype(dtype).newbyteorder("<")]]


def encode_raster(grid: RasterGrid) -> bytes:
    """WKB of a one-band raster; the pixel type follows the array's dtype."""
    dtype = np.dtype(grid.values.dtype).newbyteorder("<")
    code = _TYPE_CODES.get(dtype)
    if code is None:
        raise ValueError(f"no PostGIS pixel type for {grid.values.dtype}")
    height, width = grid.values.shape
    ulx, sx, rx, uly, ry, sy = grid.geotransform
    header = _HEADER.pack(1, 0, 1, sx, sy, ulx, uly, rx, ry, grid.srid, width, height)
    flags = code | (0x40 if grid.nodata is not None else 0)
    nodata = np.array(grid.nodata if grid.nodata is not None else 0, dtype=dtype).tobytes()
    pixels = np.ascontiguousarray(grid.values, dtype=dtype).tobytes()
    return header + bytes([flags]) + nodata + pixels


def decode_raster(data: bytes | memoryview) -> RasterGrid:
    """The first band of a little-endian in-db raster WKB (as written by :func:`encode_raster`)."""
    data = bytes(data)
    endian, _version, bands, sx, sy, ulx, uly, rx, ry, srid, width, height = _HEADER.unpack_from(
        data
    )
    if endian != 1 or bands < 1:
        raise ValueError("only little-endian rasters with at least one band are supported")
    offset = _HEADER.size
    flags = data[offset]
    if flags & 0x80:
        raise ValueError("out-db raster bands are not supported")
    dtype = _PIXEL_TYPES[flags & 0x0F]
    offset += 1
    nodata_value = float(np.frombuffer(data, dtype=dtype, count=1, offset=offset)[0])
    offset += dtype.itemsize
    values = np.frombuffer(data, dtype=dtype, count=width * height, offset=offset)
    return RasterGrid(
        values=values.reshape(height, width),
        geotransform=(ulx, sx, rx, uly, ry, sy),
        srid=int(srid),
        nodata=nodata_value if flags & 0x40 else None,
    )
