"""``/health`` through the real app and lifespan, and the problem+json error shape."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from cim.config import CimSettings


def test_health_reports_versions_and_srid(settings: CimSettings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["postgis"].startswith("3.")
        assert body["storage_srid"] == 4547

        missing = client.get("/no-such-thing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404

        spec = client.get("/api")
        assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
