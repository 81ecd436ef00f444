"""``tiles.atomic``: a layer is replaced whole on success and left intact on failure."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cim.errors import TilingError
from tiles.atomic import atomic_layer


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_new_layer_replaces_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "terrain"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_layer(target) as staged:
        assert staged.parent == tmp_path and staged != target
        assert (target / "old.txt").exists()  # readers still see the old layer meanwhile
        (staged / "new.txt").write_text("new")
    assert _names(target) == ["new.txt"]
    assert _names(tmp_path) == ["terrain"]  # no temporary or old folder left


def test_failure_keeps_old_layer_and_removes_staging(tmp_path: Path) -> None:
    target = tmp_path / "terrain"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_layer(target) as staged:
        (staged / "half.txt").write_text("half")
        raise RuntimeError("tiler crashed")
    assert _names(target) == ["old.txt"]
    assert _names(tmp_path) == ["terrain"]


def test_first_build_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "tiles" / "terrain"
    with atomic_layer(target) as staged:
        (staged / "layer.json").write_text("{}")
    assert _names(target) == ["layer.json"]


def test_concurrent_build_of_same_layer_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "terrain"
    with (
        atomic_layer(target),
        pytest.raises(TilingError, match="another build"),
        atomic_layer(target),
    ):
        pass


def test_old_layer_removed_in_the_background(tmp_path: Path) -> None:
    """A city layer's old folder is deleted after the swap, by a thread the process waits for."""
    target = tmp_path / "pipes"
    target.mkdir()
    for number in range(200):
        (target / f"old{number}.glb").write_bytes(b"old")
    with atomic_layer(target, remove_old_later=True) as staged:
        (staged / "new.glb").write_text("new")
    assert _names(target) == ["new.glb"]  # the new layer is in place at once
    for thread in threading.enumerate():
        if thread.name.startswith("remove ."):
            assert not thread.daemon  # the interpreter waits for it at exit
            thread.join(timeout=30)
    assert _names(tmp_path) == ["pipes"]
