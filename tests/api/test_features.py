"""OGC API Features through the real app: collections, paging, bbox, CRS, CQL2 and auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from tests.api.features_fixtures import SRID, X0, Y0, City


@pytest.fixture(scope="module")
def client(
    database_url: str, city: City, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = CimSettings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("api-data"),
        collection_cache_seconds=0,
        max_limit=7,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _ids(client: TestClient, url: str, **headers: str) -> list[int]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_collections_appear_with_data_and_hide_sensitive_classes(
    client: TestClient, city: City, keys: dict[str, str]
) -> None:
    anonymous = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert anonymous == {
        "buildings", "pipe_nodes", "pipe_segments", "pipes_JS", "pipes_PS", "shelters",
        "population_units", "hazard_zones",
    }  # fmt: skip
    reader = client.get("/collections", headers={"X-API-Key": keys["reader"]}).json()
    assert {c["id"] for c in reader["collections"]} == anonymous | {"pipes_RQ"}
    js = client.get("/collections/pipes_JS").json()
    lon_lat = Transformer.from_crs(SRID, 4326, always_xy=True)
    expected = lon_lat.transform_bounds(X0, Y0, X0 + 20 * city.segments["JS"], Y0, densify_pts=21)
    bbox = js["extent"]["spatial"]["bbox"][0]
    assert [bbox[0], bbox[1], bbox[3], bbox[4]] == pytest.approx(expected, abs=1e-8)
    assert bbox[5] == 18.5  # 3D extent: pipes keep Z
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in js["crs"]
    assert client.get("/collections/shelter_zones").status_code == 404  # no plan yet


def test_paging_counts_and_links(client: TestClient, city: City) -> None:
    first = client.get("/collections/pipes_JS/items", params={"limit": 5})
    assert first.headers["content-type"] == "application/geo+json"
    assert first.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    body = first.json()
    assert body["numberMatched"] == city.segments["JS"] and body["numberReturned"] == 5
    seen = [f["id"] for f in body["features"]]
    url = next(link["href"] for link in body["links"] if link["rel"] == "next")
    while url:
        page = client.get(url).json()
        seen += [f["id"] for f in page["features"]]
        assert any(link["rel"] == "prev" for link in page["links"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == city.segments["JS"]
    capped = client.get("/collections/pipes_JS/items", params={"limit": 1000}).json()
    assert capped["numberReturned"] == 7  # CIM_MAX_LIMIT
    anonymous_all = client.get("/collections/pipe_segments/items").json()["numberMatched"]
    assert anonymous_all == city.segments["JS"] + city.segments["PS"]  # RQ rows hidden


def test_geometry_keeps_z_and_honours_crs(client: TestClient, city: City) -> None:
    feature = client.get(
        "/collections/pipes_JS/items", params={"limit": 1, "sortby": "code"}
    ).json()["features"][0]
    assert feature["properties"]["code"] == "JS-001"
    (x0, y0, z0), (_, _, z1) = feature["geometry"]["coordinates"]
    lon, lat = Transformer.from_crs(SRID, 4326, always_xy=True).transform(X0, Y0)
    assert (x0, y0, z0, z1) == (
        pytest.approx(lon, abs=1e-8),
        pytest.approx(lat, abs=1e-8),
        18.5,
        17.99,
    )
    storage = client.get(
        f"/collections/pipes_JS/items/{feature['id']}",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4547"},
    )
    assert storage.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4547>"
    # EPSG:4547 is northing-first, as OGC API Features Part 2 requires
    assert storage.json()["geometry"]["coordinates"][0] == [Y0, X0, 18.5]
    cgcs = client.get(
        "/collections/pipes_JS/items",
        params={"limit": 1, "sortby": "code", "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"},
    ).json()["features"][0]
    lat4490, lon4490, _ = cgcs["geometry"]["coordinates"][0]
    assert (lat4490, lon4490) == (pytest.approx(lat, abs=1e-6), pytest.approx(lon, abs=1e-6))
    bad = client.get("/collections/pipes_JS/items", params={"crs": "EPSG:3857"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_bbox_in_crs84_and_storage_crs(client: TestClient, city: City) -> None:
    to_lonlat = Transformer.from_crs(SRID, 4326, always_xy=True)
    # The first three JS segments: x in [X0, X0 + 60], y = Y0
    (w, s), (e, n) = to_lonlat.transform(X0 - 1, Y0 - 1), to_lonlat.transform(X0 + 50, Y0 + 1)
    url = f"/collections/pipes_JS/items?bbox={w},{s},{e},{n}&limit=7"
    assert len(_ids(client, url)) == 3
    storage = f"/collections/pipes_JS/items?bbox={Y0 - 1},{X0 - 1},{Y0 + 1},{X0 + 50}&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4547"
    assert _ids(client, storage) == _ids(client, url)
    assert _ids(client, "/collections/pipes_JS/items?bbox=-10,-10,-5,-5") == []
    assert client.get("/collections/pipes_JS/items?bbox=1,2,3").status_code == 400
    assert (
        client.get("/collections/pipes_JS/items?bbox=-180,-90,180,90").json()["numberMatched"] == 12
    )


def test_cql2_text_and_json(client: TestClient, city: City) -> None:
    def matched(**params: str) -> int:
        response = client.get("/collections/pipe_segments/items", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["numberMatched"])

    # diameters cycle 100, 200, 300, 400 by segment number i (1-based): i % 4 == 3 -> 400
    js_over_300 = sum(1 for i in range(1, 13) if 100 * (1 + i % 4) > 300)
    assert matched(filter="utility = 'JS' AND diameter_mm > 300") == js_over_300
    as_json = {"op": "and", "args": [
        {"op": "=", "args": [{"property": "utility"}, "JS"]},
        {"op": ">", "args": [{"property": "diameter_mm"}, 300]},
    ]}  # fmt: skip
    assert matched(filter=json.dumps(as_json), **{"filter-lang": "cql2-json"}) == js_over_300
    assert matched(filter="code LIKE 'PS-00%' AND material IN ('PE', 'DI')") == 8
    assert matched(filter="CASEI(material) = casei('pe') AND year BETWEEN 2001 AND 2004") == 4
    lon, lat = Transformer.from_crs(SRID, 4326, always_xy=True).transform(X0 + 30, Y0)
    near = shapely.Point(lon, lat).buffer(1e-5)
    assert matched(filter=f"S_INTERSECTS(geometry, {near.wkt})") == 1
    assert matched(filter="length_m * 2 >= 40 AND NOT (utility = 'PS')") == 12


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"filter": "no_such = 1"}, "unknown property 'no_such'"),
        ({"filter": "frobnicate(code) = 'x'"}, "unknown function 'frobnicate'"),
        (
            {
                "filter": json.dumps(
                    {
                        "op": "=",
                        "args": [
                            {"function": {"name": "frob", "arguments": [{"property": "code"}]}},
                            "x",
                        ],
                    }
                ),
                "filter-lang": "cql2-json",
            },
            "unknown function 'frob'",
        ),
        (
            {
                "filter": json.dumps({"op": "=", "args": [{"property": "nope"}, 1]}),
                "filter-lang": "cql2-json",
            },
            "unknown property 'nope'",
        ),
        ({"filter": "code = 5"}, "cannot compare a string with a number"),
        ({"filter": "code = "}, "invalid cql2-text filter"),
        ({"sortby": "nope"}, "cannot sort by 'nope'"),
        ({"properties": "nope"}, "unknown property 'nope'"),
    ],
)
def test_bad_queries_are_400_problems(
    client: TestClient, city: City, params: dict[str, str], needle: str
) -> None:
    response = client.get("/collections/pipes_JS/items", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]
    assert "Traceback" not in response.text


def test_properties_ids_and_queryables(client: TestClient, city: City) -> None:
    ids = _ids(client, "/collections/pipes_PS/items?limit=3")
    picked = client.get(
        f"/collections/pipes_PS/items?ids={ids[1]},{ids[2]},x&properties=code"
    ).json()
    assert [f["id"] for f in picked["features"]] == ids[1:3]
    assert all(set(f["properties"]) == {"code"} for f in picked["features"])
    queryables = client.get("/collections/pipes_PS/queryables")
    assert queryables.headers["content-type"] == "application/schema+json"
    props = queryables.json()["properties"]
    assert props["diameter_mm"]["type"] == "number" and props["code"]["type"] == "string"
    assert "attrs" not in props
    assert client.get("/collections/pipes_PS/items/999999999").status_code == 404
    assert client.get("/collections/pipes_PS/items/abc").status_code == 404


def test_sensitive_class_needs_a_key_and_is_audited(
    client: TestClient, engine: Engine, city: City, keys: dict[str, str]
) -> None:
    assert client.get("/collections/pipes_RQ/items").status_code == 401
    assert (
        client.get("/collections/pipes_RQ/items", headers={"X-API-Key": "wrong"}).status_code == 401
    )
    for header in ({"X-API-Key": keys["reader"]}, {"Authorization": f"Bearer {keys['reader']}"}):
        response = client.get("/collections/pipes_RQ/items", headers=header)
        assert (
            response.status_code == 200 and response.json()["numberMatched"] == city.segments["RQ"]
        )
    everything = client.get(
        "/collections/pipe_segments/items", headers={"X-API-Key": keys["reader"]}
    )
    assert everything.json()["numberMatched"] == sum(city.segments.values())
    with engine.connect() as conn:
        logged = conn.execute(
            text(
                "SELECT count(*) FROM audit_log"
                " WHERE action = 'read' AND resource = 'collections/pipes_RQ/items'"
            )
        ).scalar_one()
    assert logged >= 2


def test_public_collections_are_configurable(
    database_url: str, city: City, keys: dict[str, str], tmp_path: Path
) -> None:
    settings = CimSettings(
        database_url=database_url, data_dir=tmp_path, public_collections="buildings",
        sensitive_utilities="", collection_cache_seconds=0,
    )  # fmt: skip
    with TestClient(create_app(settings)) as private:
        assert private.get("/collections/buildings/items").status_code == 200
        assert private.get("/collections/shelters/items").status_code == 401
        listed = {c["id"] for c in private.get("/collections").json()["collections"]}
        assert listed == {"buildings"}
        reader = {"X-API-Key": keys["reader"]}
        assert private.get("/collections/shelters/items", headers=reader).status_code == 200


def test_landing_conformance_and_openapi_30(client: TestClient) -> None:
    landing = client.get("/")
    assert {"service-desc", "conformance", "data"} <= {
        link["rel"] for link in landing.json()["links"]
    }
    html = client.get("/", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "<a href=" in html.text
    conforms = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter" in conforms
    spec = client.get("/api").json()
    assert spec["openapi"] == "3.0.3"
    assert "/collections/{collection_id}/items" in spec["paths"]
    assert '"type": "null"' not in json.dumps(spec)


def test_big_pages_stream_the_same_features(
    database_url: str, city: City, keys: dict[str, str], tmp_path: Path
) -> None:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path, collection_cache_seconds=0)
    reader = {"X-API-Key": keys["reader"]}
    with TestClient(create_app(settings)) as client:
        for params in (
            {"sortby": "-diameter_mm,code"},
            {"filter": "diameter_mm >= 200", "properties": "code,diameter_mm"},
            {"offset": "3", "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"},
        ):
            built = client.get(
                "/collections/pipe_segments/items",
                params={**params, "limit": "1000"},
                headers=reader,
            )
            streamed = client.get(
                "/collections/pipe_segments/items",
                params={**params, "limit": "1001"},
                headers=reader,
            )
            assert streamed.status_code == 200 and "content-length" not in streamed.headers
            a, b = built.json(), streamed.json()
            assert b["features"] == a["features"]
            assert (b["numberMatched"], b["numberReturned"]) == (
                a["numberMatched"],
                a["numberReturned"],
            )
            assert b["numberReturned"] == len(b["features"]) > 0


def test_city_model_buildings_show_their_height_lods_and_function(
    client: TestClient, city: City, engine: Engine
) -> None:
    """A city-model building (CityJSON/CityGML columns filled) is a feature of ``buildings``
    with its source id, LoDs, height, storeys, function and year, and they can be filtered on."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE building SET source_id = 'NL.IMBAG.1', lods = ARRAY['1.2', '2.2'],"
                " height = 31.5, storeys = 9, function = 'residential', year = 1968"
                " WHERE guid = 'B1'"
            )
        )
    answer = client.get("/collections/buildings/items", params={"filter": "height > 30"}).json()
    assert answer["numberMatched"] == 1
    properties = answer["features"][0]["properties"]
    assert properties["source_id"] == "NL.IMBAG.1"
    assert properties["lods"] == ["1.2", "2.2"]
    assert (properties["height"], properties["storeys"], properties["year"]) == (31.5, 9, 1968)
    assert properties["function"] == "residential"
    queryables = client.get("/collections/buildings/queryables").json()["properties"]
    assert queryables["height"]["type"] == "number"
    assert queryables["function"]["type"] == "string"
    assert "lods" not in queryables  # arrays are returned, not filtered on


