"""Tile builds that die or cannot write: the previous tileset stays whole and served.

SIGKILL with the new layer staged (a :mod:`cim.faults` pause point) and in the middle of writing
content; a disk that fills up (a tiny tmpfs) and a read-only tiles folder (tmpfs remounted
read-only). The old files are compared byte for byte, on disk and fetched through the API, and
the next build succeeds and sweeps up what the killed builds left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from cim.config import CimSettings
from tests.conftest import CIM, cli_env
from tests.tiles.checks import check_tileset


def _build(database_url: str, data_dir: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CIM, "tiles", "build", "--layer", "pipes", "--force", "--json"],
        env=cli_env(database_url, CIM_DATA_DIR=str(data_dir), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _build_ok(database_url: str, data_dir: Path) -> None:
    child = _build(database_url, data_dir)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert json.loads(out)[0]["status"] == "built"


def _snapshot(layer: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layer)): p.read_bytes() for p in layer.rglob("*") if p.is_file()}


def _leftovers(tiles: Path) -> list[str]:
    return sorted(p.name for p in tiles.glob(".pipes.*") if p.is_dir())


def _served(data_dir: Path, database_url: str) -> dict[str, bytes]:
    """Every file of the pipes layer fetched through the API, keyed like :func:`_snapshot`."""
    settings = CimSettings(database_url=database_url, data_dir=data_dir)
    layer = data_dir / "tiles" / "pipes"
    out = {}
    with TestClient(create_app(settings)) as client:
        for path in _snapshot(layer):
            response = client.get(f"/tiles/pipes/{path}")
            assert response.status_code == 200, path
            out[path] = response.content
    return out


@pytest.mark.slow
def test_killed_builds_leave_the_old_tileset_served(
    pipe_grid: int, database_url: str, tmp_path: Path
) -> None:
    layer = tmp_path / "tiles" / "pipes"
    _build_ok(database_url, tmp_path)
    old = _snapshot(layer)
    assert len(old) > 5

    # 1. Killed with the complete new layer staged beside the old one, just before the swap.
    child = _build(database_url, tmp_path, CIM_TEST_PAUSE_AT="tiles-swap")
    assert child.stderr is not None
    line = ""
    while "CIM_PAUSED" not in line:
        line = child.stderr.readline()
        assert line or child.poll() is None, "the build exited before pausing"
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    assert _snapshot(layer) == old
    assert len(_leftovers(tmp_path / "tiles")) == 1  # the staged folder of the dead build

    # 2. Killed while content files are being written.
    child = _build(database_url, tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        staged = [p for p in (tmp_path / "tiles").glob(".pipes.tmp-*/content/*") if p.is_file()]
        if staged:
            break
        time.sleep(0.005)
    assert child.poll() is None, "the build finished before it could be killed mid-write"
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    assert _snapshot(layer) == old
    assert _served(tmp_path, database_url) == old

    # 3. The next build succeeds, replaces the layer and removes the dead builds' folders.
    _build_ok(database_url, tmp_path)
    assert _leftovers(tmp_path / "tiles") == []
    assert _snapshot(layer) == old  # same data, same bytes: the build tag hashes the content
    check_tileset(layer)


@contextmanager
def _tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (needs root; the test skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    size = f"size={max(size_bytes // 1024, 64)}k"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _disk_usage(folder: Path) -> int:
    """Bytes a folder takes on a 4 KiB-page file system (tmpfs), directories included."""
    pages = 0
    for p in folder.rglob("*"):
        pages += 1 if p.is_dir() else max(1, -(-p.stat().st_size // 4096))
    return pages * 4096


def _refused(database_url: str, data_dir: Path, reason: str) -> None:
    child = _build(database_url, data_dir)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 5, err  # TilingError
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cim: error: building the pipes tiles failed")
    assert reason in lines[0] and "Traceback" not in err
    assert out == ""


@pytest.mark.slow
def test_disk_full_is_a_clear_error_and_keeps_the_old_tiles(
    pipe_grid: int, database_url: str, tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    _build_ok(database_url, probe)
    needed = _disk_usage(probe / "tiles")
    data_dir = tmp_path / "data"
    # Room for the old layer and about half of a second one: the rebuild runs out of space.
    with _tmpfs(data_dir / "tiles", needed + needed // 2):
        _build_ok(database_url, data_dir)
        old = _snapshot(data_dir / "tiles" / "pipes")
        _refused(database_url, data_dir, "No space left on device")
        assert _snapshot(data_dir / "tiles" / "pipes") == old
        assert _leftovers(data_dir / "tiles") == []  # the half-written build was removed


@pytest.mark.slow
def test_read_only_tiles_folder_is_a_clear_error(
    pipe_grid: int, database_url: str, tmp_path: Path
) -> None:
    tiles = tmp_path / "tiles"
    with _tmpfs(tiles, 64 << 20):
        _build_ok(database_url, tmp_path)
        old = _snapshot(tiles / "pipes")
        subprocess.run(["mount", "-o", "remount,ro", str(tiles)], check=True)
        _refused(database_url, tmp_path, "Read-only file system")
        assert _snapshot(tiles / "pipes") == old
        assert _served(tmp_path, database_url) == old
