"""Write a tile layer into a temporary sibling folder and swap it into place atomically.

Why: the API serves ``CIM_DATA_DIR/tiles/<layer>/`` while a new build is written. A reader must
see either the complete old layer or the complete new one, never a mix, and a failed build must
leave the old layer untouched. Every tiler (terrain, 3D Tiles) writes through
:func:`atomic_layer`.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_layer(root / "terrain") as folder:
...     _ = (folder / "layer.json").write_text("{}")
>>> sorted(p.name for p in root.iterdir())
['.terrain.lock', 'terrain']
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cim.errors import TilingError
from cim.faults import pause_point

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one syscall (Linux ``renameat2``); False where that is unsupported."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def swap_into_place(staged: Path, target: Path, *, remove_old_later: bool = False) -> None:
    """Make the complete folder ``staged`` become ``target``; the old ``target`` is deleted.

    Uses an atomic exchange where the kernel and file system support it. Elsewhere the old
    folder is renamed aside first, so readers may see no folder for an instant but never a
    half-written one. ``remove_old_later``: the old folder (thousands of files for a city
    layer) is deleted by a background thread once the new one is in place; the process waits
    for it before it exits, and what a killed process leaves is removed by the next build.
    """
    if not target.exists():
        staged.rename(target)
        return
    remove = _remove_later if remove_old_later else _remove_now
    if _exchange(staged, target):
        remove(staged)  # ``staged`` now holds the old layer
        return
    aside = target.with_name(f".{target.name}.old-{os.getpid()}-{next(_aside_numbers)}")
    target.rename(aside)
    try:
        staged.rename(target)
    except OSError:
        aside.rename(target)  # put the old layer back before reporting
        raise
    remove(aside)


_aside_numbers = itertools.count()


def _remove_now(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _remove_later(folder: Path) -> None:
    """Delete ``folder`` on a (non-daemon) thread: the interpreter waits for it at exit."""
    threading.Thread(target=_remove_now, args=(folder,), name=f"remove {folder.name}").start()


def _remove_leftovers(target: Path) -> None:
    """Delete staging and set-aside folders of builds that were killed (SIGKILL, power loss).

    Only called with the layer's lock held, so no living build owns them.
    """
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_layer(target: Path, *, remove_old_later: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target``.

    The folder is a sibling (same file system, so the final rename is atomic). If the body
    raises, the temporary folder is removed and ``target`` is left exactly as it was. An
    exclusive lock file (``.<name>.lock``) serialises two builds of the same layer; whoever holds
    it first deletes what killed builds left behind.
    Permissions are set to 0755 so a server running as another user can read the tiles.
    ``remove_old_later``: see :func:`swap_into_place`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f".{target.name}.lock")
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TilingError(
                f"another build of {target.name!r} is running (lock {lock_path})"
            ) from None
        _remove_leftovers(target)
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            staged.chmod(0o755)
            yield staged
            pause_point("tiles-swap")  # fault tests kill here: new layer staged, old in place
            swap_into_place(staged, target, remove_old_later=remove_old_later)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