def test_lod_2_answers_the_faces_of_that_level_of_detail(
    client: TestClient, city: City, engine: Engine
) -> None:
    """``?lod=2`` gives the finest LoD 2.x faces as a MultiPolygon Z, ``lod=1.2`` exactly that
    LoD; buildings without the LoD are left out; a bad LoD or another collection is a 400."""
    x, y = X0 + 5, Y0 + 5
    square = f"(({x} {y} 0,{x + 1} {y} 0,{x + 1} {y + 1} 0,{x} {y} 0))"
    roof = f"(({x} {y} 9,{x + 1} {y} 9,{x + 1} {y + 1} 9,{x} {y} 9))"
    wall = f"(({x} {y} 0,{x + 1} {y} 0,{x + 1} {y} 9,{x} {y} 0))"
    faces = [("1.2", "RoofSurface", f"MULTIPOLYGON Z({square})"),
             ("2.2", "RoofSurface", f"MULTIPOLYGON Z({roof})"),
             ("2.2", "WallSurface", f"MULTIPOLYGON Z({wall},{wall})")]  # fmt: skip
    with engine.begin() as conn:
        building_id, dataset_id = conn.execute(
            text("SELECT id, dataset_id FROM building WHERE guid = 'B1'")
        ).one()
        for lod, semantic, wkt in faces:
            conn.execute(
                text(
                    "INSERT INTO building_surface (dataset_id, building_id, lod, semantic, geom)"
                    " VALUES (:d, :b, :lod, :s, ST_GeomFromText(:wkt, :srid))"
                ),
                {"d": dataset_id, "b": building_id, "lod": lod, "s": semantic, "wkt": wkt,
                 "srid": SRID},
            )  # fmt: skip
    try:
        crs = f"http://www.opengis.net/def/crs/EPSG/0/{SRID}"
        lod2 = client.get("/collections/buildings/items", params={"lod": "2", "crs": crs}).json()
        assert lod2["numberMatched"] == 1
        geometry = lod2["features"][0]["geometry"]
        assert geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 3
        heights = sorted({round(p[2], 3) for poly in geometry["coordinates"] for p in poly[0]})
        assert heights == [0.0, 9.0]  # roof and walls of 2.2, not the 1.2 ground square
        lod12 = client.get("/collections/buildings/items", params={"lod": "1.2", "crs": crs})
        assert len(lod12.json()["features"][0]["geometry"]["coordinates"]) == 1
        paged = client.get("/collections/buildings/items", params={"lod": "2", "limit": 1})
        assert "lod=2" in next(link["href"] for link in paged.json()["links"]
                               if link["rel"] == "self")  # fmt: skip
        assert (
            client.get("/collections/buildings/items", params={"lod": "3"}).json()["numberMatched"]
            == 0
        )
        for params, collection in (({"lod": "two"}, "buildings"), ({"lod": "2"}, "pipes_JS")):
            bad = client.get(f"/collections/{collection}/items", params=params)
            assert bad.status_code == 400, bad.text
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM building_surface WHERE building_id = :b"),
                         {"b": building_id})  # fmt: skip
