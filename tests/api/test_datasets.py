"""Datasets and import jobs over HTTP: upload -> background job -> dataset -> delete (admin)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings


@pytest.fixture
def client(database_url: str, tmp_path: Path, clean_tables: None) -> Iterator[TestClient]:
    settings = CimSettings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        collection_cache_seconds=0,
        max_body_bytes=8 * 1024 * 1024,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _dem(path: Path) -> Path:
    """A 40x30 DEM in EPSG:4547 (the test storage CRS), 5 m pixels, heights 100 + row."""
    import rasterio
    from rasterio.transform import from_origin

    heights = (100.0 + np.arange(30, dtype=np.float32)[:, None]) * np.ones((1, 40), np.float32)
    with rasterio.open(
        path, "w", driver="GTiff", width=40, height=30, count=1, dtype="float32",
        crs="EPSG:4547", transform=from_origin(534_000.0, 3_380_150.0, 5.0, 5.0),
    ) as dst:  # fmt: skip
        dst.write(heights, 1)
    return path


def _wait(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(url, headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job did not finish: {job}")


def test_upload_import_list_delete(
    client: TestClient, engine: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    dem = _dem(tmp_path / "small_dem.tif")
    with open(dem, "rb") as handle:
        payload = {"files": ("small_dem.tif", handle.read(), "image/tiff")}
    form = {"kind": "terrain", "name": "test dem"}
    assert client.post("/datasets", data=form, files=payload).status_code == 401
    reader = {"X-API-Key": keys["reader"]}
    assert client.post("/datasets", data=form, files=payload, headers=reader).status_code == 403
    started = client.post("/datasets", data=form, files=payload, headers=admin)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] in ("queued", "running", "succeeded") and job["kind"] == "terrain"
    assert started.headers["location"].endswith(f"/jobs/{job['id']}")
    done = _wait(client, f"/jobs/{job['id']}", admin)
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0
    dataset_id = done["dataset_id"]
    listed = client.get("/datasets").json()["datasets"]
    assert [d["id"] for d in listed] == [dataset_id] and listed[0]["name"] == "test dem"
    shown = client.get(f"/datasets/{dataset_id}").json()
    assert shown["counts"]["terrain_raster"] >= 1
    coverage = client.get("/collections/terrain_coverage/items").json()
    assert coverage["numberMatched"] == 1
    assert coverage["features"][0]["properties"]["resolution"] == pytest.approx(5.0)

    assert client.delete(f"/datasets/{dataset_id}").status_code == 401
    assert client.delete(f"/datasets/{dataset_id}", headers=reader).status_code == 403
    assert client.delete(f"/datasets/{dataset_id}", headers=admin).status_code == 204
    assert client.get(f"/datasets/{dataset_id}").status_code == 404
    assert client.get("/collections/terrain_coverage").status_code == 404
    with engine.connect() as conn:
        actions = set(
            conn.execute(
                text("SELECT action FROM audit_log WHERE resource IN (:a, :b)"),
                {"a": f"jobs/{job['id']}", "b": f"datasets/{dataset_id}"},
            ).scalars()
        )
    assert actions == {"import", "delete"}


def test_bad_file_fails_the_job_and_big_bodies_are_refused(
    client: TestClient, keys: dict[str, str]
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": ("notes.tif", b"not a raster at all", "image/tiff")}
    started = client.post("/datasets", data={"kind": "terrain"}, files=files, headers=admin)
    assert started.status_code == 202
    done = _wait(client, started.headers["location"], admin)
    assert done["status"] == "failed" and "notes.tif" in done["error"]
    assert client.get("/datasets").json()["datasets"] == []
    unknown = client.post("/datasets", data={"kind": "lidar"}, files=files, headers=admin)
    assert unknown.status_code == 400 and "unknown dataset kind" in unknown.json()["detail"]
    big = {"files": ("big.tif", b"x" * (9 * 1024 * 1024), "image/tiff")}
    refused = client.post("/datasets", data={"kind": "terrain"}, files=big, headers=admin)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/jobs/does-not-exist", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("kind", "sample", "form", "table"),
    [
        (
            "pipes",
            "pipes/Net1.inp",
            {"crs": "EPSG:4547", "origin": "534000,3380000", "utility": "JS"},
            "pipe_segment",
        ),
    ],
)
def test_other_importers_run_as_jobs(
    client: TestClient,
    keys: dict[str, str],
    kind: str,
    sample: str,
    form: dict[str, str],
    table: str,
) -> None:
    from tests.conftest import SHARED_SAMPLES

    path = SHARED_SAMPLES / sample
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": (path.name, path.read_bytes(), "application/octet-stream")}
    started = client.post("/datasets", data={"kind": kind, **form}, files=files, headers=admin)
    assert started.status_code == 202, started.text
    done = _wait(client, started.headers["location"], admin)
    assert done["status"] == "succeeded", done
    dataset = client.get(f"/datasets/{done['dataset_id']}").json()
    assert dataset["kind"] == kind and dataset["counts"][table] > 0


def test_pipes_upload_with_a_valve_layer(client: TestClient, keys: dict[str, str]) -> None:
    from tests.conftest import SHARED_SAMPLES

    admin = {"X-API-Key": keys["admin"]}
    net1 = (SHARED_SAMPLES / "pipes" / "Net1.inp").read_bytes()
    form = {"kind": "pipes", "crs": "EPSG:4547", "origin": "534000,3380000"}
    for layer, status in ((b",link,node\n0,10,10\n1,10,11\n", "succeeded"),
                          (b"link,node\n10,12\n", "failed")):  # fmt: skip
        files = {
            "files": ("Net1.inp", net1, "application/octet-stream"),
            "valves": ("net1_valves.csv", layer, "text/csv"),
        }
        started = client.post("/datasets", data=form, files=files, headers=admin)
        assert started.status_code == 202, started.text
        done = _wait(client, started.headers["location"], admin)
        assert done["status"] == status, done
    assert "net1_valves.csv" in done["error"] and "not an end of their link" in done["error"]
    [listed] = client.get("/datasets").json()["datasets"]
    dataset = client.get(f"/datasets/{listed['id']}").json()
    assert dataset["counts"]["nodes_by_kind"]["valve"] == 2
    assert dataset["options"]["valves"]["file"] == "net1_valves.csv"
