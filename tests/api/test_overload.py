"""Overload (issue 16): heavy analyses are bulkheaded (503 + Retry-After at once beyond a short
queue), anonymous callers are rate limited (429), and fast routes keep answering meanwhile."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi.testclient import TestClient

from api.bulkhead import HEAVY_ROUTES
from api.main import create_app
from api.routers import analysis_pipes
from cim.config import CimSettings

ISOLATION = {"segment_id": 999_999_999}


def make_client(database_url: str, tmp_path: Path, **settings: Any) -> TestClient:
    app = create_app(CimSettings(database_url=database_url, data_dir=tmp_path / "d", **settings))
    return TestClient(app)


@pytest.fixture
def held_isolation(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, ...]]:
    """The isolation service waits until ``release`` is set (``entered`` tells it started)."""
    entered, release = threading.Event(), threading.Event()
    original = analysis_pipes.pipes_isolation.isolate_burst

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(analysis_pipes.pipes_isolation, "isolate_burst", held)
    yield entered, release
    release.set()


def test_every_heavy_route_exists(database_url: str, tmp_path: Path) -> None:
    """The bulkhead names routes by template: each must be a real route of the app."""
    paths = make_client(database_url, tmp_path).app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert set(HEAVY_ROUTES) <= routes


def test_a_heavy_request_beyond_the_bulkhead_is_refused_at_once(
    database_url: str, tmp_path: Path, held_isolation: tuple[threading.Event, ...]
) -> None:
    """Concurrency 1, queue 0: while one isolation runs, a second answers 503 + Retry-After at
    once (problem+json) and fast routes still answer; the first one completes."""
    entered, release = held_isolation
    limits = {"heavy_concurrency": 1, "heavy_queue": 0}
    with make_client(database_url, tmp_path, **limits) as client, ThreadPoolExecutor(4) as pool:
        post: Callable[[], httpx.Response] = lambda: client.post(  # noqa: E731
            "/analysis/pipes/isolation", json=ISOLATION
        )
        first: Future[httpx.Response] = pool.submit(post)
        assert entered.wait(10), "the first isolation never started"
        started = time.monotonic()
        second = pool.submit(post).result(timeout=5)
        assert time.monotonic() - started < 2
        assert second.status_code == 503
        assert second.headers["content-type"] == "application/problem+json"
        assert int(second.headers["Retry-After"]) >= 1
        assert "CIM_HEAVY_CONCURRENCY" in second.json()["detail"]
        for fast in ("/health", "/conformance", "/collections"):
            assert pool.submit(client.get, fast).result(timeout=5).status_code == 200, fast
        release.set()
        assert first.result(timeout=10).status_code == 404  # no such segment: it did run
        # the slot is free again
        assert client.post("/analysis/pipes/isolation", json=ISOLATION).status_code == 404


def test_other_analyses_have_their_own_lane(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A section is not heavy, but other analyses are bounded too (CIM_ANALYSIS_CONCURRENCY):
    while one section runs, a second is refused at once, and a heavy analysis and items still
    answer (the lanes do not share slots)."""
    entered, release = threading.Event(), threading.Event()
    original = analysis_pipes.pipes_section.cross_section

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(analysis_pipes.pipes_section, "cross_section", held)
    line = {"type": "LineString", "coordinates": [[0, 0], [30, 0]]}
    limits = {"analysis_concurrency": 1, "analysis_queue": 0, "heavy_concurrency": 1}
    with make_client(database_url, tmp_path, **limits) as client, ThreadPoolExecutor(4) as pool:

        def post() -> httpx.Response:
            return client.post("/analysis/pipes/section", json={"line": line})

        first = pool.submit(post)
        assert entered.wait(10), "the first section never started"
        second = pool.submit(post).result(timeout=5)
        assert second.status_code == 503
        assert "CIM_ANALYSIS_CONCURRENCY" in second.json()["detail"]
        heavy = pool.submit(client.post, "/analysis/pipes/isolation", json=ISOLATION)
        assert heavy.result(timeout=10).status_code == 404
        items = pool.submit(client.get, "/collections/pipe_segments/items")
        assert items.result(timeout=10).status_code in (200, 404)
        release.set()
        assert first.result(timeout=10).status_code == 200


def test_a_queued_heavy_request_runs_when_a_slot_frees(
    database_url: str, tmp_path: Path, held_isolation: tuple[threading.Event, ...]
) -> None:
    """Queue 1: the second request waits (no 503) and runs once the first has finished; a
    third, with the queue full, is refused at once."""
    entered, release = held_isolation
    limits = {"heavy_concurrency": 1, "heavy_queue": 1, "heavy_queue_seconds": 20}
    with make_client(database_url, tmp_path, **limits) as client, ThreadPoolExecutor(4) as pool:

        def post() -> httpx.Response:
            return client.post("/analysis/pipes/isolation", json=ISOLATION)

        first = pool.submit(post)
        assert entered.wait(10)
        second = pool.submit(post)
        time.sleep(0.3)  # let the second take its place in the queue
        assert pool.submit(post).result(timeout=5).status_code == 503
        release.set()
        assert first.result(timeout=10).status_code == 404
        assert second.result(timeout=10).status_code == 404


