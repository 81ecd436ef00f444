"""Hostile IFC sources: truncated or broken STEP files and .ifczip archives are refused whole."""

from __future__ import annotations

import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cim.errors import ImportFailed
from importers.ifc import import_ifc
from importers.ifc.archive import step_file_complete
from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.importers.ifc_oracles import IFC, dataset_count
from tests.importers.test_ifc_import import ORIGIN

HAUS = IFC / "AC20-FZK-Haus.ifc"
HOUSE = IFC / "IfcOpenHouse_IFC4.ifc"
LIMIT = 10 * 1024 * 1024
"""The expanded-size limit lowered for the archive tests (the default is 2 GiB)."""


def _refused(engine: Engine, path: Path, match: str, **options: int) -> None:
    with pytest.raises(ImportFailed, match=match):
        import_ifc(engine, path, flags=ORIGIN, threads=1, **options)  # type: ignore[arg-type]
    assert dataset_count(engine, path.name) == 0


def test_truncated_file_is_refused(engine: Engine, tmp_path: Path, clean_tables: None) -> None:
    truncated = tmp_path / "Haus-truncated.ifc"
    truncated.write_bytes(HAUS.read_bytes()[:20_000])
    _refused(engine, truncated, "truncated")


def test_missing_trailer_is_refused(engine: Engine, tmp_path: Path, clean_tables: None) -> None:
    text = HOUSE.read_bytes()
    cut = tmp_path / "House-no-trailer.ifc"
    cut.write_bytes(text[: text.rindex(b"END-ISO-10303-21;")])
    _refused(engine, cut, "END-ISO-10303-21")


def test_reference_to_a_missing_instance_is_refused(
    engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    lines = HOUSE.read_bytes().splitlines(keepends=True)
    # The last entity of the DATA section points at an instance that is not in the file.
    index = max(i for i, line in enumerate(lines) if line.startswith(b"#") and b",#" in line)
    head, _, tail = lines[index].partition(b",#")
    number = tail[: len(tail) - len(tail.lstrip(b"0123456789"))]
    lines[index] = head + b",#999999" + tail[len(number) :]
    broken = tmp_path / "House-dangling.ifc"
    broken.write_bytes(b"".join(lines))
    assert step_file_complete(broken)  # the trailer is there: the parser must spot it
    _refused(engine, broken, "#999999")


def test_trailer_may_be_followed_by_whitespace_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "ok.ifc"
    path.write_bytes(b"ISO-10303-21;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\r\n/* exported */ \n\n")
    assert step_file_complete(path)
    path.write_bytes(b"ISO-10303-21;\nDATA;\nENDSEC;\nEND-ISO-10303-21; /* unclosed")
    assert not step_file_complete(path)
    path.write_bytes(b"ISO-10303-21;\nDATA;\n#1=IFCWALL('x',$);\n")
    assert not step_file_complete(path)


def test_cli_refuses_a_truncated_file(
    database_url: str, engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    truncated = tmp_path / "Haus-cut.ifc"
    truncated.write_bytes(HAUS.read_bytes()[:20_000])
    env = cli_env(database_url.replace("postgresql+psycopg://", "postgresql://"))
    proc = run_cim("import", "ifc", str(truncated), "--origin", "500000,3000000,10", env=env)
    assert proc.returncode != 0, proc.stdout
    assert "truncated" in proc.stderr.strip().splitlines()[-1]
    assert dataset_count(engine, truncated.name) == 0


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_bomb_is_refused_without_reading_it_whole(
    engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    bomb = tmp_path / "bomb.ifczip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("model.ifc", "w") as member,
    ):
        for _ in range(50):
            member.write(bytes(1024 * 1024))  # 50 MB of zeros
    assert bomb.stat().st_size < 200_000
    tracemalloc.start()
    try:
        _refused(engine, bomb, "larger than 10485760 bytes", max_expanded_bytes=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


def _lie_about_size(path: Path, declared: int) -> None:
    """Rewrite the member's uncompressed size in the local and central headers."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)
    path.write_bytes(bytes(data))


def test_zip_with_a_lying_size_header_is_refused(
    engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    liar = _zip(tmp_path / "liar.ifczip", {"model.ifc": bytes(50 * 1024 * 1024)})
    _lie_about_size(liar, 1000)
    _refused(engine, liar, "liar.ifczip", max_expanded_bytes=LIMIT)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ({"a.ifc": b"x", "b.ifc": b"y"}, "2 .ifc members"),
        ({"readme.txt": b"x"}, "no .ifc member"),
        ({"../../evil.ifc": b"x"}, "unsafe member name"),
        ({"/etc/evil.ifc": b"x"}, "unsafe member name"),
        ({"model.ifc": b"x", "inner.zip": b"PK"}, "nested archive"),
    ],
)
def test_hostile_archive_members_are_refused(
    engine: Engine, tmp_path: Path, clean_tables: None, members: dict[str, bytes], match: str
) -> None:
    _refused(engine, _zip(tmp_path / "hostile.ifczip", members), match)


def test_links_in_an_archive_are_refused(
    engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    path = tmp_path / "link.ifczip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.ifc", HOUSE.read_bytes())
        link = zipfile.ZipInfo("other.ifc.lnk")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    _refused(engine, path, "link")


def test_declared_size_over_the_limit_is_refused_before_extracting(
    engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    path = _zip(tmp_path / "big.ifczip", {"model.ifc": HOUSE.read_bytes()})
    _refused(engine, path, "larger than 1000 bytes", max_expanded_bytes=1000)


def test_a_sound_archive_still_imports(engine: Engine, tmp_path: Path, clean_tables: None) -> None:
    path = _zip(tmp_path / "house.ifczip", {"docs/": b"", "model.ifc": HOUSE.read_bytes()})
    result = import_ifc(engine, path, flags=ORIGIN, threads=1, max_expanded_bytes=LIMIT)
    assert result.result.created and result.result.dataset.counts["building_element"] > 0
