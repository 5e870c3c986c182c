"""The lifecycle every background worker shares: a daemon thread that calls `run_once` until it
returns 0, then sleeps until woken (a NOTIFY, a new row) or `poll_seconds` pass; errors are logged
by type only (never their text, which may quote personal data) and retried after a second.

Wake-ups closer together than `wake_interval` are merged into one run: under load the projections
advance hundreds of times a second, and each idle run costs a query."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

log = logging.getLogger(__name__)


class PollingWorker:
    name = "worker"
    """Thread name suffix and the label in log lines."""
    poll_seconds: float = 5.0
    stop_timeout: float = 15.0
    wake_interval: float = 0.05

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Do the work due now; returns how many items were handled (0 means idle)."""
        raise NotImplementedError

    def start(self) -> Any:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"commhub-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Let the item in flight finish (never cut a provider call short), then end the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout if timeout is None else timeout)

    def wake(self, *_: Any) -> None:
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                started = time.monotonic()
                if self.run_once() == 0:
                    self._wake.wait(self.poll_seconds)
                    rest = started + self.wake_interval - time.monotonic()
                    if rest > 0:  # woken right after a run: let more wake-ups arrive first
                        self._stopping.wait(rest)
                    self._wake.clear()
            except (psycopg.Error, OSError) as error:
                log.warning("%s worker error (%s); retrying", self.name, type(error).__name__)
                self._stopping.wait(1.0)
            except Exception as error:
                log.error("%s worker failed (%s); retrying", self.name, type(error).__name__)
                self._stopping.wait(1.0)
