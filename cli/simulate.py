"""``cim simulate sensors``: publish realistic observations over MQTT for the datastreams stored.

The feed for the demo and the benches (values: :mod:`cim.services.sensors.feed`). Run beside
``cim serve --mqtt``, which ingests what is published here; the broker is the data dir's
local one when it runs, else ``--url``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress
from sqlalchemy.orm import Session

from cim.errors import ConfigError, NotFound
from cim.services.sensors.feed import load_streams, pick_leak
from cim.services.sensors.mqtt_broker import running_broker_url
from cim.services.sensors.mqtt_feed import publish_feed
from cim.services.sensors.mqtt_ingest import connect_client
from cli.context import console, engine_scope, load_settings

app = typer.Typer(help="Simulated feeds for the demo and the benches.", no_args_is_help=True)


@app.command("sensors")
def sensors(
    rate: Annotated[float, typer.Option(min=0.1, help="Observations per second, in all.")] = 50,
    duration: Annotated[float, typer.Option(min=0, help="Seconds to run; 0 = until Ctrl-C.")] = 60,
    url: Annotated[
        str | None, typer.Option(help="MQTT broker (default: the data dir's local broker).")
    ] = None,
    per_message: Annotated[
        int, typer.Option(min=1, max=10_000, help="Observations per MQTT message (JSON array).")
    ] = 1,
    streams: Annotated[int | None, typer.Option(min=1, help="Use the first N datastreams.")] = None,
    leak_after: Annotated[
        float, typer.Option(min=0, help="Seconds before the injected methane leak starts.")
    ] = 20,
    leak_ramp: Annotated[float, typer.Option(min=0, help="Seconds the leak takes to peak.")] = 30,
    leak_peak: Annotated[float, typer.Option(help="Leak peak in %LEL (0 = no leak).")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed of the noise.")] = 20,
) -> None:
    """Publish observations with daily patterns and noise; one methane datastream leaks."""
    settings = load_settings()
    with engine_scope(settings) as engine, Session(engine) as session:
        feed = load_streams(session, streams)
    if not feed:
        raise NotFound("no numeric datastream to feed: create Things and Datastreams first")
    broker = url or running_broker_url(settings.data_dir)
    if broker is None:
        raise ConfigError("no broker: start `cim serve --mqtt` or give --url mqtt://host:port")
    leak = pick_leak(feed, leak_after, leak_ramp, leak_peak) if leak_peak > 0 else None
    client = connect_client(broker, f"cim-simulate-{seed}", persistent=False)
    client.loop_start()
    if leak is not None:
        console.print(f"leak on datastream {leak.datastream_id} after {leak_after:g} s")
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("publishing", total=rate * duration if duration else None)
            summary = publish_feed(
                client, feed, rate=rate, duration=duration, per_message=per_message, leak=leak,
                seed=seed, progress=lambda done: bar.update(task, completed=done),
            )  # fmt: skip
    except KeyboardInterrupt:
        console.print("stopped")
        return
    finally:
        client.disconnect()
        client.loop_stop()
    console.print(
        f"published {summary.observations} observations to {len(feed)} datastreams in "
        f"{summary.messages} messages over {summary.seconds:.1f} s "
        f"({summary.observations / max(summary.seconds, 1e-9):.0f}/s) on {broker}"
    )
