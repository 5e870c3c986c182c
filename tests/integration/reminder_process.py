"""A reminder worker in a process of its own: starts at an agreed moment, claims a few jobs at a
time on a fixed clock until none are due, then prints how many it claimed."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from adapters.postgres import Database
from adapters.reminder_worker import ReminderWorker
from api.bootstrap import bootstrap
from api.settings import Settings


def main() -> None:
    url, schema, kek, at, start = sys.argv[1:6]
    settings = Settings(database_url=url, db_schema=schema, kek=kek, data_dir=Path("/nonexistent"))
    with bootstrap(settings, database=Database(url, schema)) as hub:
        worker = ReminderWorker(hub.app, hub.database, clock=lambda: datetime.fromisoformat(at))
        time.sleep(max(0.0, float(start) - time.time()))
        claimed = 0
        while handled := worker.run_once(limit=2):
            claimed += handled
        print("claimed", claimed, flush=True)


if __name__ == "__main__":
    main()
