"""Bench: bbox items requests on one pipe table, served by ``cim serve`` and by tipg.

Both servers read the same ``pipe_segment`` table of one database (generated synthetic city),
each with one uvicorn worker on loopback. A Python asyncio/aiohttp client sends the same random
bbox requests (CRS84, limit 100) with a fixed concurrency for a fixed time, and the bench
prints req/s, p50 and p99 for each and the ratios. tipg is installed into its own venv
(``bench/.venv-tipg``) so its pins cannot disturb cim's. Goal: >= 1.5x tipg's req/s with a
p99 no worse. Usage: ``python bench/api.py [--segments N] [--seconds S] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_database  # noqa: E402
from bench.generator import city_for_segments  # noqa: E402
from cim.crs import transformer  # noqa: E402
from cim.db.copy import copy_rows, reserve_ids  # noqa: E402
from cim.services.datasets import DatasetSource  # noqa: E402
from importers.base import WriteOutcome, run_import  # noqa: E402

TIPG_VENV = ROOT / "bench" / ".venv-tipg"
SRID = 4547


def ensure_tipg() -> Path:
    python = TIPG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tipg", "uvicorn"], check=True)
    return python


def load(engine: object, segments: int) -> tuple[float, float, float, float]:
    """Write the generated network; returns its storage-CRS extent."""
    city = city_for_segments(segments)
    nodes, segs = city.pipes()
    segs = segs[:segments]

    def ewkb(geom: shapely.Geometry) -> str:
        return str(shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True))

    def write(session, dataset):  # type: ignore[no-untyped-def]
        ids = reserve_ids(session, table="pipe_node", count=len(nodes))
        by_code = dict(zip((n.code for n in nodes), ids, strict=True))
        copy_rows(
            session, table="pipe_node",
            columns=["id", "dataset_id", "code", "utility", "kind", "geom", "ground_z", "attrs"],
            rows=([i, dataset.id, n.code, n.utility, n.kind,
                   ewkb(shapely.Point(n.x, n.y, n.ground_z)), n.ground_z, "{}"]
                  for n, i in zip(nodes, ids, strict=True)),
        )  # fmt: skip
        count = copy_rows(
            session, table="pipe_segment",
            columns=["dataset_id", "code", "utility", "start_node_id", "end_node_id", "geom",
                     "diameter_mm", "material", "year", "attrs"],
            rows=([dataset.id, s.code, s.utility, by_code[s.start], by_code[s.end],
                   ewkb(shapely.LineString(s.coords)), s.diameter_mm, s.material, s.year, "{}"]
                  for s in segs),
        )  # fmt: skip
        return WriteOutcome(counts={"pipe_segment": count})

    source = DatasetSource(
        kind="pipes", name="bench", source_name="generated", source_sha256="b" * 64
    )
    run_import(engine, source=source, write=write)  # type: ignore[arg-type]
    xs = [c[0] for s in segs for c in s.coords]
    ys = [c[1] for s in segs for c in s.coords]
    return min(xs), min(ys), max(xs), max(ys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    command: list[str], env: dict[str, str], probe: str, log: Path
) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def drive(urls: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    """``concurrency`` clients in a closed loop; aiohttp, whose pool (unlike httpx's) is not the
    bottleneck at this rate (see ``bench/load.py``)."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                async with client.get(urls[i % len(urls)]) as response:
                    content = await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200 or not content.startswith(b"{"):
                    errors += 1
                i += concurrency

        began = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def bboxes(
    extent: tuple[float, float, float, float], count: int, size: float
) -> list[tuple[float, ...]]:
    rng = random.Random(7)
    to_lonlat = transformer(SRID, 4326)
    out = []
    for _ in range(count):
        x = rng.uniform(extent[0], extent[2] - size)
        y = rng.uniform(extent[1], extent[3] - size)
        out.append(tuple(to_lonlat.transform_bounds(x, y, x + size, y + size)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bbox-size", type=float, default=300.0, help="metres")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tipg_python = ensure_tipg()

    with bench_database(args.database_url, srid=SRID) as engine:
        extent = load(engine, args.segments)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE pipe_segment")
        url = engine.url.render_as_string(hide_password=False)
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        boxes = bboxes(extent, 200, args.bbox_size)
        folder = Path(tempfile.mkdtemp(prefix="cim-bench-api-"))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CIM_", "TIPG_"))}
        results = {}
        for name in ("cim", "tipg"):
            port = free_port()
            if name == "cim":
                env = {**base_env, "CIM_DATABASE_URL": url, "CIM_DATA_DIR": str(folder),
                       "CIM_LOG_LEVEL": "WARNING",
                       "CIM_ANONYMOUS_RATE_PER_MINUTE": "0",  # one address, many clients
                       # tipg has no access control: serve every class, as it does
                       "CIM_SENSITIVE_UTILITIES": ""}  # fmt: skip
                command = [str(ROOT / ".venv" / "bin" / "cim"), "serve", "--port", str(port)]
                collection = "pipe_segments"
            else:
                env = {**base_env, "DATABASE_URL": libpq, "TIPG_DB_SCHEMAS": '["public"]'}
                command = [str(tipg_python), "-m", "uvicorn", "tipg.main:app", "--port", str(port),
                           "--log-level", "warning"]  # fmt: skip
                collection = "public.pipe_segment"
            base = f"http://127.0.0.1:{port}"
            server = start(command, env, f"{base}/collections/{collection}", folder / f"{name}.log")
            try:
                items = f"{base}/collections/{collection}/items?limit=100&bbox="
                urls = [items + ",".join(f"{v:.7f}" for v in box) for box in boxes]
                sample = httpx.get(urls[0], timeout=30).json()
                asyncio.run(drive(urls, 2.0, args.concurrency))  # warm-up
                results[name] = asyncio.run(drive(urls, args.seconds, args.concurrency))
                results[name]["sample_matched"] = sample.get("numberMatched")
            finally:
                stop(server)
            print(name, json.dumps(results[name]), flush=True)

    ratio = results["cim"]["rps"] / results["tipg"]["rps"]
    p99_ratio = results["cim"]["p99_ms"] / results["tipg"]["p99_ms"]
    passed = ratio >= 1.5 and p99_ratio <= 1.0 and results["cim"]["errors"] == 0
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "api",
                "segments": args.segments,
                "cim_rps": results["cim"]["rps"],
                "tipg_rps": results["tipg"]["rps"],
                "rps_ratio": round(ratio, 2),
                "cim_p50_ms": results["cim"]["p50_ms"],
                "tipg_p50_ms": results["tipg"]["p50_ms"],
                "cim_p99_ms": results["cim"]["p99_ms"],
                "tipg_p99_ms": results["tipg"]["p99_ms"],
                "p99_ratio": round(p99_ratio, 2),
                "goal": ">= 1.5x tipg req/s, p99 no worse",
                "pass": passed,
            }
        )
    )


if __name__ == "__main__":
    main()
