"""A local Mosquitto broker for ``cim serve --mqtt`` without a URL (Debian package ``mosquitto``).

The broker listens on 127.0.0.1 only (port 1883 when free, else a free one), with a config
generated in ``<data dir>/mqtt/`` and persistence there, so the persistent session of the
ingester and its queued messages outlive both a crash of cim and a restart of the broker
(Mosquitto saves its database every ``autosave_interval`` seconds and at exit).

It runs in its own session: killing ``cim serve`` (even with SIGKILL) leaves it up with the
messages queued for the ingester, and the next ``cim serve`` finds it through
``broker.json`` and reuses it. A broker this process started is stopped with it.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cim.errors import ConfigError
from cim.processes import process_alive

DEFAULT_PORT = 1883
CONFIG = """# written by cim (cim.services.sensors.mqtt_broker); regenerated at each start
listener {port} 127.0.0.1
# run as whoever started it (as root, mosquitto would switch to user mosquitto)
user {user}
allow_anonymous true
persistence true
persistence_location {folder}/
autosave_interval 5
# the ingester acknowledges a whole batch after its commit: let a batch be in flight
max_inflight_messages 0
max_queued_messages 0
log_dest file {folder}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _free_port() -> int:
    if not port_open(DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_broker_url(data_dir: Path) -> str | None:
    """The URL of the data dir's broker if one is running (started by ``cim serve --mqtt``)."""
    state = (data_dir / "mqtt" / "broker.json").resolve()
    if not state.exists():
        return None
    found = json.loads(state.read_text())
    if process_alive(found["pid"]) and port_open(found["port"]):
        return f"mqtt://127.0.0.1:{found['port']}"
    return None


class LocalBroker:
    """Start (or find running) the data dir's Mosquitto; ``url`` is where it listens."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.folder = (data_dir / "mqtt").resolve()
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """The broker's URL, after it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = self.folder / "broker.json"
        running = running_broker_url(self.folder.parent)
        if running is not None:
            self.url = running
            return self.url  # a broker left by an earlier cim serve: keep its queues
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ConfigError("mosquitto is not installed: run scripts/bootstrap (as root)")
        port = self.port or _free_port()
        config = self.folder / "mosquitto.conf"
        config.write_text(CONFIG.format(port=port, folder=self.folder, user=getpass.getuser()))
        self.process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"mosquitto did not start on port {port}: see {self.folder}")
            time.sleep(0.05)
        state.write_text(json.dumps({"pid": self.process.pid, "port": port}))
        self.url = f"mqtt://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        """Stop the broker if this object started it (it saves its database on the way out)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        (self.folder / "broker.json").unlink(missing_ok=True)
        self.process = None
