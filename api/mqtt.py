"""Live sensors in the API process: the MQTT ingester, the alarm listener, the missing-data check.

Made in the lifespan (``api.main``) and kept on ``app.state.sensors``:

- the alarm listener (one ``LISTEN`` connection) feeding ``GET /alarms/stream``;
- a thread raising missing-data alarms every :data:`MISSING_CHECK_SECONDS` (each worker runs
  one; the open-alarm unique index keeps them from raising the same alarm twice);
- with ``cim serve --mqtt`` (which sets ``CIM_MQTT_URL``, ``settings.mqtt_url``): an
  :class:`MqttIngester` subscribed to the broker. ``cim serve`` refuses ``--mqtt`` with
  several workers: one persistent MQTT session has one consumer.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.services.sensors.alarm_eval import check_missing
from cim.services.sensors.alarm_listener import AlarmListener
from cim.services.sensors.mqtt_ingest import MqttIngester

logger = logging.getLogger("cim.sensors")
MISSING_CHECK_SECONDS = 30.0


class SensorRuntime:
    """The sensor threads of one API process (see the module docstring)."""

    def __init__(self, engine: Engine, settings: CimSettings) -> None:
        self.engine = engine
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.listener = AlarmListener(conninfo)
        self.ingester: MqttIngester | None = None
        if settings.mqtt_url:
            self.ingester = MqttIngester(
                engine,
                settings.mqtt_url,
                batch_size=settings.mqtt_batch,
                flush_ms=settings.mqtt_flush_ms,
                publish_back=settings.mqtt_publish,
            )
        self._stop = threading.Event()
        self._checker = threading.Thread(target=self._check, name="cim-missing-data", daemon=True)

    def start(self) -> None:
        self.listener.start()
        self._checker.start()
        if self.ingester is not None:
            self.ingester.start()

    def close(self) -> None:
        if self.ingester is not None:
            self.ingester.stop()
        self._stop.set()
        self._checker.join(timeout=5)
        self.listener.stop()

    def _check(self) -> None:
        while not self._stop.wait(MISSING_CHECK_SECONDS):
            self.check_missing_now()

    def check_missing_now(self) -> int:
        """Raise the missing-data alarms due now; the number raised."""
        try:
            with Session(self.engine) as session, session.begin():
                return len(check_missing(session))
        except SQLAlchemyError as exc:
            logger.warning("missing-data check skipped: %s", str(exc)[:200])
            return 0
