"""Runs the projections in a separate process with tiny batches, printing progress, until killed."""

from __future__ import annotations

import sys
from pathlib import Path

from adapters.postgres import Database
from api.bootstrap import bootstrap
from api.settings import Settings


def main() -> None:
    url, schema, kek = sys.argv[1:4]
    settings = Settings(database_url=url, db_schema=schema, kek=kek, data_dir=Path("/nonexistent"))
    with bootstrap(settings, database=Database(url, schema)) as hub:
        hub.projections.batch_size = 3
        while hub.projections.run_once():
            print("batch", flush=True)
        print("done", flush=True)


if __name__ == "__main__":
    main()
