"""Helpers for a PostgreSQL server of a test's own, which the test may stop and start again (pg_ctl);
the ``own_postgres`` fixture that starts one is in tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from adapters.embedded_postgres import pg_bin


def pg_ctl(data_dir: Path, *args: str, wait_seconds: int = 20) -> None:
    """Run pg_ctl as the user the embedded server runs as (pgserver runs postgres as 'pgserver' under root)."""
    user = {"user": "pgserver"} if os.geteuid() == 0 else {}
    subprocess.run([str(pg_bin("pg_ctl")), "-D", str(data_dir), "-w", "-t", str(wait_seconds), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=wait_seconds + 10, **user)


def restart_postgres(data_dir: Path, url: str, *, stopped: bool = False) -> None:
    """Start again a server stopped with ``pg_ctl stop`` (``stopped``), else stop it first. On a busy
    machine the start may take a while; if it fails, the server's own log says why."""
    if not stopped:
        pg_ctl(data_dir, "stop", "-m", "fast")
    log = data_dir / "log"
    try:
        pg_ctl(data_dir, "start", "-l", str(log), "-o", f'-h "" -k {conninfo_to_dict(url)["host"]}',
               wait_seconds=60)
    except subprocess.CalledProcessError:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f"PostgreSQL did not start again:\n{tail}") from None
