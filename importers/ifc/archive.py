"""Reading an IFC source safely: whole STEP files only, and .ifczip archives within bounds.

A STEP file must parse to its end: the ``END-ISO-10303-21;`` trailer is there (checked on the
file's tail, no full read) and ifcopenshell reports no error while parsing (a dangling
``#id`` reference, a syntax error). An ``.ifczip`` must hold exactly one ``.ifc`` member with a
plain relative name, no links and no nested archives; that member is streamed to disk in
chunks and refused as soon as it passes the expanded-size limit, whatever its header declares.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from cim.errors import ImportFailed

ARCHIVE_SUFFIXES = frozenset({".ifczip", ".zip"})
NESTED_ARCHIVE_SUFFIXES = frozenset(
    {".zip", ".ifczip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".zst"}
)
TRAILER = b"END-ISO-10303-21;"
TAIL_BYTES = 64 * 1024
"""How much of a file's end is read to find the trailer behind whitespace and comments."""
CHUNK_BYTES = 1024 * 1024
_TRAILING_COMMENT = re.compile(rb"/\*.*?\*/\s*\Z", re.DOTALL)


def step_file_complete(path: Path) -> bool:
    """True when the file ends with ``END-ISO-10303-21;`` (then only whitespace or comments).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "a.ifc"
    ...     _ = path.write_bytes(b"DATA;\\nENDSEC;\\nEND-ISO-10303-21;\\n/* end */\\n")
    ...     step_file_complete(path)
    True
    """
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read().rstrip()
    while tail.endswith(b"*/"):
        comment = _TRAILING_COMMENT.search(tail)
        if comment is None:
            return False
        tail = tail[: comment.start()].rstrip()
    return tail.endswith(TRAILER)


def open_step(path: Path, shown_name: str) -> Any:
    """Parse a STEP file with ifcopenshell; ImportFailed if it is cut short or has errors."""
    import ifcopenshell

    if not step_file_complete(path):
        raise ImportFailed(
            f"{shown_name}: the file does not end with END-ISO-10303-21; (truncated?); "
            "nothing was imported"
        )
    logger = _parse_logger()
    try:
        ifc = ifcopenshell.open(str(path), **({"logger": logger} if logger is not None else {}))
    except Exception as exc:  # ifcopenshell raises bare RuntimeError/IOError subclasses
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportFailed(f"{shown_name}: ifcopenshell cannot open it: {reason}") from None
    errors = _parse_errors(logger)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ImportFailed(
            f"{shown_name}: the file does not parse cleanly: {errors[0]}{more}; "
            "nothing was imported"
        )
    return ifc


def _parse_logger() -> Any:
    """A logger of its own for one parse (messages kept in memory), where ifcopenshell has it."""
    from ifcopenshell import ifcopenshell_wrapper

    logger_class = getattr(ifcopenshell_wrapper, "logger", None)
    if logger_class is None or not hasattr(logger_class, "log_messages"):
        return None
    logger = logger_class()
    logger.output_format(logger_class.FMT_INMEMORY)
    return logger


def _parse_errors(logger: Any) -> list[str]:
    if logger is None:
        return []
    error = type(logger).LOG_ERROR
    return [str(m.message) for m in logger.log_messages() if m.severity >= error]


def extract_ifc_member(archive: Path, into: Path, max_bytes: int) -> Path:
    """Stream the one ``.ifc`` member of ``archive`` into ``into``; its path.

    ImportFailed when the archive is not a zip, holds no or several ``.ifc`` members, unsafe
    names, links or nested archives, or expands past ``max_bytes`` (declared or actual).
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            member = _the_ifc_member(archive.name, zipped.infolist())
            if member.file_size > max_bytes:
                raise _too_large(archive.name, max_bytes)
            target = into / "model.ifc"
            with zipped.open(member) as source, open(target, "wb") as out:
                _copy_bounded(source, out, archive.name, max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ImportFailed(f"{archive.name}: not a readable zip archive: {exc}") from None
    except RuntimeError as exc:  # zipfile: encrypted member
        raise ImportFailed(f"{archive.name}: cannot read the archive: {exc}") from None
    return target


def _the_ifc_member(name: str, members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    ifc_members = []
    for member in members:
        _check_member(name, member)
        if not member.is_dir() and PurePosixPath(member.filename).suffix.lower() == ".ifc":
            ifc_members.append(member)
    if not ifc_members:
        raise ImportFailed(f"{name}: no .ifc member in the archive")
    if len(ifc_members) > 1:
        raise ImportFailed(f"{name}: {len(ifc_members)} .ifc members in the archive; expected one")
    return ifc_members[0]


def _check_member(name: str, member: zipfile.ZipInfo) -> None:
    filename = member.filename
    parts = PurePosixPath(filename.replace("\\", "/")).parts
    if (
        not filename
        or "\x00" in filename
        or filename.startswith(("/", "\\"))
        or (len(filename) > 1 and filename[1] == ":")
        or ".." in parts
    ):
        raise ImportFailed(f"{name}: unsafe member name {filename!r} in the archive")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise ImportFailed(f"{name}: the archive holds a link ({filename!r}); refused")
    if member.flag_bits & 0x1:
        raise ImportFailed(f"{name}: encrypted member {filename!r}; refused")
    if not member.is_dir() and PurePosixPath(filename).suffix.lower() in NESTED_ARCHIVE_SUFFIXES:
        raise ImportFailed(f"{name}: nested archive {filename!r}; upload the .ifc or one .ifczip")


def _copy_bounded(source: Any, out: Any, name: str, max_bytes: int) -> None:
    written = 0
    while chunk := source.read(CHUNK_BYTES):
        written += len(chunk)
        if written > max_bytes:
            raise _too_large(name, max_bytes)
        out.write(chunk)


def _too_large(name: str, max_bytes: int) -> ImportFailed:
    return ImportFailed(
        f"{name}: the .ifc member is larger than {max_bytes} bytes expanded (the limit, "
        "CIM_IFCZIP_MAX_EXPANDED_BYTES); nothing was imported"
    )
