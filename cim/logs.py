"""Log lines for machines and for people: JSON lines or text, with the request id on every line.

A department ships the service's stderr to a log store (journald, Loki, Elasticsearch) that
wants one JSON object per line; a person at a terminal wants text. ``CIM_LOG_FORMAT=auto`` (the
default) chooses JSON when stderr is not a terminal, ``json`` and ``text`` force one. The API
sets :data:`REQUEST_ID` for the request it serves and :class:`RequestIdFilter` stamps it on
every record, so every line of one request carries the same ``request_id`` (and so does every
``audit_log`` row it writes: the model's default reads :func:`current_request_id`).

``cim serve`` hands :func:`log_config` to uvicorn (each worker applies it); the other commands
call :func:`configure_logging`. Our loggers (``cim.*``) and uvicorn's log at ``CIM_LOG_LEVEL``,
third-party libraries only from WARNING (alembic's INFO lines at every start are noise).
"""

from __future__ import annotations

import logging
import logging.config
import sys
from contextvars import ContextVar
from typing import Any, Literal, TextIO

LogFormat = Literal["auto", "json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("cim_request_id", default=None)
"""The id of the HTTP request being served (None outside a request: CLI, job threads)."""

JSON_FIELDS = ["levelname", "name", "message", "request_id"]
"""Fields of every JSON line (``extra=`` fields are added after them)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(request_tag)s%(message)s"


def current_request_id() -> str | None:
    """The id of the request being served, if any (the default of ``audit_log.request_id``)."""
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Stamp ``request_id`` on every record that passes the handler (None outside a request).

    On the handler, not on a logger: a handler's filters see the records of every logger that
    propagates to it, uvicorn's and third-party libraries' included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """One line for people: time, level, logger, ``[request id]`` when there is one, message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return super().formatMessage(record)


def wants_json(log_format: str, stream: TextIO | None = None) -> bool:
    """Whether lines should be JSON: ``json``, or ``auto`` when ``stream`` (stderr) is no tty.

    Examples
    --------
    >>> import io
    >>> wants_json("auto", io.StringIO()), wants_json("text", io.StringIO())
    (True, False)
    """
    if log_format == "auto":
        target = stream if stream is not None else sys.stderr
        return not (hasattr(target, "isatty") and target.isatty())
    return log_format == "json"


def make_formatter(log_format: str = "auto") -> logging.Formatter:
    """The formatter of ``CIM_LOG_FORMAT`` (a ``()`` factory of :func:`log_config`)."""
    if not wants_json(log_format):
        return TextFormatter()
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"levelname": "level", "name": "logger"},
        # uvicorn's ``color_message`` repeats the message with terminal colour codes
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp="time",  # ISO 8601 in UTC, from the record's creation time
    )


def log_config(level: str, log_format: LogFormat | str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document: one stderr handler with the chosen
    formatter and the request-id filter on the root logger (an unknown level means INFO)."""
    level = level.upper() if isinstance(logging.getLevelName(level.upper()), int) else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "cim.logs.RequestIdFilter"}},
        "formatters": {"cim": {"()": "cim.logs.make_formatter", "log_format": log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "cim",
                "filters": ["request_id"],
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "cim": {"level": level},
            "uvicorn": {"level": level},
        },
    }


def configure_logging(level: str, log_format: LogFormat | str) -> None:
    """Apply :func:`log_config` to this process (the CLI's commands)."""
    logging.config.dictConfig(log_config(level, log_format))
