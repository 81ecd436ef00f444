"""``cim import terrain``: real DEMs in, heights out equal to independent rasterio oracles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.transform import from_origin
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.engine import make_engine
from cim.errors import ImportFailed, InvalidInput, UnsupportedCRS
from cim.services.terrain import heights_in_storage
from importers.terrain import import_terrain
from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.terrain_support import TERRAIN, bilinear, delete_datasets, srid_database_url


def _engine(server_url: str, srid: int) -> Iterator[Engine]:
    engine = make_engine(srid_database_url(server_url, srid))
    delete_datasets(engine)
    yield engine
    delete_datasets(engine)
    engine.dispose()


@pytest.fixture
def utm16(server_url: str) -> Iterator[Engine]:
    yield from _engine(server_url, 32616)


@pytest.fixture
def gk25(server_url: str) -> Iterator[Engine]:
    yield from _engine(server_url, 3879)


@pytest.fixture
def utm12(server_url: str) -> Iterator[Engine]:
    yield from _engine(server_url, 32612)


def _table_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        datasets = conn.execute(text("SELECT count(*) FROM dataset")).scalar_one()
        rasters = conn.execute(text("SELECT count(*) FROM terrain_raster")).scalar_one()
    return int(datasets), int(rasters)


def _pixel_centres(engine: Engine, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Centre of the stored pixel containing each point (read from the raster's own metadata)."""
    sql = text(
        """
        SELECT ST_X(c), ST_Y(c) FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]))
            WITH ORDINALITY AS u(x, y, ord)
        CROSS JOIN LATERAL (
            SELECT ST_PixelAsCentroid(t.rast, (w).columnx, (w).rowy) AS c
            FROM terrain_raster t, ST_WorldToRasterCoord(t.rast, u.x, u.y) AS w
            WHERE (w).columnx BETWEEN 1 AND ST_Width(t.rast)
              AND (w).rowy BETWEEN 1 AND ST_Height(t.rast)
            LIMIT 1) AS p
        ORDER BY u.ord
        """
    )
    with engine.connect() as conn:
        rows = conn.execute(sql, {"xs": xs.tolist(), "ys": ys.tolist()}).all()
    return np.array(rows, dtype=np.float64)


def _check_reprojected_oracle(engine: Engine, name: str, srid: int) -> int:
    """Stored heights = textbook bilinear of the source at the stored pixel centre (1e-3 m)."""
    with rasterio.open(TERRAIN / name) as src:
        source = src.read(1).astype(np.float64)
        valid = source != src.nodata
        inverse = ~src.transform
        to_source = Transformer.from_crs(srid, src.crs.to_wkt(), always_xy=True)
        to_storage = Transformer.from_crs(src.crs.to_wkt(), srid, always_xy=True)
        rng = np.random.default_rng(7)
        cols = rng.uniform(2, src.width - 2, 400)
        rows = rng.uniform(2, src.height - 2, 400)
        sx, sy = src.transform * (cols, rows)
    px, py = to_storage.transform(sx, sy)
    centres = _pixel_centres(engine, np.asarray(px), np.asarray(py))
    cx, cy = to_source.transform(centres[:, 0], centres[:, 1])
    fcol, frow = inverse * (np.asarray(cx), np.asarray(cy))
    fcol, frow = np.asarray(fcol) - 0.5, np.asarray(frow) - 0.5  # pixel-centre frame
    c0, r0 = np.floor(fcol).astype(int), np.floor(frow).astype(int)
    inside = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < source.shape[1]) & (r0 + 1 < source.shape[0])
    c0, r0 = np.where(inside, c0, 0), np.where(inside, r0, 0)
    four_valid = valid[r0, c0] & valid[r0, c0 + 1] & valid[r0 + 1, c0] & valid[r0 + 1, c0 + 1]
    usable = np.flatnonzero(inside & four_valid)[:50]
    assert len(usable) == 50
    expected = bilinear(source, fcol[usable], frow[usable])
    with Session(engine) as session:
        got = heights_in_storage(session, np.asarray(px)[usable], np.asarray(py)[usable])
    heights = np.array([z for z, _ in got], dtype=np.float64)
    np.testing.assert_allclose(heights, expected, atol=1e-3, rtol=0)
    return len(usable)


