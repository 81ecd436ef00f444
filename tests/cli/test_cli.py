"""The ``cim`` command as a user runs it: embedded cluster lifecycle, --json, the error path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CIM, cli_env, make_world_readable_tempdir


def run_cim(
    *args: str, env: dict[str, str], cwd: str | Path = "/"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=180
    )


def test_embedded_start_twice_status_url_and_persistence() -> None:
    data_dir = make_world_readable_tempdir("cim-cli-")
    env = {**cli_env("unused"), "CIM_DATA_DIR": str(data_dir)}
    del env["CIM_DATABASE_URL"]
    try:
        first = run_cim("db", "start", "--json", env=env)
        assert first.returncode == 0, first.stderr
        second = run_cim("db", "start", "--json", env=env)  # harmless when running
        assert second.returncode == 0, second.stderr
        assert json.loads(first.stdout)["port"] == json.loads(second.stdout)["port"]

        status = json.loads(run_cim("db", "status", "--json", env=env).stdout)
        assert status["running"] and status["embedded"]
        assert status["postgis"].startswith("3.")

        url = run_cim("db", "url", env=env).stdout.strip()
        assert url.startswith("postgresql://cim@127.0.0.1:")
        psql = subprocess.run(
            ["psql", url, "-Atc", "CREATE TABLE keep_me (x int); SELECT 42"],
            capture_output=True,
            text=True,
        )
        assert psql.stdout.strip().splitlines()[-1] == "42", psql.stderr

        assert run_cim("db", "upgrade", env=env).returncode == 0
        listed = run_cim("datasets", "list", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout) == []

        assert run_cim("db", "stop", env=env).returncode == 0
        stopped = json.loads(run_cim("db", "status", "--json", env=env).stdout)
        assert not stopped["running"]
        assert run_cim("db", "start", env=env).returncode == 0
        after = subprocess.run(
            [
                "psql",
                run_cim("db", "url", env=env).stdout.strip(),
                "-Atc",
                "SELECT count(*) FROM keep_me",
            ],
            capture_output=True,
            text=True,
        )
        assert after.stdout.strip() == "0", after.stderr  # the table survived stop/start
        # the server never listens beyond loopback
        listen = subprocess.run(
            ["psql", url, "-Atc", "SHOW listen_addresses"], capture_output=True, text=True
        )
        assert listen.stdout.strip() == "127.0.0.1"
    finally:
        run_cim("db", "stop", env=env)


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "message"),
    [
        (["datasets", "show", "987654"], {}, 3, "dataset 987654 does not exist"),
        (["datasets", "list"], {"CIM_SRID": "3857"}, 6, "CIM_SRID=3857"),
        (["datasets", "list"], {"CIM_SRID": "-5"}, 6, "CIM_SRID"),
        (["db", "start"], {}, 6, "CIM_DATABASE_URL is set"),
    ],
)
def test_errors_are_one_line_and_an_exit_code(
    database_url: str, args: list[str], extra_env: dict[str, str], code: int, message: str
) -> None:
    result = run_cim(*args, env=cli_env(database_url, **extra_env))
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cim: error:") and message in lines[0]


def test_unreachable_database_is_a_clear_error() -> None:
    result = run_cim("datasets", "list", env=cli_env("postgresql://cim@127.0.0.1:1/cim"))
    assert result.returncode == 7
    assert result.stderr.startswith("cim: error: cannot connect to the database")
    assert "Traceback" not in result.stderr


def test_json_output_of_datasets_list(database_url: str) -> None:
    result = run_cim("datasets", "list", "--json", env=cli_env(database_url))
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)
