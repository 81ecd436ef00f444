"""``cim demo``: start the database, load the demo city of ``data/samples/demo.yaml``, serve.

Each step is the public command a user would run (``cim import ...``, ``cim tiles build``), so
the demo shows exactly what cim does; the steps run in this process (the same command tree,
errors and exit statuses), without a new interpreter each. Importers that this version of cim
lacks are skipped with a note; a file already imported (same kind and sha256) is skipped
without starting the importer, so running ``make demo`` again takes seconds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db import migrate
from cim.db.connect import database_url, server_versions
from cim.db.engine import make_engine
from cim.db.models import Dataset
from cim.errors import ConfigError, DatabaseUnavailable, ImportFailed, InvalidInput, NotFound
from cim.services.datasets import file_sha256
from cli import imports, tiles
from cli.context import console, emit, engine_scope, load_settings
from cli.demo_manifest import (
    DEFAULT_MANIFEST,
    DemoManifest,
    GenerateStep,
    ImportStep,
    SensorStep,
    load_manifest,
)
from cli.errors import INTERRUPTED, run_guarded
from cli.serve import serve


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Prepare only; do not serve.")
    ] = False,
    manifest: Annotated[
        Path, typer.Option(help="Demo manifest (what to generate, import and tile).")
    ] = DEFAULT_MANIFEST,
    as_json: Annotated[bool, typer.Option("--json", help="Print the step report as JSON.")] = False,
) -> None:
    """Load the demo city (terrain, water network, IFC building, shelters) and serve the viewer."""
    plan = load_manifest(manifest)
    settings = demo_settings(load_settings(), plan.srid)
    started = time.perf_counter()
    with engine_scope(settings) as engine:
        versions = server_versions(engine)
        console.print(
            f"[green]database ready[/green]: PostgreSQL {versions['postgresql']}, "
            f"PostGIS {versions['postgis']}, EPSG:{plan.srid} ({_where(settings)})"
        )
        steps = run_demo(plan, settings, engine)
    failed = [s for s in steps if s["status"] == "failed"]
    seconds = round(time.perf_counter() - started, 1)
    done = sum(s["status"] in ("imported", "built") for s in steps)
    console.print(
        f"demo city '{plan.name}': {done} step(s) run, "
        f"{sum(s['status'] == 'unchanged' for s in steps)} unchanged, "
        f"{sum(s['status'] == 'skipped' for s in steps)} skipped, {len(failed)} failed "
        f"in {seconds} s"
    )
    if as_json:
        emit(
            {"city": plan.name, "srid": plan.srid, "seconds": seconds, "steps": steps}, as_json=True
        )
    if no_serve:
        if failed:
            raise ImportFailed(
                f"{len(failed)} demo step(s) failed: "
                + ", ".join(f"{s['step']} {s.get('file', '')}".strip() for s in failed)
            )
        return
    console.print(f"[bold]viewer: http://{host}:{port}/viewer/[/bold]")
    live = bool(plan.sensors) and _mosquitto_installed()
    if live:
        from cli.demo_sensors import start_live_feed  # MQTT client: only when the feed runs

        start_live_feed(database_url(settings, start=False), settings.data_dir)
        console.print(
            "live sensor feed: simulated values over MQTT every ~5 s, a methane leak from 2 min"
        )
    elif plan.sensors:
        console.print(
            "[yellow]live sensor feed off[/yellow]: mosquitto is not installed "
            "(scripts/bootstrap); the sensors show their stored backlog only"
        )
    serve(host=host, port=port, workers=1, reload=False, mqtt=live)


def demo_settings(settings: CimSettings, srid: int) -> CimSettings:
    """Settings that store the demo city in ``srid``; a database fixed to another CRS is refused.

    A new database is initialised in ``srid``; one that already records another storage SRID
    (an earlier ``cim`` run in the same data dir) cannot hold the demo city, so say how to get
    a separate one rather than fail half-way.
    """
    if settings.srid is not None and settings.srid != srid:
        raise ConfigError(
            f"CIM_SRID={settings.srid}, but the demo city is stored in EPSG:{srid}: unset CIM_SRID"
        )
    engine = make_engine(database_url(settings))
    try:
        with engine.connect() as connection:
            recorded = migrate.recorded_srid(connection)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc.orig}") from exc
    finally:
        engine.dispose()
    if recorded is not None and recorded != srid:
        where = _where(settings)
        hint = (
            f"run `CIM_DATA_DIR=.cim-demo make demo` for a separate demo database, or delete "
            f"{where} to start over"
            if settings.uses_embedded_database
            else "point CIM_DATABASE_URL at another database"
        )
        raise ConfigError(
            f"the database in {where} stores geometries in EPSG:{recorded}, but the demo city "
            f"needs EPSG:{srid} (UTM zone 16N): {hint}"
        )
    return settings.model_copy(update={"srid": srid})


def _where(settings: CimSettings) -> str:
    return str(settings.data_dir) if settings.uses_embedded_database else "CIM_DATABASE_URL"


def run_demo(plan: DemoManifest, settings: CimSettings, engine: Engine) -> list[dict[str, Any]]:
    """Generate, import and tile; one report entry per step (never raises for one step)."""
    env = _child_env(settings)
    steps = [_generate(step) for step in plan.generate]
    import_commands = {command.name for command in imports.app.registered_commands}
    steps += [_import(step, engine, env, import_commands) for step in plan.imports]
    tile_commands = {command.name for command in tiles.app.registered_commands}
    for layer in plan.tiles:
        if "build" not in tile_commands:
            steps.append(_skipped(f"tiles {layer}", "`cim tiles build` is not in this version"))
            continue
        steps.append(_run(f"tiles {layer}", ["tiles", "build", "--layer", layer], env, "built"))
    steps += [_sensors(step, engine, settings) for step in plan.sensors]
    return steps


def _sensors(step: SensorStep, engine: Engine, settings: CimSettings) -> dict[str, Any]:
    name = "sensors"
    if not step.file.exists():
        return _skipped(name, f"{step.file.name} does not exist", step.file)
    from cli.demo_sensors import load_sensor_set  # the sensor services: only for this step

    try:
        report = load_sensor_set(engine, step.file, int(settings.srid or 0))
    except (NotFound, InvalidInput) as exc:
        return _skipped(name, str(exc), step.file)
    console.print(f"{name} {step.file.name}: {report['status']} ({report['things']} things)")
    return {"step": name, "file": step.file.name, **report}


def _mosquitto_installed() -> bool:
    return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()


def _generate(step: GenerateStep) -> dict[str, Any]:
    name = f"generate {step.script.name}"
    if all(out.exists() for out in step.outputs):
        return {"step": name, "status": "unchanged"}
    if not step.script.exists():
        return _skipped(name, f"{step.script.name} is not in this version")
    console.print(f"generating {', '.join(o.name for o in step.outputs)} ({step.script.name})")
    result = subprocess.run([sys.executable, str(step.script)], check=False)
    missing = [o.name for o in step.outputs if not o.exists()]
    if result.returncode != 0 or missing:
        console.print(f"[red]{name} failed[/red] (exit {result.returncode}, missing {missing})")
        return {"step": name, "status": "failed"}
    return {"step": name, "status": "built"}


def _import(
    step: ImportStep, engine: Engine, env: dict[str, str], available: set[str | None]
) -> dict[str, Any]:
    name = f"import {step.kind}"
    if step.kind not in available:
        return _skipped(name, f"`cim import {step.kind}` is not in this version", step.file)
    missing = [f for f in step.all_files if not f.exists()]
    if missing:
        return _skipped(name, f"{missing[0].name} does not exist", step.file)
    with Session(engine) as session:
        existing = session.scalars(
            select(Dataset.id).where(
                Dataset.kind == step.kind,
                Dataset.source_sha256 == file_sha256(*sorted(step.all_files)),
                Dataset.status == "ready",
            )
        ).first()
    if existing is not None:
        console.print(f"{name} {step.file.name}: unchanged (dataset {existing})")
        return {"step": name, "file": step.file.name, "status": "unchanged", "dataset": existing}
    command = ["import", step.kind, *map(str, step.all_files), *step.args]
    report = _run(name, command, env, "imported")
    report["file"] = step.file.name
    return report


def _run(name: str, command: list[str], env: dict[str, str], done: str) -> dict[str, Any]:
    """Run ``cim COMMAND --json``; its progress shows on stderr, its JSON result is kept."""
    console.print(f"[bold]{name}[/bold]: cim {' '.join(command)}")
    started = time.perf_counter()
    code, stdout = _invoke([*command, "--json"], env)
    seconds = round(time.perf_counter() - started, 1)
    if code != 0:
        console.print(f"[red]{name} failed[/red] (exit {code}, {seconds} s)")
        return {"step": name, "status": "failed", "exit": code, "seconds": seconds}
    try:
        output: Any = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        output = stdout.strip()
    return {"step": name, "status": done, "seconds": seconds, "result": output}


def _invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``cim ARGS`` in this process with ``env`` as its environment: exit status and stdout.

    The same command tree, ``cim: error:`` line and exit status as the console script
    (:mod:`cli.errors`); a new interpreter per step spent 1.5-2 s importing the command's
    modules, more than most steps' own work (``cim demo`` 43 s -> 16 s). Ctrl-C stops the demo,
    not only the step.
    """
    import click
    import typer.main

    from cli.main import app

    saved = dict(os.environ)
    stdout = io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    command = typer.main.get_command(app)
    try:
        with redirect_stdout(stdout):
            returned = run_guarded(
                lambda: command.main(args=args, prog_name="cim", standalone_mode=False)
            )
        code = returned if isinstance(returned, int) else 0  # an Exit's code, else success
    except click.exceptions.Abort:  # Ctrl-C, as click reports it outside its standalone mode
        raise KeyboardInterrupt from None
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except SystemExit as exit_:  # run_guarded's exit status for a CimError, or the command's
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code == INTERRUPTED:  # the step stopped on Ctrl-C: so does the demo
        raise KeyboardInterrupt
    return code, stdout.getvalue()


def _skipped(name: str, reason: str, file: Path | None = None) -> dict[str, Any]:
    console.print(f"[yellow]{name} skipped[/yellow]: {reason}")
    report = {"step": name, "status": "skipped", "reason": reason}
    if file is not None:
        report["file"] = file.name
    return report


def _child_env(settings: CimSettings) -> dict[str, str]:
    """The steps' environment: they reach the running database directly instead of managing
    the cluster."""
    env = dict(os.environ)
    env["CIM_DATABASE_URL"] = database_url(settings, start=False)
    env["CIM_DATA_DIR"] = str(settings.data_dir)
    env["CIM_SRID"] = str(settings.srid)
    env["CIM_LOG_LEVEL"] = settings.log_level
    return env
