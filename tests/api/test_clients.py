"""Real clients against a real ``cim serve``: GDAL's OGR OAPIF driver and OWSLib.

Counts are checked against what the fixture city inserted; GDAL pages with a small page size,
so next links and numberMatched are exercised the way QGIS/GDAL use them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from pyproj import Transformer

from tests.api.features_fixtures import SRID, X0, Y0, City
from tests.api.server import cim_serve

pytestmark = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin not installed")


@pytest.fixture(scope="module")
def server(
    database_url: str, city: City, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with cim_serve(database_url, tmp_path_factory.mktemp("serve")) as base:
        yield base


def _expected(city: City, *, with_key: bool) -> dict[str, int]:
    visible = {k: v for k, v in city.segments.items() if with_key or k != "RQ"}
    counts = {f"pipes_{k}": v for k, v in visible.items()}
    counts.update(
        buildings=city.buildings,
        pipe_nodes=sum(n + 1 for n in visible.values()),
        pipe_segments=sum(visible.values()),
        shelters=city.shelters,
        population_units=city.population_units,
        hazard_zones=city.hazard_zones,
    )
    return counts


def _ogr(*args: str, key: str | None = None) -> str:
    config = ["--config", "GDAL_HTTP_HEADERS", f"X-API-Key: {key}"] if key else []
    done = subprocess.run(
        ["ogrinfo", "-ro", *config, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("with_key", [False, True], ids=["anonymous", "reader-key"])
def test_gdal_lists_and_reads_every_collection(
    server: str, city: City, keys: dict[str, str], with_key: bool
) -> None:
    key = keys["reader"] if with_key else None
    listing = _ogr("-so", f"OAPIF:{server}", key=key)
    layers = set(re.findall(r"^\d+: (\w+) \(", listing, flags=re.MULTILINE))
    expected = _expected(city, with_key=with_key)
    assert layers == set(expected)
    for layer, count in expected.items():
        summary = _ogr("-so", "-oo", "PAGE_SIZE=4", f"OAPIF:{server}", layer, key=key)
        assert f"Feature Count: {count}\n" in summary, (layer, summary)
        features = _ogr("-al", "-oo", "PAGE_SIZE=4", f"OAPIF:{server}", layer, key=key)
        assert features.count("OGRFeature(") == count, layer
    if with_key:
        gas = _ogr("-al", f"OAPIF:{server}", "pipes_RQ", key=key)
        assert "LINESTRING Z" in gas  # Z survives the trip through GDAL
    # GDAL turns -where into a CQL2 filter for servers that conform to Features Part 3
    drains = _ogr("-al", "-where", "utility = 'PS'", f"OAPIF:{server}", "pipe_segments", key=key)
    assert drains.count("OGRFeature(") == city.segments["PS"]


def test_owslib_reads_items_with_bbox_and_cql2(server: str, city: City) -> None:
    from owslib.ogcapi.features import Features

    client = Features(server)
    assert "pipes_JS" in {c["id"] for c in client.collections()["collections"]}
    to_lonlat = Transformer.from_crs(SRID, 4326, always_xy=True)
    (w, s), (e, n) = to_lonlat.transform(X0 - 1, Y0 - 1), to_lonlat.transform(X0 + 50, Y0 + 1)
    page = client.collection_items("pipes_JS", bbox=[w, s, e, n], limit=100)
    assert sorted(f["properties"]["code"] for f in page["features"]) == [
        "JS-001",
        "JS-002",
        "JS-003",
    ]
    filtered = client.collection_items(
        "pipe_segments", filter="utility = 'PS' AND diameter_mm >= 300", limit=100
    )
    expected = sum(1 for i in range(1, city.segments["PS"] + 1) if 100 * (1 + i % 4) >= 300)
    assert filtered["numberMatched"] == expected
    assert {f["properties"]["utility"] for f in filtered["features"]} == {"PS"}
    queryables = client.collection_queryables("pipes_JS")
    assert queryables["properties"]["diameter_mm"]["type"] == "number"
