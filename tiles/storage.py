"""Publish a built tile layer to any fsspec target (``s3://...``, ``gs://...``, ``file://...``).

Object stores have no atomic folder swap, so the order of writes does the job: content files
first (their URLs carry the build tag, so a cached old tileset never mixes with them), the entry
document (``tileset.json`` / ``layer.json``) last, then content the new entry no longer
references is deleted. A reader sees the old layer until the entry document is replaced, then
the new one; only a reader holding the old entry while the stale files are deleted can miss one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cim.errors import TilingError

ENTRY_DOCUMENTS = ("tileset.json", "layer.json")


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise TilingError(f"cannot write tiles to {url}: {exc}") from exc
    return fs, str(root).rstrip("/")


def publish(layer_folder: Path, url: str) -> int:
    """Copy the layer in ``layer_folder`` to ``url``; returns the number of files written."""
    fs, root = _filesystem(url)
    files = sorted(p for p in layer_folder.rglob("*") if p.is_file())
    relative = [p.relative_to(layer_folder).as_posix() for p in files]
    entries = [r for r in relative if r in ENTRY_DOCUMENTS]
    try:
        existing = set(_listing(fs, root))
        for path, rel in zip(files, relative, strict=True):
            if rel not in ENTRY_DOCUMENTS:
                _put(fs, path, f"{root}/{rel}")
        for rel in entries:
            _put(fs, layer_folder / rel, f"{root}/{rel}")
        for stale in sorted(existing - set(relative)):
            fs.rm_file(f"{root}/{stale}")
    except OSError as exc:
        raise TilingError(f"writing tiles to {url} failed: {exc}") from exc
    return len(files)


def _put(fs: Any, source: Path, target: str) -> None:
    parent = target.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    fs.put_file(str(source), target)


def _listing(fs: Any, root: str) -> list[str]:
    """Files under ``root`` relative to it (empty when it does not exist yet)."""
    if not fs.exists(root):
        return []
    out = []
    for path in fs.find(root):
        rel = str(path)[len(root) :].lstrip("/")
        if rel and not rel.split("/")[-1].startswith("."):
            out.append(rel)
    return out
