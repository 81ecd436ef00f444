"""The demo-city manifest (``data/samples/demo.yaml``): what ``cim demo`` generates and loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cim.errors import InvalidInput

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / "data" / "samples" / "demo.yaml"


@dataclass(frozen=True)
class GenerateStep:
    """A script that writes generated inputs; run when one of its outputs is missing."""

    script: Path
    outputs: tuple[Path, ...]


@dataclass(frozen=True)
class ImportStep:
    """``cim import <kind> <file> <args...>``; a ``mapping:`` file (resolved against the
    manifest's folder, like ``file``) is passed as ``--mapping``. ``files:`` (a list) instead
    of ``file:`` gives one import several files of one dataset (a CJJ 61 point + line pair;
    the importer makes a dataset per pair); ``file`` is then the first, ``files`` all."""

    kind: str
    file: Path
    args: tuple[str, ...]
    files: tuple[Path, ...] = ()

    @property
    def all_files(self) -> tuple[Path, ...]:
        return self.files or (self.file,)


@dataclass(frozen=True)
class SensorStep:
    """A SensorThings set (JSON, see ``cli.demo_sensors``) loaded through the service layer."""

    file: Path


@dataclass(frozen=True)
class DemoManifest:
    """The whole demo city."""

    name: str
    srid: int
    generate: tuple[GenerateStep, ...]
    imports: tuple[ImportStep, ...]
    tiles: tuple[str, ...]
    sensors: tuple[SensorStep, ...] = ()


def load_manifest(path: Path = DEFAULT_MANIFEST) -> DemoManifest:
    """Read and check a manifest; file paths are resolved against its folder, scripts the repo's.

    A missing or malformed manifest is an :class:`InvalidInput` naming the problem.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read the demo manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the demo manifest {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"the demo manifest {path} must be a mapping")
    folder = path.resolve().parent
    try:
        return DemoManifest(
            name=str(raw["name"]),
            srid=int(raw["srid"]),
            generate=tuple(
                GenerateStep(
                    script=REPO / str(step["script"]),
                    outputs=tuple(folder / str(out) for out in step.get("outputs", [])),
                )
                for step in _list(raw, "generate")
            ),
            imports=tuple(
                ImportStep(
                    kind=str(step["kind"]),
                    file=folder / str(step["file"] if "file" in step else step["files"][0]),
                    files=tuple(folder / str(f) for f in step.get("files", [])),
                    args=tuple(str(arg) for arg in step.get("args", []))
                    + (
                        ("--mapping", str(folder / str(step["mapping"])))
                        if "mapping" in step
                        else ()
                    ),
                )
                for step in _list(raw, "imports")
            ),
            tiles=tuple(str(layer) for layer in _list(raw, "tiles")),
            sensors=tuple(SensorStep(folder / str(step["file"])) for step in _list(raw, "sensors")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"the demo manifest {path} is malformed: {exc!r}") from None


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise InvalidInput(f"the demo manifest's {key!r} must be a list")
    return value
