"""Helpers for the fault-injection suite: real commhub processes (``serve`` and ``worker``) talking to a
fake Twilio on loopback, a Twilio-like client that signs and retries webhooks, and comparing read models
with a full rebuild."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest

from adapters.postgres import Database
from tests.e2e.api_support import Api, demo_login
from tests.e2e.conftest import Server
from tests.fake_twilio import FakeTwilio, signature
from tests.processes import StartedWorker, start_worker  # noqa: F401  (the fault tests import them from here)

PUBLIC = "https://hub.example.test"  # the hub's public URL: Twilio signs for it, the fake posts to the real one


def hub_env(database: Database, kek: str, fake: FakeTwilio, **extra: str) -> dict[str, str]:
    """Settings of every commhub process in a fault test: Twilio is the fake, retries are quick."""
    return {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": kek, **fake.env(),
            "COMMHUB_PUBLIC_URL": PUBLIC, "COMMHUB_TWILIO_TIMEOUT": "1", "COMMHUB_OUTBOX_BASE_DELAY": "0.05",
            "COMMHUB_OUTBOX_MAX_ATTEMPTS": "30", "COMMHUB_LOG_LEVEL": "warning", **extra}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    twilio = FakeTwilio(hang_seconds=2).start()
    yield twilio
    twilio.stop()


def settled(database: Database) -> bool:
    """Every projection has applied every stored event, and no outbox row waits to be sent."""
    with database.connect() as conn:
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM commhub_events").fetchone()[0]
        floor = conn.execute("SELECT coalesce(min(position), 0) FROM commhub_projection_positions").fetchone()[0]
        pending = conn.execute("SELECT count(*) FROM commhub_outbox WHERE status = 'pending'").fetchone()[0]
    return head == floor and pending == 0


def login_once_projected(server: Server) -> Api | None:
    """The demo owner, once a worker has projected the staff (``serve --no-workers`` does not)."""
    try:
        return demo_login(server)
    except AssertionError:
        return None


# Twilio's side ----------------------------------------------------------------------------------------------


def inbound_params(fake: FakeTwilio, sid: str, sender: str, to: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": fake.account_sid, "From": sender,
            "To": to, "Body": body, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01"}


async def post_until_acknowledged(client: httpx.AsyncClient, app_url: str, fake: FakeTwilio, params: dict[str, str],
                                  answers: Counter[str], deadline: float) -> int:
    """POST a signed inbound-SMS webhook as Twilio does, again with the same MessageSid after a 5xx, a timeout
    or a refused connection, until the hub acknowledges it with a 2xx; returns how many tries it took."""
    import asyncio

    url = f"{PUBLIC}/webhooks/twilio/sms"
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": signature(fake.auth_token, url, params)}
    content = urlencode(params)
    tries = 0
    while True:
        tries += 1
        try:
            response = await client.post(f"{app_url}/webhooks/twilio/sms", content=content, headers=headers)
            answers[str(response.status_code)] += 1
            if response.is_success:
                return tries
            assert response.status_code >= 500, f"a valid webhook was refused: {response.status_code} {response.text}"
        except httpx.TransportError as error:
            answers[type(error).__name__] += 1
        assert time.monotonic() < deadline, f"webhook {params['MessageSid']} was never acknowledged: {answers}"
        await asyncio.sleep(0.2 * min(tries, 5))  # Twilio's own back-off between retries of one webhook


def message_of(request: Any) -> str:
    """Our message id, from the StatusCallback URL the hub gave Twilio with the message."""
    return parse_qs(urlsplit(request.form["StatusCallback"]).query)["message_id"][0]


def accepted_per_message(*fakes: FakeTwilio) -> Counter[str]:
    """How often each of our messages was accepted (201) by Twilio."""
    return Counter(message_of(r) for fake in fakes for r in fake.accepted())


def answers_per_message(fake: FakeTwilio) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for request in fake.messages():
        found.setdefault(message_of(request), []).append(request.answered)
    return found


def all_messages(api: Api, channel: str = "sms") -> list[dict[str, Any]]:
    """Every message of every conversation of a channel, as the API lists them."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.ok("GET", f"/api/v1/conversations?view=all&channel={channel}&limit=200"
                      + (f"&cursor={cursor}" if cursor else ""))
        for row in page["items"]:
            found += api.ok("GET", f"/api/v1/conversations/{row['conversation_id']}/messages?limit=1000")["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


# Read models ------------------------------------------------------------------------------------------------

# Columns the outbox worker writes as it works (attempt counts, leases, errors of attempts that were retried):
# not derived from events, so a rebuild starts them afresh. Everything else must be equal.
WORKER_STATE = {"commhub_outbox": {"attempts", "next_attempt_at", "last_error"},
                "commhub_caldav_pushes": {"due_at", "leased_until"}}


def projection_tables(database: Database, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of these tables, as text, ordered by all their columns (worker-owned columns left out)."""
    sql = psycopg.sql
    contents: dict[str, list[tuple[Any, ...]]] = {}
    with database.connect() as conn:
        for table in sorted(tables):
            columns = [name for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
                " ORDER BY ordinal_position", (database.schema, table))
                if name not in WORKER_STATE.get(table, set())]
            assert columns, f"no table {table}"
            listed = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
            order = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(columns)))
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(listed, sql.Identifier(table), order)
            contents[table] = conn.execute(query).fetchall()
    return contents


def rebuilt_equals_live(database: Database, kek: str, data_dir: Path) -> None:
    """Rebuild every projection from zero (no workers running) and compare its tables with what they held."""
    from api.bootstrap import bootstrap
    from api.settings import Settings

    settings = Settings(database_url=database.url, db_schema=database.schema, kek=kek, data_dir=data_dir)
    with bootstrap(settings, database=database) as hub:
        assert not any(hub.projections.lag().values()), "the projections had not caught up"
        assert hub.projections.failures() == []
        tables = [table for view in hub.projections.projections.values() for table in view.tables]
        live = projection_tables(database, tables)
        for name in hub.projections.projections:
            hub.projections.rebuild(name)
        rebuilt = projection_tables(database, tables)
    assert sum(len(rows) for rows in live.values()) > 0
    for table in tables:
        only_live = [row for row in live[table] if row not in rebuilt[table]]
        only_rebuilt = [row for row in rebuilt[table] if row not in live[table]]
        assert rebuilt[table] == live[table], f"{table} differs from its rebuild: {only_live} became {only_rebuilt}"
