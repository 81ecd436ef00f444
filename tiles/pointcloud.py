"""The ``pointcloud`` 3D Tiles layer: every point cloud dataset tiled by py3dtiles.

Why py3dtiles in a subprocess: it is the point cloud tiler our users named, but 12.1.1 pins
``numpy<2.4`` and ``mapbox_earcut==1.0.3``, which clash with cim's environment. So it lives in
its own venv (``.venv-py3dtiles/``, made by ``scripts/install_py3dtiles``) and runs as a
converter process; nothing of it is imported here. The process runs :data:`RUNNER` (py3dtiles'
``convert()`` rather than its CLI) because the CLI takes the input CRS as an EPSG number only,
and cim must hand it a CRS that says what the heights are: the file's horizontal CRS made 3D
with its heights, in the unit the importer found (feet for a state plane file), taken as
ellipsoidal heights - as terrain, buildings and pipes are placed, so the layers line up.

Output: ``tiles/pointcloud/<dataset_id>/`` holds py3dtiles' tileset (3D Tiles 1.0 ``.pnts``
in ECEF; RGB, and the ASPRS class as the batch table property ``classification``), content
URIs tagged ``?v=<sha256>`` so they can be cached as immutable; ``tiles/pointcloud/tileset.json``
refers to each dataset's tileset as external content. The layer is written in a temporary folder and
swapped in atomically (:mod:`tiles.atomic`); a dataset whose version is unchanged since the last
build is hard-linked from it rather than converted again; the ``tileset`` row
(:mod:`tiles.record`) makes an unchanged layer a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS
from sqlalchemy import Engine, text

from cim.crs import parse_crs
from cim.errors import TilingError
from tiles.atomic import atomic_layer
from tiles.record import BuildResult, dataset_versions, record, recorded

LAYER = "pointcloud"
DATASET_KINDS: tuple[str, ...] = ("pointcloud",)
SPEC = "1.0"
PY3DTILES_VERSION = "12.1.1"
"""Pinned in ``scripts/install_py3dtiles``."""
TILER_VERSION = f"{PY3DTILES_VERSION}+cim2"
"""Recorded with the layer: a new py3dtiles or a change of how cim runs it rebuilds the tiles."""
VENV = Path(__file__).resolve().parent.parent / ".venv-py3dtiles"
SECONDS_PER_POINT = 1 / 20_000
"""Timeout pace: py3dtiles does ~100,000 points/s here; 20x slower than that is a hang."""

RUNNER = """
import json, sys
import laspy
import numpy as np
# lazrs' parallel LAZ decompressor starts a thread pool in this process when py3dtiles samples
# the colours; py3dtiles' forked reader processes then deadlock in it. The serial one is safe.
laspy.LazBackend.detect_available = classmethod(lambda cls: (laspy.LazBackend.Lazrs,))
from pyproj import CRS
from py3dtiles.convert import convert
from py3dtiles.reader import las_reader
from py3dtiles.typing import ExtraFieldsDescription
from laspy.point.dims import SubFieldView
# py3dtiles lists a file's fields from its raw dtype, where point formats 0-5 have no
# 'classification' (it is packed in 'raw_classification'), but reads them by laspy's dimension
# names, where it is (a bit-field view without astype): announce it and give the view astype,
# so the class (flags masked off) reaches the batch table.
SubFieldView.astype = lambda self, dtype, *args, **kwargs: np.asarray(self).astype(dtype)
CLASS = ExtraFieldsDescription(name="classification", dtype=np.dtype("u1"))
metadata = las_reader.get_metadata
def get_metadata(filename, color_scale=None):
    found = metadata(filename, color_scale)
    if all(field.name != "classification" for field in found["extra_fields"]):
        found["extra_fields"].append(CLASS)
    return found
las_reader.get_metadata = get_metadata
job = json.load(sys.stdin)
convert(
    job["files"], outfolder=job["out"], overwrite=True, jobs=job["jobs"],
    crs_in=CRS.from_json(job["crs_in"]), crs_out=CRS.from_epsg(4978), force_crs_in=True,
    pyproj_always_xy=True, extra_fields=["classification"], color_scale=job["color_scale"],
)
"""
"""Run by the py3dtiles venv's python with the job as JSON on stdin."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Cloud:
    """A ready point cloud dataset, as the tiler needs it."""

    id: int
    name: str
    files: list[Path]
    crs: CRS
    height_factor: float
    color_scale: float | None
    points: int


def py3dtiles_python(venv: Path = VENV) -> Path:
    """The python of the py3dtiles venv; TilingError saying how to install it if missing."""
    python = venv / "bin" / "python"
    if not (python.exists() and (venv / "bin" / "py3dtiles").exists()):
        raise TilingError(
            f"py3dtiles is not installed ({venv}); run scripts/install_py3dtiles to build the "
            "pointcloud layer"
        )
    return python