def test_ky4_us_feet_crs_reprojects_to_utm_with_bilinear_heights(utm16: Engine) -> None:
    result = import_terrain(utm16, TERRAIN / "ky4_elevation.tif")
    dataset = result.dataset.model_dump()
    assert result.created and dataset["status"] == "ready"
    assert dataset["source_crs"] == "EPSG:3547"
    assert dataset["transform"]["reprojected"] is True
    qc = dataset["qc"]
    # 90.975 US survey feet = 27.73 m; the warped grid keeps about that pixel size.
    assert qc["resolution"] == pytest.approx(27.73, abs=0.1)
    assert 117 < qc["min_height"] < 118.5 and 225.5 < qc["max_height"] < 226.3
    assert dataset["counts"]["terrain_raster"] == _table_counts(utm16)[1] == 6
    assert _check_reprojected_oracle(utm16, "ky4_elevation.tif", 32616) == 50


def test_srtm_zion_geographic_reprojects(utm12: Engine) -> None:
    result = import_terrain(utm12, TERRAIN / "geocompy_srtm_zion.tif", name="zion")
    assert result.dataset.name == "zion"
    assert result.dataset.qc["pixel_type"] == "32BF"
    assert _check_reprojected_oracle(utm12, "geocompy_srtm_zion.tif", 32612) == 50


def test_aalto_same_crs_equals_rasterio_sample(gk25: Engine) -> None:
    result = import_terrain(gk25, TERRAIN / "aalto_raster_dem.tif")
    assert result.dataset.transform["reprojected"] is False
    assert result.dataset.qc["pixel_type"] == "64BF"
    assert any("cannot be located on the Earth" in w for w in result.warnings)
    rng = np.random.default_rng(3)
    with rasterio.open(TERRAIN / "aalto_raster_dem.tif") as src:
        xs = rng.uniform(src.bounds.left, src.bounds.right, 50)
        ys = rng.uniform(src.bounds.bottom, src.bounds.top, 50)
        expected = [float(v[0]) for v in src.sample(zip(xs, ys, strict=True))]
        nodata = src.nodata
    with Session(gk25) as session:
        got = heights_in_storage(session, xs, ys)
    assert sum(e == nodata for e in expected) >= 5  # the sample hits the DEM's nodata too
    for (z, _), want in zip(got, expected, strict=True):
        if want == nodata:
            assert z is None
        else:
            assert z is not None and abs(z - want) <= 1e-3


def test_same_file_again_is_a_no_op_unless_replace(utm16: Engine) -> None:
    first = import_terrain(utm16, TERRAIN / "ky4_elevation.tif")
    again = import_terrain(utm16, TERRAIN / "ky4_elevation.tif")
    assert not again.created and again.dataset.id == first.dataset.id
    replaced = import_terrain(utm16, TERRAIN / "ky4_elevation.tif", replace=True)
    assert replaced.created and replaced.replaced_id == first.dataset.id
    assert _table_counts(utm16) == (1, 6)


def _all_nodata_dem(path: Path) -> Path:
    profile = {
        "driver": "GTiff",
        "width": 40,
        "height": 30,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32616",
        "transform": from_origin(620000, 4210000, 10, 10),
        "nodata": -9999.0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 30, 40), -9999.0, dtype="float32"))
    return path


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("whitebox_DEM_nocrs.tif", UnsupportedCRS, "no usable CRS"),
        ("text", ImportFailed, "not a raster GDAL can read"),
        ("all_nodata", ImportFailed, "every pixel is nodata"),
        ("rasterio_corrupt.tif", UnsupportedCRS, "far outside the area of use"),
        ("missing.tif", InvalidInput, "no such file"),
    ],
)
def test_bad_inputs_fail_cleanly_and_leave_nothing(
    utm16: Engine, tmp_path: Path, name: str, error: type[Exception], message: str
) -> None:
    import_terrain(utm16, TERRAIN / "ky4_elevation.tif")
    before = _table_counts(utm16)
    if name == "text":
        path = tmp_path / "heights.tif"
        path.write_text("x,y,z\n1,2,3\n")
    elif name == "all_nodata":
        path = _all_nodata_dem(tmp_path / "empty.tif")
    else:
        path = TERRAIN / name
    with pytest.raises(error, match=message):
        import_terrain(utm16, path)
    assert _table_counts(utm16) == before


def test_corrupt_raster_fails_while_reading_in_a_crs_that_covers_it(server_url: str) -> None:
    # EPSG:5186 (Korea 2000 Central Belt) covers the corrupt file's location, so the import
    # gets as far as reading the broken tile - and still leaves nothing.
    for engine in _engine(server_url, 5186):
        with pytest.raises(ImportFailed, match="reading the raster failed"):
            import_terrain(engine, TERRAIN / "rasterio_corrupt.tif")
        assert _table_counts(engine) == (0, 0)


