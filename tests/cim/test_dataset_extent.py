"""Dataset extents for the viewer's fly-to: storage bounding box, corners in CRS84."""

from __future__ import annotations

import pytest
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.models import Dataset
from cim.services.ogc.extent import dataset_extents, dataset_heights
from tests.conftest import TEST_SRID


def test_extent_is_the_bounding_box_corners_in_lonlat(session: Session) -> None:
    dataset = Dataset(
        kind="hazards", name="box", source_name="box.geojson", source_sha256="0" * 64,
        status="ready", counts={}, qc={},
    )  # fmt: skip
    session.add(dataset)
    session.flush()
    # two squares in CGCS2000 / GK CM 114E (EPSG:4547) around Wuhan
    for x0, y0 in ((500_000.0, 3_380_000.0), (501_000.0, 3_381_500.0)):
        session.execute(
            text(
                "INSERT INTO hazard_zone (dataset_id, kind, geom) VALUES (:id, 'flood',"
                " ST_Multi(ST_MakeEnvelope(:x0, :y0, :x0 + 200, :y0 + 300, :srid)))"
            ),
            {"id": dataset.id, "x0": x0, "y0": y0, "srid": TEST_SRID},
        )
    extents = dataset_extents(session, storage_srid=TEST_SRID)
    to_lonlat = Transformer.from_crs(TEST_SRID, 4326, always_xy=True)
    # the storage box (500000..501200, 3380000..3381800): its four corners in lon/lat
    lons, lats = to_lonlat.transform(
        [500_000.0, 501_200.0, 501_200.0, 500_000.0],
        [3_380_000.0, 3_380_000.0, 3_381_800.0, 3_381_800.0],
    )
    expected = (min(lons), min(lats), max(lons), max(lats))
    assert extents[dataset.id] == pytest.approx(expected, abs=1e-9)
    assert dataset.id not in dataset_heights(session)  # 2D polygons carry no heights
