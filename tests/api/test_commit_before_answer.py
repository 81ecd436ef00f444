"""A write is committed before its answer leaves the server.

FastAPI runs the exit code of ``yield`` dependencies after the response is sent unless they
are declared with ``scope="function"``; then a client could read 201 and not find what it made
(seen as a 404 on an immediate GET of a new shelter plan). The app is driven as raw ASGI: at the
moment the response starts, another connection must already see the new plan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key


def test_new_plan_is_visible_when_the_answer_starts(
    cambridge_engine: Engine, tmp_path: Any
) -> None:
    url = cambridge_engine.url.render_as_string(hide_password=False)
    with Session(cambridge_engine) as session, session.begin():
        key, secret = create_key(session, name="commit test admin", role="admin")
        key_id = key.id
    app = create_app(CimSettings(database_url=url, data_dir=tmp_path / "data"))
    body = json.dumps({"name": "commit-order", "radius_m": {"short": 500}}).encode()
    seen: dict[str, Any] = {}

    def plans_named() -> int:
        with cambridge_engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM shelter_plan WHERE name = 'commit-order'")
                ).scalar_one()
            )

    async def drive() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["visible"] = await asyncio.to_thread(plans_named)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/analysis/shelters/plans",
            "raw_path": b"/analysis/shelters/plans",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-api-key", secret.encode()),
                (b"host", b"testserver"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)

    try:
        with TestClient(app) as client:  # runs the lifespan (engines on app.state)
            assert client.portal is not None
            client.portal.call(drive)  # on the client's own event loop thread
        assert seen == {"status": 201, "visible": 1}
    finally:
        with cambridge_engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter_plan WHERE name = 'commit-order'"))
            conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})
