"""``COMMHUB_WORKERS=process``: ``commhub serve`` runs the projections and the background workers
in a child ``commhub worker`` process, on the same database, started and stopped with the server.

One process is GIL-bound: the projection runner competed with the request threads for one core,
and under a few hundred inbound messages a second fell behind by seconds (docs/decisions.md, 28).
In a process of its own it has a core's worth of GIL to itself, and nothing else changes: the
server follows its progress through LISTEN/NOTIFY as it follows any ``commhub worker``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from adapters.postgres import Database
from api.settings import Settings, child_environment

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """The child worker: restarted if it dies while the server runs, stopped with the server."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        # The child uses this very database (also when it is the embedded one this process started)
        # and the same data directory and key file, as absolute paths: the child runs from the
        # project root, so that `-m api.cli` imports, where relative ones would resolve elsewhere.
        self.env = child_environment(
            DATABASE_URL=database.url, COMMHUB_DB_SCHEMA=database.schema, COMMHUB_WORKERS="on",
            COMMHUB_PARENT_PID=str(os.getpid()), COMMHUB_DATA_DIR=str(settings.data_dir.resolve()),
            COMMHUB_KEK_FILE=str(settings.resolved_kek_file.resolve()))
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and a stop never cross
        self._watcher: threading.Thread | None = None

    def start(self) -> WorkerProcess:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="commhub-worker-process", daemon=True)
        self._watcher.start()
        return self

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # A session of its own: Ctrl-C in a terminal reaches the server only, which then stops
            # the worker in order (the worker also stops by itself if the server dies without that).
            self.process = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=self.env,
                                            start_new_session=True)
        log.info("worker process %d started", self.process.pid)

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            assert self.process is not None
            started = time.monotonic()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = 1.0  # it had been running fine: not a crash loop
            log.error("worker process exited with %s; starting another in %.0fs", code, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)
            self._spawn()

    def stop(self) -> None:
        """SIGTERM, as for any worker: it finishes the delivery in flight, then exits."""
        timeout = self.settings.shutdown_seconds + 10
        with self._lock:
            self._stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker process did not stop within %.0fs; killing it", timeout)
            self.process.kill()
            self.process.wait()


def parent_gone(parent: int | None) -> bool:
    """For the child: whether the server that started it has exited (it was re-parented)."""
    return parent is not None and os.getppid() != parent