def test_cli_import_terrain(utm16: Engine, server_url: str) -> None:
    env = cli_env(srid_database_url(server_url, 32616))
    bad = run_cim("import", "terrain", str(TERRAIN / "whitebox_DEM_nocrs.tif"), env=env)
    assert bad.returncode == 2
    assert "cim: error:" in bad.stderr and "--crs" in bad.stderr
    good = run_cim(
        "import", "terrain", str(TERRAIN / "ky4_elevation.tif"), "--name", "ky4", env=env
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("imported terrain: dataset")
    assert "6 tiles" in good.stdout and "EPSG:32616" in good.stdout
    assert _table_counts(utm16) == (1, 6)


def _write_dem(
    path: Path, values: np.ndarray, crs: str, transform: object, **extra: object
) -> Path:
    profile = {"driver": "GTiff", "width": values.shape[1], "height": values.shape[0]}
    profile |= {"count": 1, "dtype": values.dtype.name, "crs": crs, "transform": transform}
    with rasterio.open(path, "w", **profile, **extra) as dst:
        dst.write(values, 1)
    return path


def test_nan_and_missing_nodata_are_respected(utm16: Engine, tmp_path: Path) -> None:
    # NaN pixels without a declared nodata: nodata, stored as the lowest float32.
    nan_values = np.full((20, 30), 150.0, dtype="float32")
    nan_values[5:10, 5:10] = np.nan
    nan_dem = _write_dem(
        tmp_path / "nan.tif", nan_values, "EPSG:32616", from_origin(620000, 4210000, 10, 10)
    )
    result = import_terrain(utm16, nan_dem)
    assert float(result.dataset.qc["nodata"]) == float(np.finfo("float32").min)
    assert result.dataset.qc["valid_pixels"] == 20 * 30 - 25
    # No nodata at all (int16): every pixel is a height.
    plain = _write_dem(
        tmp_path / "int16.tif",
        np.arange(400, dtype="int16").reshape(20, 20),
        "EPSG:32616",
        from_origin(621000, 4210000, 5, 5),
    )
    assert import_terrain(utm16, plain).dataset.qc["nodata_pixels"] == 0
    with Session(utm16) as session:
        got = heights_in_storage(
            session,
            [620075.0, 620005.0, 621002.5, 621097.5],
            [4209925.0, 4209995.0, 4209997.5, 4209902.5],
        )
    assert [z for z, _ in got] == [None, 150.0, 0.0, 399.0]


def test_nan_pixels_stay_out_of_the_bilinear_warp(utm16: Engine, tmp_path: Path) -> None:
    values = np.full((40, 40), 100.0, dtype="float32")
    values[:, 20:] = np.nan  # the east half has no data
    dem = _write_dem(
        tmp_path / "geo.tif", values, "EPSG:4326", from_origin(-85.6, 38.05, 0.0005, 0.0005)
    )
    result = import_terrain(utm16, dem)
    assert result.dataset.transform["reprojected"] is True
    # No NaN leaks into the warped heights: every stored height is exactly the constant.
    assert result.dataset.qc["min_height"] == result.dataset.qc["max_height"] == 100.0


def test_crs_option_overrides_the_file(utm16: Engine) -> None:
    # With --crs the Ontario DEM is located (78.8 W) - and refused for this UTM 16N database.
    with pytest.raises(UnsupportedCRS, match=r"lon -78\.\d+"):
        import_terrain(utm16, TERRAIN / "whitebox_DEM_nocrs.tif", crs="EPSG:32617")
    assert _table_counts(utm16) == (0, 0)


def test_south_up_grid_is_stored_north_up(utm16: Engine, tmp_path: Path) -> None:
    values = np.arange(600, dtype="float32").reshape(20, 30)
    # Rows run northwards: a south-up grid (positive y pixel size) in the storage CRS.
    dem = _write_dem(
        tmp_path / "south_up.tif",
        values,
        "EPSG:32616",
        Affine(10, 0, 620000, 0, 10, 4210000),
        nodata=-1.0,
    )
    result = import_terrain(utm16, dem)
    assert result.dataset.transform["reprojected"] is True
    xs = 620000 + np.array([5.0, 155.0, 295.0])
    ys = 4210000 + np.array([5.0, 105.0, 195.0])
    with rasterio.open(dem) as src:
        expected = [float(v[0]) for v in src.sample(zip(xs, ys, strict=True))]
    with Session(utm16) as session:
        got = [z for z, _ in heights_in_storage(session, xs, ys)]
    assert got == pytest.approx(expected, abs=1e-3)