def test_a_queued_heavy_request_gives_up_after_the_wait(
    database_url: str, tmp_path: Path, held_isolation: tuple[threading.Event, ...]
) -> None:
    """A waiter that gets no slot within CIM_HEAVY_QUEUE_SECONDS answers 503, not a timeout."""
    entered, release = held_isolation
    limits = {"heavy_concurrency": 1, "heavy_queue": 4, "heavy_queue_seconds": 0.5}
    with make_client(database_url, tmp_path, **limits) as client, ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/analysis/pipes/isolation", json=ISOLATION)
        assert entered.wait(10)
        started = time.monotonic()
        waited = client.post("/analysis/pipes/isolation", json=ISOLATION)
        assert waited.status_code == 503
        assert 0.4 < time.monotonic() - started < 3
        release.set()
        assert first.result(timeout=10).status_code == 404


def test_anonymous_callers_are_rate_limited_keyed_ones_are_not(
    database_url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    """CIM_ANONYMOUS_RATE_PER_MINUTE=3: the 4th anonymous request of a minute is a 429
    problem+json with Retry-After; a valid key is not limited; an invented key counts as
    anonymous."""
    with make_client(database_url, tmp_path, anonymous_rate_per_minute=3) as client:
        for _ in range(3):
            assert client.get("/conformance").status_code == 200
        refused = client.get("/conformance")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        assert "CIM_ANONYMOUS_RATE_PER_MINUTE" in refused.json()["detail"]
        reader = {"X-API-Key": keys["reader"]}
        for _ in range(10):
            assert client.get("/conformance", headers=reader).status_code == 200
        bearer = {"Authorization": f"Bearer {keys['analyst']}"}
        assert client.get("/conformance", headers=bearer).status_code == 200
        invented = {"X-API-Key": "not-a-key"}
        assert client.get("/conformance", headers=invented).status_code == 429


def test_the_rate_limit_is_off_at_zero(database_url: str, tmp_path: Path) -> None:
    with make_client(database_url, tmp_path, anonymous_rate_per_minute=0) as client:
        assert all(client.get("/conformance").status_code == 200 for _ in range(20))


def _tile_folder(tmp_path: Path) -> Path:
    """A data dir with a pipes layer (tileset.json, a content file) and a terrain layer."""
    data_dir = tmp_path / "d"
    pipes = data_dir / "tiles" / "pipes"
    (pipes / "content").mkdir(parents=True)
    (pipes / "tileset.json").write_text('{"asset": {"version": "1.1"}}')
    (pipes / "content" / "0.glb").write_bytes(b"glTF" + bytes(5000))
    terrain = data_dir / "tiles" / "terrain"
    (terrain / "0" / "0").mkdir(parents=True)
    (terrain / "layer.json").write_text('{"tilejson": "2.1.0"}')
    (terrain / "0" / "0" / "0.terrain").write_bytes(gzip.compress(bytes(300)))
    return data_dir


FILES = (
    "/tiles/pipes/tileset.json",
    "/tiles/pipes/content/0.glb?v=1",
    "/terrain/layer.json",
    "/terrain/0/0/0.terrain",
)


def _check_files(client: TestClient) -> None:
    """Every file answers 200 with its ETag, 304 on revalidation, and HEAD without a body."""
    for url in FILES:
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text)
        assert answer.content, url
        again = client.get(url, headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status_code == 304, url
        head = client.head(url)
        assert head.status_code == 200 and head.headers["ETag"] == answer.headers["ETag"], url
    glb = client.get("/tiles/pipes/content/0.glb?v=1")
    assert glb.content == b"glTF" + bytes(5000)
    assert glb.headers["content-type"] == "model/gltf-binary"
    assert glb.headers["cache-control"] == "public, max-age=31536000, immutable"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEAD = f"postgresql://cim@127.0.0.1:{_free_port()}/cim"
"""A database URL nobody answers: tile files must not need the database."""


def test_tile_files_are_served_while_every_worker_thread_is_busy(tmp_path: Path) -> None:
    """Tile and terrain files take no worker thread: with the thread pool held by slow work
    (analyses, requests waiting for a database connection), they still answer at once."""
    dead = CimSettings(database_url=DEAD, data_dir=_tile_folder(tmp_path))
    blocker = threading.Event()
    with TestClient(create_app(dead)) as client:
        portal = client.portal
        assert portal is not None
        limiter = portal.call(anyio.to_thread.current_default_thread_limiter)
        tokens = limiter.total_tokens
        limiter.total_tokens = 1
        portal.start_task_soon(anyio.to_thread.run_sync, blocker.wait)
        pool = ThreadPoolExecutor(1)
        try:
            pool.submit(_check_files, client).result(timeout=10)
        finally:
            blocker.set()  # before waiting for the pool: a request stuck on a thread ends
            limiter.total_tokens = tokens
            pool.shutdown()


def test_static_files_are_not_charged_to_the_rate_limit(tmp_path: Path) -> None:
    """A 3D viewer fetches tiles by the hundred: tile and terrain files answer past the
    anonymous budget (they cost no database and no thread); other routes are refused."""
    data_dir = _tile_folder(tmp_path)
    limited = CimSettings(data_dir=data_dir, anonymous_rate_per_minute=2, database_url=DEAD)
    with TestClient(create_app(limited)) as client:
        for _ in range(2):
            client.get("/conformance")
        assert client.get("/conformance").status_code == 429
        for _ in range(5):
            for url in FILES:
                assert client.get(url).status_code == 200, url
        assert client.get("/tiles/restricted/pipes/tileset.json").status_code == 429