def tiler_crs(crs: CRS, height_factor: float) -> CRS:
    """The horizontal part of ``crs`` made 3D, heights in ``height_factor`` metres a unit.

    Examples
    --------
    >>> tiler_crs(CRS.from_epsg(2994), 0.3048).axis_info[2].unit_name
    'unit'
    """
    horizontal = crs
    if crs.is_compound:
        horizontal = next(s for s in crs.sub_crs_list if s.is_projected or s.is_geographic)
    three_d = horizontal.to_3d()
    if height_factor == 1.0:
        return three_d
    document = three_d.to_json_dict()
    unit = {"type": "LinearUnit", "name": "unit", "conversion_factor": height_factor}
    document["coordinate_system"]["axis"][2]["unit"] = unit
    return CRS.from_json_dict(document)


def load_clouds(engine: Engine) -> list[Cloud]:
    """Every ready point cloud dataset, by id."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, name, source_crs, options, counts FROM dataset "
                "WHERE kind = 'pointcloud' AND status = 'ready' ORDER BY id"
            )
        ).all()
    clouds = []
    for row in rows:
        options = dict(row.options or {})
        crs = parse_crs(options.get("crs_wkt") or row.source_crs)
        clouds.append(
            Cloud(
                id=int(row.id),
                name=str(row.name),
                files=[Path(p) for p in options.get("files", [])],
                crs=crs,
                height_factor=float(options.get("height_factor") or 1.0),
                color_scale=options.get("color_scale"),
                points=int((row.counts or {}).get("points", 0)),
            )
        )
    return clouds


def convert(python: Path, cloud: Cloud, out: Path, jobs: int) -> None:
    """Run py3dtiles on ``cloud``'s stored files into ``out`` (which must not exist yet)."""
    for path in cloud.files:
        if not path.is_file():
            raise TilingError(
                f"dataset {cloud.id}: its stored file {path} is missing; import it again "
                "with --replace"
            )
    job = {
        "files": [str(p) for p in cloud.files],
        "out": str(out),
        "jobs": jobs,
        "crs_in": tiler_crs(cloud.crs, cloud.height_factor).to_json(),
        "color_scale": cloud.color_scale,
    }
    # A session of its own: on a timeout the whole group (py3dtiles' workers too) is killed.
    process = subprocess.Popen(
        [str(python), "-c", RUNNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    timeout = 300 + cloud.points * SECONDS_PER_POINT
    try:
        _, stderr = process.communicate(json.dumps(job), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TilingError(
            f"py3dtiles did not finish dataset {cloud.id} in {timeout:.0f} s"
        ) from None
    if process.returncode != 0 or not (out / "tileset.json").is_file():
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        raise TilingError(
            f"py3dtiles failed on dataset {cloud.id} ({cloud.name}): "
            f"{lines[-1] if lines else f'exit code {process.returncode}'}"
        )
    shutil.rmtree(out / "tmp", ignore_errors=True)  # py3dtiles' scratch folder


def tag_contents(folder: Path) -> None:
    """Add ``?v=<sha256 prefix>`` to every non-JSON content URI of the tilesets in ``folder``:
    a rebuild gives new URLs, so browsers may keep content as immutable."""
    for path in sorted(folder.rglob("*.json")):  # the root and split-off parts
        document = json.loads(path.read_text())
        for tile in walk(document["root"]):
            content = tile.get("content")
            if content is None or content["uri"].endswith(".json"):
                continue
            file = path.parent / content["uri"]
            digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
            content["uri"] = f"{content['uri']}?v={digest}"
        path.write_text(json.dumps(document, separators=(",", ":")))


def walk(tile: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``tile`` and its descendants, depth first."""
    yield tile
    for child in tile.get("children", []):
        yield from walk(child)


def pnts_points(path: Path) -> int:
    """``POINTS_LENGTH`` of a .pnts file (from its feature table JSON)."""
    with path.open("rb") as file:
        header = file.read(28)
        if len(header) < 28 or header[:4] != b"pnts":
            raise TilingError(f"{path}: not a .pnts tile")
        table_length = struct.unpack_from("<I", header, 12)[0]
        return int(json.loads(file.read(table_length))["POINTS_LENGTH"])


def shown_points(tileset: Path, refine: str = "REPLACE") -> int:
    """Points shown when ``tileset`` is refined all the way: the content of tiles that are
    leaves or ADD-refined (a REPLACE tile's own points are a preview of its children)."""
    document = json.loads(tileset.read_text())
    return _shown(document["root"], tileset.parent, refine)


def _shown(tile: dict[str, Any], folder: Path, refine: str) -> int:
    refine = tile.get("refine", refine)
    children = tile.get("children", [])
    total = sum(_shown(child, folder, refine) for child in children)
    content = tile.get("content")
    if content is not None:
        file = folder / content["uri"].split("?", 1)[0]
        if file.suffix == ".json":
            total += shown_points(file, refine)
        elif refine == "ADD" or not children:
            total += pnts_points(file)
    return total


def ecef_box(tileset: dict[str, Any]) -> npt.NDArray[np.float64]:
    """The root box of a py3dtiles tileset moved by the root's transform into ECEF (12 values)."""
    root = tileset["root"]
    box = np.array(root["boundingVolume"]["box"], dtype=np.float64)
    matrix = np.array(root.get("transform", np.identity(4).ravel()), dtype=np.float64)
    matrix = matrix.reshape(4, 4).T  # 3D Tiles matrices are column-major
    centre = matrix[:3, :3] @ box[:3] + matrix[:3, 3]
    axes = [matrix[:3, :3] @ box[3 + 3 * k : 6 + 3 * k] for k in range(3)]
    return np.concatenate([centre, *axes])


def enclosing_box(boxes: list[npt.NDArray[np.float64]]) -> list[float]:
    """An axis-aligned ECEF box around oriented boxes (their 8 corners each)."""
    corners = []
    for box in boxes:
        centre, axes = box[:3], box[3:].reshape(3, 3)
        for signs in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3):
            corners.append(centre + signs @ axes)
    stacked = np.array(corners)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    centre = (low + high) / 2
    half = (high - low) / 2
    return [*centre, half[0], 0.0, 0.0, 0.0, half[1], 0.0, 0.0, 0.0, half[2]]


def root_tileset(folder: Path, clouds: list[Cloud]) -> dict[str, Any]:
    """The layer's tileset.json: one child per dataset, its tileset as external content."""
    children: list[dict[str, Any]] = []
    boxes = []
    errors = []
    for cloud in clouds:
        document = json.loads((folder / str(cloud.id) / "tileset.json").read_text())
        box = ecef_box(document)
        boxes.append(box)
        errors.append(float(document["geometricError"]))
        children.append(
            {
                "boundingVolume": {"box": [float(v) for v in box]},
                "geometricError": errors[-1],
                "content": {"uri": f"{cloud.id}/tileset.json"},
                "extras": {"dataset_id": cloud.id, "name": cloud.name, "points": cloud.points},
            }
        )
    error = max(errors)
    return {
        "asset": {"version": SPEC, "generator": f"cim + py3dtiles {PY3DTILES_VERSION}"},
        "geometricError": error,
        "root": {
            "boundingVolume": {"box": enclosing_box(boxes)},
            "geometricError": error,
            "refine": "ADD",
            "children": children,
        },
    }


def build_pointcloud_layer(
    engine: Engine,
    tiles_dir: Path,
    *,
    force: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    venv: Path = VENV,
) -> BuildResult:
    """Build ``tiles_dir/pointcloud`` unless its datasets are unchanged since last time."""
    target = Path(tiles_dir) / LAYER
    versions = dataset_versions(engine, DATASET_KINDS) | {"py3dtiles": TILER_VERSION}
    result = BuildResult(LAYER, "up-to-date", SPEC, str(target), dataset_versions=versions)
    last = recorded(engine, LAYER)
    if not force and last == (SPEC, versions) and (target / "tileset.json").exists():
        return result
    started = time.perf_counter()
    clouds = load_clouds(engine)
    if not clouds:
        result.status = "empty"
        shutil.rmtree(target, ignore_errors=True)  # its datasets are gone from the database
        record(engine, result)
        return result
    python = py3dtiles_python(venv)
    previous = {} if force or last is None or last[0] != SPEC else last[1]
    try:
        with atomic_layer(target) as folder:
            for done, cloud in enumerate(clouds, start=1):
                out = folder / str(cloud.id)
                old = target / str(cloud.id)
                key = str(cloud.id)
                reusable = previous.get(key) == versions[key] and (old / "tileset.json").is_file()
                if reusable and previous.get("py3dtiles") == TILER_VERSION:
                    shutil.copytree(old, out, copy_function=_link_or_copy)
                else:
                    convert(python, cloud, out, jobs or os.cpu_count() or 1)
                    tag_contents(out)
                _count(result, out)
                if progress is not None:
                    progress(done, len(clouds))
            tileset = root_tileset(folder, clouds)
            (folder / "tileset.json").write_text(json.dumps(tileset, indent=1))
            result.bytes += (folder / "tileset.json").stat().st_size
            for child in folder.rglob("*"):
                child.chmod(0o755 if child.is_dir() else 0o644)
    except OSError as exc:
        raise TilingError(f"building the pointcloud tiles failed: {exc}") from exc
    result.status = "built"
    result.seconds = round(time.perf_counter() - started, 3)
    record(engine, result)
    return result


def _link_or_copy(source: str, destination: str) -> None:
    """Hard-link an unchanged tile into the new build (same file system), else copy it."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _count(result: BuildResult, out: Path) -> None:
    result.features += shown_points(out / "tileset.json")
    for file in out.rglob("*"):
        if file.is_file():
            result.bytes += file.stat().st_size
            size = file.stat().st_size
            if file.suffix == ".pnts":
                result.tiles += 1
                result.largest_tile_bytes = max(result.largest_tile_bytes, size)
