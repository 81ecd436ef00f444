"""SensorThings API conformance subset (OGC 18-088 examples): deep insert, navigation links,
$filter, $expand, paging, dataArray, writes by role, and the sensitive-utility rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from tests.api.features_fixtures import City

ROOT = "/sta/v1.1"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
# The deep-insert example of OGC 18-088 §10.2.1, placed in Shenzhen (the test storage CRS is
# EPSG:4547, CGCS2000 3-degree Gauss-Kruger, central meridian 114E).
THING = {
    "name": "Temperature Monitoring System",
    "description": "Sensor system monitoring area temperature",
    "properties": {"Deployment Condition": "Deployed in a third floor balcony"},
    "Locations": [
        {
            "name": "UofC CCIT",
            "description": "University of Calgary, CCIT building",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [114.05, 22.54]},
        }
    ],
    "Datastreams": [
        {
            "name": "Air Temperature DS",
            "description": "Datastream for recording temperature",
            "observationType": MEASUREMENT,
            "unitOfMeasurement": {
                "name": "Degree Celsius",
                "symbol": "degC",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#DegreeCelsius",
            },
            "ObservedProperty": {
                "name": "Area Temperature",
                "description": "The degree or intensity of heat present in the area",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#AreaTemperature",
            },
            "Sensor": {
                "name": "DHT22",
                "description": "DHT22 temperature sensor",
                "encodingType": "application/pdf",
                "metadata": "https://cdn-shop.adafruit.com/datasheets/DHT22.pdf",
            },
        }
    ],
}


@pytest.fixture(scope="module")
def client(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path_factory.mktemp("sta"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module", autouse=True)
def clean_sensors(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        for table in ("sensor_thing", "sensor_location", "sensor_device"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM sensor_feature_of_interest"))
        conn.execute(
            text("DELETE FROM sensor_observed_property WHERE properties->>'seeded' IS NULL")
        )


def auth(keys: dict[str, str], role: str = "analyst") -> dict[str, str]:
    return {"X-API-Key": keys[role]}


def create_thing(client: TestClient, keys: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"{ROOT}/Things", json=body, headers=auth(keys))
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == answer.json()["@iot.selfLink"]
    return dict(answer.json())


def get(client: TestClient, path: str, **kw: Any) -> Any:
    answer = client.get(path if path.startswith("http") else f"{ROOT}/{path}", **kw)
    assert answer.status_code == 200, answer.text
    return answer.json()


def first_datastream(client: TestClient, thing: dict[str, Any], **kw: Any) -> int:
    return int(get(client, thing["Datastreams@iot.navigationLink"], **kw)["value"][0]["@iot.id"])


def test_service_root_lists_entity_sets_and_conformance(client: TestClient) -> None:
    root = client.get(ROOT).json()
    names = [entry["name"] for entry in root["value"]]
    assert names == [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
        "FeaturesOfInterest",
    ]
    assert root["value"][0]["url"].endswith("/sta/v1.1/Things")
    conformance = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array" in conformance
    seeded = get(client, "ObservedProperties", params={"$filter": "properties/seeded eq true"})
    assert {p["name"] for p in seeded["value"]} >= {"Methane concentration", "Pipe pressure"}


def test_deep_insert_and_navigation_links(client: TestClient, keys: dict[str, str]) -> None:
    thing = create_thing(client, keys, THING)
    assert thing["name"] == THING["name"]
    assert thing["properties"] == THING["properties"]
    for nav in ("Locations", "HistoricalLocations", "Datastreams"):
        assert thing[f"{nav}@iot.navigationLink"] == f"{thing['@iot.selfLink']}/{nav}"
    locations = get(client, thing["Locations@iot.navigationLink"])["value"]
    assert len(locations) == 1
    assert locations[0]["location"]["type"] == "Point"
    assert locations[0]["location"]["coordinates"] == pytest.approx([114.05, 22.54], abs=1e-9)
    history = get(client, thing["HistoricalLocations@iot.navigationLink"])["value"]
    assert len(history) == 1  # made when the Thing got its Location
    stream = get(client, thing["Datastreams@iot.navigationLink"])["value"][0]
    assert stream["unitOfMeasurement"]["symbol"] == "degC"
    assert stream["observationType"] == MEASUREMENT
    assert get(client, stream["Thing@iot.navigationLink"])["@iot.id"] == thing["@iot.id"]
    assert get(client, stream["Sensor@iot.navigationLink"])["name"] == "DHT22"
    assert get(client, stream["ObservedProperty@iot.navigationLink"])["name"] == "Area Temperature"
    name = client.get(f"{thing['@iot.selfLink']}/name/$value")
    assert name.text == THING["name"]
    assert get(client, f"{thing['@iot.selfLink']}/name") == {"name": THING["name"]}
    expanded = get(client, f"Things({thing['@iot.id']})", params={"$expand": "Datastreams"})
    assert [d["name"] for d in expanded["Datastreams"]] == ["Air Temperature DS"]


def test_observations_filter_and_feature_of_interest(
    client: TestClient, keys: dict[str, str]
) -> None:
    thing = create_thing(client, keys, {**THING, "name": "filter thing"})
    stream = first_datastream(client, thing)
    values = [(f"2025-12-31T23:0{i}:00Z", 50.0) for i in range(3)]
    values += [(f"2026-01-0{d}T08:00:00+08:00", float(v)) for d, v in ((1, 5), (2, 10), (3, 12.5))]
    values += [("2026-02-01T00:00:00Z", 11)]
    for when, result in values:
        answer = client.post(
            f"{ROOT}/Datastreams({stream})/Observations",
            json={"phenomenonTime": when, "result": result},
            headers=auth(keys),
        )
        assert answer.status_code == 201, answer.text
    observation = answer.json()
    feature = get(client, observation["FeatureOfInterest@iot.navigationLink"])
    assert feature["feature"]["coordinates"] == pytest.approx([114.05, 22.54])
    found = get(
        client,
        f"Datastreams({stream})/Observations",
        params={
            "$filter": "phenomenonTime ge 2026-01-01T00:00:00Z and result gt 10",
            "$orderby": "phenomenonTime",
        },
    )["value"]
    # 2026-01-01T08:00+08:00 is 00:00Z (result 5, not > 10); 12.5 and 11 qualify.
    assert [o["result"] for o in found] == [12.5, 11]
    assert found[0]["phenomenonTime"] == "2026-01-03T00:00:00Z"
    linked = client.post(
        f"{ROOT}/Observations",
        json={
            "result": "offline",
            "Datastream": {"@iot.id": stream},
            "phenomenonTime": "2026-03-01T00:00:00Z",
        },
        headers=auth(keys),
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["result"] == "offline"
    text_match = get(client, "Observations", params={"$filter": "result eq 'offline'"})
    assert [o["@iot.id"] for o in text_match["value"]] == [linked.json()["@iot.id"]]


def test_geo_intersects_on_locations_and_things(client: TestClient, keys: dict[str, str]) -> None:
    far = {
        **THING,
        "name": "far thing",
        "Locations": [
            {
                **THING["Locations"][0],
                "name": "far",
                "location": {"type": "Point", "coordinates": [113.5, 22.9]},
            }
        ],
    }
    near = create_thing(client, keys, {**THING, "name": "near thing"})
    create_thing(client, keys, far)
    polygon = "POLYGON((114.0 22.5, 114.1 22.5, 114.1 22.6, 114.0 22.6, 114.0 22.5))"
    locations = get(
        client, "Locations", params={"$filter": f"geo.intersects(location, geography'{polygon}')"}
    )["value"]
    assert "far" not in {loc["name"] for loc in locations} and locations
    things = get(
        client,
        "Things",
        params={"$filter": f"st_within(Locations/location, geography'{polygon}')"},
    )["value"]
    names = {t["name"] for t in things}
    assert "near thing" in names and "far thing" not in names
    assert near["@iot.id"] in {t["@iot.id"] for t in things}


def test_paging_count_and_next_links(client: TestClient, keys: dict[str, str]) -> None:
    thing = create_thing(client, keys, {**THING, "name": "paging thing"})
    stream = first_datastream(client, thing)
    block = {
        "Datastream": {"@iot.id": stream},
        "components": ["phenomenonTime", "result"],
        "dataArray": [[f"2026-04-01T00:{m:02d}:00Z", m] for m in range(25)],
    }
    assert (
        client.post(f"{ROOT}/CreateObservations", json=[block], headers=auth(keys)).status_code
        == 201
    )
    page = get(
        client,
        f"Datastreams({stream})/Observations",
        params={"$top": "10", "$count": "true", "$orderby": "result desc"},
    )
    assert page["@iot.count"] == 25
    seen = [o["result"] for o in page["value"]]
    while "@iot.nextLink" in page:
        page = get(client, page["@iot.nextLink"])
        seen += [o["result"] for o in page["value"]]
    assert seen == list(range(24, -1, -1))
    skipped = get(
        client,
        f"Datastreams({stream})/Observations",
        params={"$skip": "20", "$top": "3", "$orderby": "result"},
    )
    assert [o["result"] for o in skipped["value"]] == [20, 21, 22]
    nested = get(
        client,
        f"Things({thing['@iot.id']})",
        params={"$expand": "Datastreams/Observations($top=2;$orderby=result desc)"},
    )
    assert [o["result"] for o in nested["Datastreams"][0]["Observations"]] == [24, 23]
    array = get(
        client,
        f"Datastreams({stream})/Observations",
        params={"$resultFormat": "dataArray", "$top": "5", "$orderby": "result"},
    )
    assert array["value"][0]["components"] == ["id", "phenomenonTime", "result", "resultTime"]
    assert [row[2] for row in array["value"][0]["dataArray"]] == [0, 1, 2, 3, 4]


def test_create_observations_data_array(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    thing = create_thing(client, keys, {**THING, "name": "array thing"})
    stream = first_datastream(client, thing)
    feature = client.post(
        f"{ROOT}/FeaturesOfInterest",
        json={
            "name": "well",
            "description": "telecom well",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": [114.06, 22.55]},
        },
        headers=auth(keys),
    ).json()["@iot.id"]
    body = [
        {
            "Datastream": {"@iot.id": stream},
            "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],
            "dataArray@iot.count": 4,
            "dataArray": [
                ["2010-12-23T10:20:00-07:00", 20, feature],
                ["2010-12-23T10:21:00-07:00", 30, feature],
                ["not a time", 40, feature],
                ["2010-12-23T10:22:00-07:00", 50, 987654321],
            ],
        },
        {"Datastream": {"@iot.id": 987654321}, "components": ["result"], "dataArray": [[1]]},
    ]
    answer = client.post(f"{ROOT}/CreateObservations", json=body, headers=auth(keys))
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert links[2:] == ["error", "error", "error"]
    assert all(link.startswith("http") and "/sta/v1.1/Observations(" in link for link in links[:2])
    stored = get(client, links[0])
    assert stored["phenomenonTime"] == "2010-12-23T17:20:00Z" and stored["result"] == 20
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :d"), {"d": stream}
        ).scalar_one()
        daily = conn.execute(
            text("SELECT count, total FROM sensor_observation_daily WHERE datastream_id = :d"),
            {"d": stream},
        ).one()
    assert count == 2 and tuple(daily) == (2, 50.0)


def test_writes_need_a_key_and_update_delete(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    assert client.post(f"{ROOT}/Things", json=THING).status_code == 401
    assert (
        client.post(f"{ROOT}/Things", json=THING, headers=auth(keys, "reader")).status_code == 403
    )
    thing = create_thing(client, keys, {**THING, "name": "to change"})
    changed = client.patch(thing["@iot.selfLink"], json={"name": "changed"}, headers=auth(keys))
    assert changed.status_code == 200 and changed.json()["name"] == "changed"
    stream = first_datastream(client, thing)
    made = client.post(
        f"{ROOT}/Datastreams({stream})/Observations",
        json={"phenomenonTime": "2026-05-01T10:00:00Z", "result": 7},
        headers=auth(keys),
    )
    observation = made.json()["@iot.selfLink"]
    assert client.patch(observation, json={"result": 9}, headers=auth(keys)).json()["result"] == 9
    with engine.connect() as conn:
        hourly = conn.execute(
            text("SELECT maximum FROM sensor_observation_hourly WHERE datastream_id = :d"),
            {"d": stream},
        ).scalar_one()
    assert hourly == 9
    assert client.delete(observation, headers=auth(keys)).status_code == 200
    assert client.get(observation).status_code == 404
    assert client.delete(thing["@iot.selfLink"], headers=auth(keys)).status_code == 200
    assert client.get(f"{ROOT}/Datastreams({stream})").status_code == 404


def test_anonymous_cannot_see_gas_things(
    client: TestClient, keys: dict[str, str], city: City, engine: Engine
) -> None:
    with engine.connect() as conn:
        gas = conn.execute(
            text("SELECT id FROM pipe_segment WHERE utility = 'RQ' LIMIT 1")
        ).scalar_one()
    body = {
        **THING,
        "name": "methane in a well",
        "properties": {"cim:watches": {"kind": "pipe_segment", "id": gas}},
    }
    thing = create_thing(client, keys, body)
    assert thing["properties"]["cim:utility"] == "RQ"
    stream = first_datastream(client, thing, headers=auth(keys, "reader"))
    client.post(
        f"{ROOT}/Datastreams({stream})/Observations", json={"result": 12}, headers=auth(keys)
    )
    anonymous_names = {t["name"] for t in get(client, "Things", params={"$top": "1000"})["value"]}
    assert "methane in a well" not in anonymous_names
    for path in (
        f"Things({thing['@iot.id']})",
        f"Datastreams({stream})",
        f"Things({thing['@iot.id']})/Datastreams",
    ):
        answer = client.get(f"{ROOT}/{path}")
        assert answer.status_code == 404 or answer.json()["value"] == []
    anonymous_streams = get(
        client, "Observations", params={"$filter": f"Datastream/id eq {stream}"}
    )
    assert anonymous_streams["value"] == []
    seen = get(client, f"Datastreams({stream})/Observations", headers=auth(keys, "reader"))
    assert [o["result"] for o in seen["value"]] == [12]
    assert (
        client.get(
            f"/sensors/datastreams/{stream}/series",
            params={"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
        ).status_code
        == 404
    )


def test_errors_are_problem_json(client: TestClient) -> None:
    for path, status in (
        ("Things?$filter=name eq", 400),
        ("Things?$filter=nosuch eq 1", 400),
        ("Things?$top=-1", 400),
        ("Things?$bogus=1", 400),
        ("Gadgets", 404),
        ("Things(987654321)", 404),
        ("Things(1)/Gadgets", 400),
        ("Things?$expand=Datastreams(", 400),
    ):
        answer = client.get(f"{ROOT}/{path}")
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")


HOSTILE_READS = [
    "Things?$filter=id eq 99999999999999999999999",
    "Things?$filter=geo.intersects(Locations/location, geography'POINT(500 500)')",
    "Locations?$filter=geo.intersects(location, geography'POLYGON((0 0))')",
    "Observations?$filter=result div 0 gt 1",
    "Observations?$filter=result gt 1e400",
    "Things?$filter=name eq 'a%00b'",
    "Things?$filter=year(name) eq 1",
    "Things?$filter=substringof(1, name)",
    "Things?$filter=" + "(" * 60 + "id eq 1" + ")" * 60,
    "Things?$filter=not not not id eq 1",
    "Things?$orderby=Locations/location",
    "Things?$orderby=properties/a desc,name asc",
    "Things?$expand=Datastreams($top=abc)",
    "Things?$expand=Datastreams/Observations/FeatureOfInterest/Observations/Datastream",
    "Things?$expand=Nope",
    "Things?$select=name,nope",
    "Things?$resultFormat=dataArray",
    "Things(1)/name/$value/extra",
    "Things(1)/Datastreams(2)/Observations(3)",
    "Observations?$filter=phenomenonTime gt '2026'",
    "Observations?$filter=Datastream/Thing/Locations/location eq 1",
    "Datastreams?$filter=unitOfMeasurement/symbol eq 'degC'",
    "Things(0)",
    "Things(1)(2)",
    "Things%00",
]


def test_hostile_requests_never_fail_with_500(client: TestClient, keys: dict[str, str]) -> None:
    for path in HOSTILE_READS:
        answer = client.get(f"{ROOT}/{path}")
        assert answer.status_code < 500, (path, answer.text)
    nested: dict[str, Any] = {"name": "n", "description": "d"}
    for _ in range(40):
        nested = {"name": "n", "description": "d", "Datastreams": [{"Thing": nested}]}
    bodies = [
        ("Things", nested),
        ("Things", []),
        ("Things", {"name": 1, "description": "d"}),
        ("Things", {"name": "n", "description": "d", "properties": {"cim:watches": 5}}),
        ("Things", {"name": "n", "description": "d", "Locations": [{"@iot.id": 987654}]}),
        (
            "Locations",
            {
                "name": "n",
                "description": "d",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [1e308, 0]},
            },
        ),
        (
            "Datastreams",
            {
                "name": "n",
                "description": "d",
                "observationType": "x",
                "unitOfMeasurement": {"name": None, "symbol": None, "definition": None},
            },
        ),
        ("Observations", {"result": 1, "Datastream": {"@iot.id": "one"}}),
        ("Observations", {"result": 1, "phenomenonTime": "2026-01-01T00:00:00"}),
        ("CreateObservations", {"not": "a list"}),
        (
            "CreateObservations",
            [{"Datastream": {"@iot.id": 1}, "components": ["x"], "dataArray": []}],
        ),
        ("Things(1)/name", {"name": "x"}),
    ]
    for path, body in bodies:
        answer = client.post(f"{ROOT}/{path}", json=body, headers=auth(keys))
        assert 400 <= answer.status_code < 500, (path, answer.text)


def test_a_thing_watching_a_node_stands_there_and_changes_are_audited(
    client: TestClient, keys: dict[str, str], city: City, engine: Engine
) -> None:
    from pyproj import Transformer

    with engine.connect() as conn:
        node, x, y, z = conn.execute(
            text(
                "SELECT id, ST_X(geom), ST_Y(geom), ST_Z(geom) FROM pipe_node"
                " WHERE utility = 'JS' ORDER BY id LIMIT 1"
            )
        ).one()
    body = {
        "name": "pressure at a valve",
        "description": "water pressure logger",
        "properties": {"cim:watches": {"kind": "pipe_node", "id": node}},
    }
    thing = create_thing(client, keys, body)
    assert thing["properties"]["cim:watches"] == {"kind": "pipe_node", "id": node}
    assert thing["properties"]["cim:utility"] == "JS"
    location = get(client, thing["Locations@iot.navigationLink"])["value"][0]
    lon, lat = Transformer.from_crs(4547, 4326, always_xy=True).transform(x, y)
    expected = [lon, lat] if not z else [lon, lat, z]
    assert location["location"]["coordinates"] == pytest.approx(expected, abs=1e-9)
    client.patch(thing["@iot.selfLink"], json={"description": "moved"}, headers=auth(keys))
    with engine.connect() as conn:
        actions = (
            conn.execute(
                text("SELECT action FROM audit_log WHERE resource = :r ORDER BY id"),
                {"r": f"sta/v1.1/Things({thing['@iot.id']})"},
            )
            .scalars()
            .all()
        )
    assert actions == ["create", "update"]
