"""Scale-out options of ``cim tiles build``: dask workers (``--dask``/``--workers``) and an
fsspec output (``--out s3://...``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cim.errors import InvalidInput


@contextmanager
def renderer_scope(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """None for a local build, else a dask renderer (cluster closed afterwards)."""
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise InvalidInput("--dask and --workers exclude each other")
    from tiles.distributed import dask_renderer  # dask only when asked for

    with dask_renderer(scheduler, workers) as renderer:
        yield renderer


@dataclass
class Output:
    """Where layers are built (``tiles_dir``) and, with ``--out``, where they are published."""

    tiles_dir: Path
    url: str | None = None

    def publish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Copy a built layer to ``url`` and point its summary there (a no-op without --out)."""
        if self.url is None or result.get("status") != "built":
            return result
        from tiles.storage import publish

        folder = Path(result["path"])
        target = f"{self.url.rstrip('/')}/{folder.relative_to(self.tiles_dir).as_posix()}"
        result["files"] = publish(folder, target)
        result["path"] = target
        return result


@contextmanager
def output_scope(url: str | None, tiles_dir: Path) -> Iterator[Output]:
    """Build into ``tiles_dir``, or into a temporary folder published to ``url`` per layer."""
    if url is None:
        yield Output(tiles_dir)
        return
    if "://" not in url:
        raise InvalidInput(f"--out {url!r}: expected a URL such as s3://bucket/tiles or file:///p")
    staging = Path(tempfile.mkdtemp(prefix="cim-tiles-out-"))
    try:
        yield Output(staging, url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
