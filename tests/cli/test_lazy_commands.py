"""``cim`` imports a command's module only when it runs (cli.lazy): short commands start fast."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from cli.main import Commands, app


def test_every_command_loads_and_shows_its_help() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0, listed.output
    for name in Commands.lazy:
        assert name in listed.output
        shown = runner.invoke(app, [name, "--help"])
        assert shown.exit_code == 0, (name, shown.output)
        assert "Usage" in shown.output


def test_a_short_command_imports_only_its_own_module() -> None:
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "result = CliRunner().invoke(app, ['db', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('cli.', 'importers')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "cli.db" in loaded
    for other in ("cli.imports", "cli.analyse", "cli.serve", "cli.demo", "cli.tiles"):
        assert other not in loaded, other
    assert not any(m.startswith("importers") for m in loaded)
