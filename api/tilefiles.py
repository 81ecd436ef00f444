"""Serve files of a built tile layer (3D Tiles, terrain) with validators and caching headers.

Generic over layers: the caller names the layer folder and the relative path. Answers carry a
strong ``ETag`` (size, mtime and inode of the file: a rebuild swaps in new files, so every
validator changes), ``Last-Modified`` and ``Cache-Control``; ``If-None-Match`` and
``If-Modified-Since`` give 304. Paths may not leave the layer folder or touch hidden entries
(lock files, in-progress builds).
"""

from __future__ import annotations

import gzip
import os
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from fastapi import Request
from starlette.responses import FileResponse, Response

from cim.config import CimSettings
from cim.errors import NotFound

CONTENT_TYPES = {
    ".json": "application/json",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".b3dm": "application/octet-stream",
    ".i3dm": "application/octet-stream",
    ".cmpt": "application/octet-stream",
    ".pnts": "application/octet-stream",
    ".subtree": "application/octet-stream",
    ".terrain": "application/vnd.quantized-mesh",
}
REVALIDATE = "no-cache"
"""Entry documents (tileset.json, layer.json) change on every rebuild: always revalidate."""
IMMUTABLE = "public, max-age=31536000, immutable"
"""Content referenced with a build tag in its URL (``?v=...``) never changes under that URL."""
SHORT = "public, max-age=60"
INLINE_MAX_BYTES = 16 << 20
"""Files up to 16 MiB (every tile in practice) are read on the event loop: from the page cache
that takes about a millisecond, less than a hop to a worker thread. Bigger ones stream from one."""


def tiles_dir(request: Request) -> Path:
    """``CIM_DATA_DIR/tiles``, from the app's settings without a dependency: FastAPI runs sync
    dependencies on a worker thread, which the static file routes must not wait for."""
    settings: CimSettings = request.app.state.settings
    return settings.tiles_dir


def layer_file(root: Path, relative: str) -> Path:
    """The file ``relative`` inside the layer folder ``root``; NotFound if absent or outside.

    A path with a control character (a NUL byte makes the OS calls raise) names no file.
    """
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in relative):
        raise NotFound("no such tile file (control characters in the path)")
    parts = Path(relative).parts
    if not parts or any(p in ("..", "") or p.startswith(".") for p in parts):
        raise NotFound(f"no tile file {relative!r}")
    try:
        path = (root / relative).resolve()
        base = root.resolve()
        found = base in path.parents and path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        found = False
    if not found:
        raise NotFound(f"no tile file {relative!r}")
    return path


def file_response(
    request: Request, path: Path, *, cache_control: str, content_type: str | None = None
) -> Response:
    """The file with ETag/Last-Modified/Cache-Control, or 304 when the client's copy is current.

    Files up to :data:`INLINE_MAX_BYTES` are read right here, on the event loop, so an ``async``
    route serves them without a worker thread (those may all be busy with analyses); the
    validators come from the open file, so they always describe the bytes sent.
    """
    with path.open("rb") as file:
        stat = os.fstat(file.fileno())
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}-{stat.st_ino:x}"'
        last_modified = formatdate(stat.st_mtime, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": cache_control}
        if _not_modified(request, etag, stat.st_mtime):
            return Response(status_code=304, headers=headers)
        media_type = content_type or CONTENT_TYPES.get(
            path.suffix.lower(), "application/octet-stream"
        )
        if stat.st_size > INLINE_MAX_BYTES:
            return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)
        body = b"" if request.method == "HEAD" else file.read()
    headers["Content-Length"] = str(len(body) if body else stat.st_size)
    return Response(body, media_type=media_type, headers=headers)


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return etag in tags or "*" in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(mtime) <= since
    return False


def accepts_gzip(request: Request) -> bool:
    """Whether the client's ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def gzipped_file_response(
    request: Request, path: Path, *, cache_control: str, content_type: str | None = None
) -> Response:
    """A file stored gzip-compressed (terrain tiles): sent as is with ``Content-Encoding:
    gzip`` to clients that accept it (every browser), decompressed for the others.

    The two representations carry different ETags (``-identity`` suffix), as HTTP requires.
    """
    response = file_response(request, path, cache_control=cache_control, content_type=content_type)
    response.headers["Vary"] = "Accept-Encoding"
    if accepts_gzip(request):
        if response.status_code != 304:
            response.headers["Content-Encoding"] = "gzip"
        return response
    identity_etag = response.headers["ETag"][:-1] + '-identity"'
    headers = {
        "ETag": identity_etag,
        "Last-Modified": response.headers["Last-Modified"],
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
    }
    tags = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
    if identity_etag in tags or (not tags - {""} and response.status_code == 304):
        return Response(status_code=304, headers=headers)
    media_type = content_type or CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return Response(gzip.decompress(path.read_bytes()), media_type=media_type, headers=headers)
