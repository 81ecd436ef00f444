"""Bench: ``cim serve`` under load - 64 connections for 60 s on a mix of real requests.

A generated city (bench/generator.py): ``--segments`` pipe segments (all four utilities, meshed
water grid with valves, written by bench/cities.py's COPY loader) and ``--buildings``
buildings (footprint rows plus five wall/roof elements each, tiled as the buildings 3D Tiles
layer). ``cim serve --workers W`` runs on it and an asyncio/aiohttp client on loopback keeps
``--connections`` requests in flight for ``--seconds`` on this mix:
50 % OGC items (random 300 m bbox, limit 100), 30 % 3D Tiles content (random tile of the
buildings layer), 10 % cross-sections (random 60 m line across a street), 10 % burst isolation
(random water segment). Prints req/s, p50/p95/p99 per endpoint and the errors.
``--fault`` also stops the database for 5 s in the middle: requests then must be 503 with
Retry-After (counted apart), anything else is an error, and the time to the first 200 after
the restart is printed. Goal: 0 errors, p99 of items <= 100 ms.
Usage: ``python bench/load.py [--segments 1000000] [--buildings 10000] [--seconds 60]
[--connections 64] [--workers 4] [--fault]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_city import Requests, load
from cim.db.embedded import EmbeddedCluster

CIM = str(Path(sys.executable).with_name("cim"))
MIX = (("items", 50), ("tiles", 30), ("section", 10), ("isolation", 10))
GOAL_ITEMS_P99_MS = 250.0
GOAL_TILES_P99_MS = 100.0
"""Issue 16: under the mixed load, items p99 <= 250 ms and static tile files p99 <= 100 ms."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


async def warm_up(base: str, requests: Requests, workers: int) -> float:
    """Let every worker build its in-memory network graph (isolation) before measuring.

    The graph is cached per process and per dataset version; a real service pays this once
    after a restart or an import, so it is not part of the steady-state figures. The kernel
    spreads connections over the workers and a worker runs one heavy analysis at a time
    (others wait 2 s, then 503), so rounds of requests go out until one round is all quick
    200s: by then every worker has its graph.
    """
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(base, timeout=timeout) as client:

        async def call() -> tuple[int | str, float]:
            method, url, body = requests.make("isolation")
            began = time.perf_counter()
            try:
                async with client.request(method, url, json=body) as response:
                    await response.read()
                    return response.status, time.perf_counter() - began
            except aiohttp.ClientError as exc:
                return type(exc).__name__, time.perf_counter() - began

        for _ in range(20):
            answers = await asyncio.gather(*(call() for _ in range(2 * workers)))
            if all(status == 200 and took < 3.0 for status, took in answers):
                break
            await asyncio.sleep(1.0)
        else:
            print(f"warm-up: the last round still had slow or failed answers: {answers}")
    return time.perf_counter() - started


def refused_by_bulkhead(headers: Any, body: bytes) -> bool:
    """A heavy analysis refused at once by the API's bulkhead (503 Overloaded + Retry-After)."""
    return (
        "retry-after" in headers
        and headers.get("content-type") == "application/problem+json"
        and json.loads(body).get("title") == "Overloaded"
    )


async def drive(
    base: str, requests: Requests, seconds: float, connections: int, fault: Any = None
) -> dict[str, Any]:
    kinds = [k for k, w in MIX for _ in range(w)]
    latencies: dict[str, list[float]] = {k: [] for k, _ in MIX}
    errors: dict[str, int] = {}
    unavailable = overloaded = 0
    last_503 = 0.0
    # aiohttp, not httpx: with 64 connections httpx's pool is the bottleneck (a trivial ASGI app
    # behind it measured 412 req/s, p99 1 s; behind aiohttp 13,000 req/s, p99 7 ms).
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal unavailable, overloaded, last_503
            while time.monotonic() < deadline:
                kind = requests.rng.choice(kinds)
                method, url, body = requests.make(kind)
                started = time.perf_counter()
                try:
                    async with client.request(method, url, json=body) as response:
                        content = await response.read()
                        status, headers = response.status, response.headers
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if status == 200:
                    latencies[kind].append(elapsed)
                elif status == 503 and refused_by_bulkhead(headers, content):
                    overloaded += 1  # counted apart: an answer that says when to retry
                    await asyncio.sleep(0.05)
                elif status == 503 and fault is not None and headers.get("retry-after"):
                    unavailable += 1
                    last_503 = time.monotonic()
                    await asyncio.sleep(0.05)
                else:
                    key = f"{kind} {status}"
                    errors[key] = errors.get(key, 0) + 1

        tasks = [asyncio.create_task(worker()) for _ in range(connections)]
        if fault is not None:
            tasks.append(asyncio.create_task(fault()))
        await asyncio.gather(*tasks)
    total = sum(len(v) for v in latencies.values())
    out: dict[str, Any] = {
        "requests": total, "req_per_s": round(total / seconds, 1), "errors": errors,
        "unavailable_503": unavailable, "overloaded_503": overloaded,
    }  # fmt: skip
    for kind, values in latencies.items():
        out[kind] = {
            "count": len(values),
            **{
                f"p{int(q * 100)}_ms": None if (v := percentile(values, q)) is None else round(v, 1)
                for q in (0.50, 0.95, 0.99)
            },
        }
    out["_last_503"] = last_503
    return out


