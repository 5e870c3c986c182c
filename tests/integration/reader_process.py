"""A second commhub process for tests: reads a contact, waits, then reports what it reads now.

Protocol on stdin/stdout: prints READY after the first read (its key cache is then warm);
on each line ``read`` received, prints the contact's name as seen now, or ERASED.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from adapters.postgres import Database
from api.bootstrap import bootstrap
from api.settings import Settings
from domain.personal import ERASED


def main() -> None:
    url, schema, kek, workspace_id, contact_id = sys.argv[1:6]
    settings = Settings(database_url=url, db_schema=schema, kek=kek, data_dir=Path("/nonexistent"))
    with bootstrap(settings, database=Database(url, schema)) as hub:
        workspace, contact = uuid.UUID(workspace_id), uuid.UUID(contact_id)

        def name() -> str:
            value = hub.app.get_contact(workspace, contact).name
            return "ERASED" if value is ERASED else value

        name()
        print("READY", flush=True)
        for line in sys.stdin:
            if line.strip() == "read":
                print(name(), flush=True)


if __name__ == "__main__":
    main()
