"""``cim import pointcloud``: the laspy samples, counts, classes, extent, stored files, bad input.

The samples lie in Oregon (NAD83(HARN) / Oregon GIC Lambert (ft), EPSG:2994, heights in feet), so
they go into a database of their own stored in UTM 10N (EPSG:32610); the 4547 test database
(China) shows the out-of-area refusal. Oracles: laspy reads the files itself, pyproj transforms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import laspy
import numpy as np
import pytest
from pyproj import CRS, Transformer
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.errors import InvalidInput, UnsupportedCRS
from importers.pointcloud import import_pointcloud
from importers.registry import PointcloudOptions, importer
from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env, migrated_database

SIMPLE = SHARED_SAMPLES / "terrain" / "laspy_simple.las"
AUTZEN = SHARED_SAMPLES / "terrain" / "laspy_autzen_trim.laz"
SRID = 32610


@pytest.fixture(scope="module")
def pc_url(server_url: str) -> str:
    return migrated_database(server_url, "cim_test_pointcloud", srid=SRID)


@pytest.fixture(scope="module")
def pc_engine(pc_url: str) -> Iterator[Engine]:
    engine = make_engine(pc_url)
    yield engine
    engine.dispose()


def _pointclouds(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM dataset WHERE kind = 'pointcloud'")
            ).scalar_one()
        )


def _laspy_classes(path: Path) -> dict[int, int]:
    data = laspy.read(path)
    codes, counts = np.unique(np.asarray(data.classification), return_counts=True)
    return {int(c): int(n) for c, n in zip(codes, counts, strict=True)}


@pytest.mark.parametrize(
    ("path", "crs"), [(SIMPLE, "EPSG:2994"), (AUTZEN, None)], ids=["simple-las", "autzen-laz"]
)
def test_samples_import_with_laspys_counts(
    pc_engine: Engine, tmp_path: Path, path: Path, crs: str | None
) -> None:
    result = import_pointcloud(pc_engine, [path], data_dir=tmp_path, crs=crs, replace=True)
    dataset = result.dataset
    data = laspy.read(path)
    assert dataset.kind == "pointcloud" and dataset.status == "ready"
    assert dataset.counts["points"] == len(data.points) == data.header.point_count
    assert dataset.counts["files"] == 1
    classes = {c["code"]: c["points"] for c in dataset.counts["classes"]}
    assert classes == _laspy_classes(path)
    names = {c["code"]: c["name"] for c in dataset.counts["classes"]}
    assert names == {1: "Unclassified", 2: "Ground"}
    # the file's own CRS (autzen: a WKT without EPSG code) is EPSG:2994
    source = CRS.from_wkt(dataset.options["crs_wkt"]) if dataset.options["crs_wkt"] else None
    assert (source or CRS.from_user_input(dataset.source_crs)).equals(
        CRS.from_epsg(2994), ignore_axis_order=True
    )
    assert dataset.options["height_factor"] == pytest.approx(0.3048)
    # extent in the storage CRS contains every point moved there by pyproj (heights ft -> m)
    x, y = Transformer.from_crs(2994, SRID, always_xy=True).transform(data.x, data.y)
    xmin, ymin, zmin, xmax, ymax, zmax = dataset.counts["extent"]
    assert xmin - 0.01 <= x.min() and x.max() <= xmax + 0.01
    assert ymin - 0.01 <= y.min() and y.max() <= ymax + 0.01
    assert np.isclose(zmin, data.z.min() * 0.3048, atol=0.01)
    assert np.isclose(zmax, data.z.max() * 0.3048, atol=0.01)
    # the source is kept, byte for byte, under its sha256 for the tiler
    [stored] = dataset.options["files"]
    kept = tmp_path / "pointclouds" / stored
    assert kept.read_bytes() == path.read_bytes()
    assert kept.name == f"{hashlib.sha256(path.read_bytes()).hexdigest()}{path.suffix}"
    assert dataset.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_file_again_is_a_no_op_unless_replace(pc_engine: Engine, tmp_path: Path) -> None:
    first = import_pointcloud(pc_engine, [SIMPLE], data_dir=tmp_path, crs="EPSG:2994", replace=True)
    again = import_pointcloud(pc_engine, [SIMPLE], data_dir=tmp_path, crs="EPSG:2994")
    assert not again.created and again.dataset.id == first.dataset.id
    replaced = import_pointcloud(
        pc_engine, [SIMPLE], data_dir=tmp_path, crs="EPSG:2994", replace=True
    )
    assert replaced.created and replaced.replaced_id == first.dataset.id


def test_crs_option_wins_over_the_files_crs_with_a_warning(
    pc_engine: Engine, tmp_path: Path
) -> None:
    result = import_pointcloud(
        pc_engine, [AUTZEN], data_dir=tmp_path, crs="EPSG:2992", name="override", replace=True
    )
    assert result.dataset.source_crs == "EPSG:2992"
    assert any("--crs EPSG:2992 is used instead" in w for w in result.warnings)
    same = import_pointcloud(pc_engine, [AUTZEN], data_dir=tmp_path, crs="EPSG:2994", replace=True)
    assert same.warnings == []  # the file's CRS is EPSG:2994 in all but name


def test_two_files_make_one_dataset(pc_engine: Engine, tmp_path: Path) -> None:
    result = import_pointcloud(
        pc_engine, [SIMPLE, AUTZEN], data_dir=tmp_path, crs="EPSG:2994", replace=True
    )
    assert result.dataset.counts["points"] == 1065 + 110_000
    assert result.dataset.counts["files"] == 2
    assert result.dataset.source_name == "laspy_simple.las, laspy_autzen_trim.laz"
    digest = hashlib.sha256(SIMPLE.read_bytes() + AUTZEN.read_bytes()).hexdigest()
    assert result.dataset.source_sha256 == digest


def test_registry_entry_imports_for_the_api(pc_engine: Engine, tmp_path: Path) -> None:
    entry = importer("pointcloud")
    seen: list[tuple[str, int, int]] = []
    options = entry.options.model_validate(
        {"crs": "EPSG:2994", "replace": "true", "data_dir": str(tmp_path), "unknown": 1}
    )
    assert isinstance(options, PointcloudOptions)
    [result] = entry.run(pc_engine, [SIMPLE], options, lambda *a: seen.append(a))
    assert result.dataset.counts["points"] == 1065
    assert seen[-1] == ("points", 1065, 1065)


def _write_las(path: Path, points: int) -> Path:
    header = laspy.LasHeader(point_format=3, version="1.2")
    data = laspy.LasData(header)
    data.x = np.linspace(636000, 636100, points)
    data.y = np.linspace(849000, 849100, points)
    data.z = np.full(points, 400.0)
    data.write(path)
    return path


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text_file = tmp_path / "notes.las"
    text_file.write_text("hello, this is not a point cloud\n")
    wrong_suffix = tmp_path / "cloud.txt"
    wrong_suffix.write_bytes(SIMPLE.read_bytes())
    truncated_las = tmp_path / "cut.las"
    truncated_las.write_bytes(SIMPLE.read_bytes()[:20_000])
    truncated_laz = tmp_path / "cut.laz"
    truncated_laz.write_bytes(AUTZEN.read_bytes()[:200_000])
    return {
        "text": (text_file, "notes.las: not a readable LAS/LAZ file (Invalid file signature"),
        "suffix": (wrong_suffix, "cloud.txt: not a .las or .laz file"),
        "truncated-las": (truncated_las, "cut.las: not a readable LAS/LAZ file"),
        "truncated-laz": (truncated_laz, "cut.laz: not a readable LAS/LAZ file"),
        "empty": (_write_las(tmp_path / "empty.las", 0), "empty.las: the file holds no point"),
        "no-crs": (SIMPLE, "laspy_simple.las: the file names no CRS; pass --crs EPSG:x"),
        "missing": (tmp_path / "gone.laz", "gone.laz: no such file"),
    }


@pytest.mark.parametrize(
    "case", ["text", "suffix", "truncated-las", "truncated-laz", "empty", "no-crs", "missing"]
)
def test_bad_input_one_line_nothing_stored(pc_engine: Engine, tmp_path: Path, case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    before = _pointclouds(pc_engine)
    data_dir = tmp_path / "data"
    with pytest.raises(InvalidInput) as raised:
        import_pointcloud(pc_engine, [path], data_dir=data_dir)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert _pointclouds(pc_engine) == before
    assert not (data_dir / "pointclouds").exists()


def test_outside_the_storage_crs_area_is_refused(engine: Engine, tmp_path: Path) -> None:
    """The shared test database stores EPSG:4547 (China): Oregon is far outside it."""
    with pytest.raises(UnsupportedCRS, match="outside the area of use of the storage CRS"):
        import_pointcloud(engine, [AUTZEN], data_dir=tmp_path)
    assert not (tmp_path / "pointclouds").exists()


def test_cli_imports_and_prints_json(pc_url: str, tmp_path: Path) -> None:
    env = cli_env(pc_url, CIM_DATA_DIR=str(tmp_path))
    done = run_cim(
        "import", "pointcloud", str(SIMPLE), "--crs", "EPSG:2994", "--replace", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dataset"]["counts"]["points"] == 1065
    assert result["dataset"]["options"]["files"] == [f"{result['dataset']['source_sha256']}.las"]
    assert (tmp_path / "pointclouds" / result["dataset"]["options"]["files"][0]).is_file()
    refused = run_cim("import", "pointcloud", str(SIMPLE), env=env)
    assert refused.returncode != 0
    assert "the file names no CRS; pass --crs" in refused.stderr
