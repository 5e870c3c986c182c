"""``commhub worker`` processes started by tests: each is stopped when its test ends, passed or failed, so a
failing test never leaves a worker holding database connections for the rest of the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StartedWorker:
    """One ``commhub worker`` process (projections, outbox, reminders), logging to a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return "commhub worker running" in self.log()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


_started: list[StartedWorker] = []


def start_worker(data_dir: Path, env: dict[str, str], *, wait: bool = True) -> StartedWorker:
    """A ``commhub worker`` with these settings; with ``wait``, once it says it is running."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    # COMMHUB_PARENT_PID: the worker exits by itself should this test process die without stopping it
    environment = {**os.environ, "COMMHUB_DB_POOL_SIZE": "2", "COMMHUB_PARENT_PID": str(os.getpid()), **env,
                   "COMMHUB_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT)
    worker = StartedWorker(process, log_path)
    _started.append(worker)
    if wait:
        deadline = time.monotonic() + 60
        while not (worker.running() or process.poll() is not None):
            assert time.monotonic() < deadline, f"the worker did not start:\n{worker.log()}"
            time.sleep(0.1)
        assert process.poll() is None, f"the worker exited:\n{worker.log()}"
    return worker


def stop_started_workers() -> None:
    """Stop every worker a test started and left running."""
    while _started:
        _started.pop().stop(timeout=10)