def start_server(
    url: str, data_dir: Path, workers: int, settings: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update(CIM_DATABASE_URL=url, CIM_DATA_DIR=str(data_dir), CIM_LOG_LEVEL="info")
    env.update(setting.split("=", 1) for setting in settings)
    env["CIM_ANONYMOUS_RATE_PER_MINUTE"] = "0"  # one address stands for a whole city of clients
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [CIM, "serve", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("cim serve did not come up in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--buildings", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4, help="uvicorn worker processes")
    parser.add_argument("--fault", action="store_true", help="stop the database for 5 s")
    parser.add_argument(
        "--set", action="append", default=[], metavar="CIM_X=V", help="a server setting"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cim-bench-load-", dir="/tmp"))
    folder.chmod(0o755)
    cluster = EmbeddedCluster(folder / "db")
    cluster.start()
    server = None
    worker_restarts = 0
    try:
        url = cluster.url()
        data_dir = folder / "data"
        requests, segments, buildings = load(url, data_dir, args.segments, args.buildings)
        server, base = start_server(url, data_dir, args.workers, args.set)
        figures, stopped_at = measure(base, requests, cluster, args)
    finally:
        if server is not None:
            worker_restarts = stop_server(server, folder / "data" / "serve.log")
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    sizes = {"segments": segments, "buildings": buildings}
    print("BENCH " + json.dumps(report(figures, stopped_at, worker_restarts, sizes, args)))


def measure(
    base: str, requests: Requests, cluster: EmbeddedCluster, args: argparse.Namespace
) -> tuple[dict[str, Any], list[float]]:
    """Warm the workers up, then drive the mix (stopping the database meanwhile if asked);
    the figures and when the database was back."""
    warm = asyncio.run(warm_up(base, requests, args.workers))
    print(f"warm-up (network graph in every worker): {warm:.1f} s", flush=True)
    asyncio.run(drive(base, requests, 3.0, args.connections))  # warm-up, not counted
    stopped_at: list[float] = []

    async def fault() -> None:
        await asyncio.sleep(args.seconds / 3)
        await asyncio.to_thread(cluster.stop)
        await asyncio.sleep(5)
        await asyncio.to_thread(cluster.start)
        stopped_at.append(time.monotonic())

    figures = asyncio.run(
        drive(base, requests, args.seconds, args.connections, fault if args.fault else None)
    )
    return figures, stopped_at


def stop_server(server: subprocess.Popen[bytes], log: Path) -> int:
    """Stop ``cim serve``; print what its log says; the number of worker restarts."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    lines = log.read_text(errors="replace").splitlines()
    restarts = [ln for ln in lines if "died" in ln or "unresponsive" in ln or "kill" in ln]
    problems = [ln for ln in lines if "ERROR" in ln or "WARNING" in ln or "Error" in ln]
    print(f"server log: {len(lines)} lines, {len(restarts)} worker restarts "
          f"{restarts[:3]}, {len(problems)} warnings/errors {problems[:5]}")  # fmt: skip
    return len(restarts)


def report(
    figures: dict[str, Any],
    stopped_at: list[float],
    worker_restarts: int,
    sizes: dict[str, int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Print the figures per endpoint; the BENCH result with its goal and verdict."""
    last_503 = figures.pop("_last_503")
    print(f"\n{figures['requests']:,} requests in {args.seconds:.0f} s = "
          f"{figures['req_per_s']} req/s, {args.connections} connections, "
          f"{args.workers} workers")  # fmt: skip
    print(f"{'endpoint':>10} {'count':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, _ in MIX:
        f = figures[kind]
        print(f"{kind:>10} {f['count']:>8} {f['p50_ms']:>8} {f['p95_ms']:>8} {f['p99_ms']:>8}")
    error_count = sum(figures["errors"].values())
    print(f"errors: {error_count} {figures['errors'] or ''}; heavy analyses refused "
          f"(503 Overloaded + Retry-After, not errors): {figures['overloaded_503']}")  # fmt: skip
    result: dict[str, Any] = {
        "bench": "load_fault" if args.fault else "load",
        **sizes, "seconds": args.seconds,
        "connections": args.connections, "workers": args.workers,
        "req_per_s": figures["req_per_s"], "errors": error_count,
        "worker_restarts": worker_restarts, "overloaded_503": figures["overloaded_503"],
        **{f"{k}_p99_ms": figures[k]["p99_ms"] for k, _ in MIX},
        "items_p50_ms": figures["items"]["p50_ms"],
    }  # fmt: skip
    items_ok = figures["items"]["p99_ms"] <= GOAL_ITEMS_P99_MS
    tiles_ok = figures["tiles"]["p99_ms"] <= GOAL_TILES_P99_MS
    if args.fault:
        # How long the API still answered 503 after the database accepted connections again.
        recovery = round(max(0.0, last_503 - stopped_at[0]), 2) if stopped_at else None
        print(f"database down 5 s: {figures['unavailable_503']} answers 503 + Retry-After; "
              f"last 503 {recovery} s after the database was back")  # fmt: skip
        result.update(unavailable_503=figures["unavailable_503"], recovery_s=recovery)
        result["goal"] = "0 errors (only 503 + Retry-After while down), recovery <= 2 s"
        result["pass"] = error_count == 0 and recovery is not None and recovery <= 2.0
    else:
        result["goal"] = (
            f"0 errors, items p99 <= {GOAL_ITEMS_P99_MS:.0f} ms, "
            f"tiles p99 <= {GOAL_TILES_P99_MS:.0f} ms"
        )
        result["pass"] = error_count == 0 and items_ok and tiles_ok
    return result


if __name__ == "__main__":
    main()
