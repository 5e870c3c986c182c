"""Benchmark: thousands of concurrent web chat widget connections against ONE commhub server process.

Run it with ``uv run python bench/widget.py [--connections 2000] [--round-trips 300] [--rate 20]``.
It uses the PostgreSQL server in ``DATABASE_URL`` when set, otherwise an embedded one; the schema it
makes is dropped at the end, the servers it starts are stopped, and it gives up after
``--time-limit`` seconds (default 300) whatever happens. Only 127.0.0.1 is used. The soft limit of
open files is raised (each connection is a socket on both sides).

What it does, in one run:

1. Baseline: a bare ``websockets`` echo server in its own process. ``--connections`` idle
   connections are opened to it (its RSS before and after: memory per connection), then one client
   sends ``--round-trips`` messages at ``--rate`` per second and times each echo.
2. commhub: ``commhub serve --demo`` (one process, projections and outbox inside it, as by default),
   the widget set up for origin ``http://bench.invalid``. ``--connections`` widget websockets are
   opened (hello, ``ready``) — RSS of the server before and after gives memory per connection.
   An agent socket is connected. ``--active`` of the visitors send a first message (this creates
   their contact, data key and conversation), then ``--round-trips`` messages are sent at ``--rate``
   per second from those visitors while every connection stays open. Timed: visitor sends → the
   visitor's ``ack`` (stored), and visitor sends → the agent's websocket receives it; then agent
   replies through ``POST /conversations/{id}/reply`` → the visitor's websocket receives the reply.

Printed: connections held, RSS per connection (ours and the echo server's), p50/p95/p99 of every
round trip next to the echo round trip, and the ratio of the p99s. Lost or doubled messages are
counted. Other work on the machine inflates the figures: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.kek import encode_kek, generate_kek  # noqa: E402
from bench._common import Findings, console, fresh_schema, ms, percentile, ratio, server_url  # noqa: E402

ORIGIN = "http://bench.invalid"
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, max_queue=4) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--active", type=int, default=100, help="visitors who send messages")
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second while timing")
    parser.add_argument("--time-limit", type=float, default=300.0)
    return parser.parse_args(argv)


def raise_file_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, needed) if hard == resource.RLIM_INFINITY else min(max(soft, needed), hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the servers started below
    return wanted


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def settled_rss(pid: int) -> int:
    await asyncio.sleep(1.0)
    return rss(pid)


async def open_many(urls: list[str], hello: dict[str, Any] | None, origin: str | None) -> list[ClientConnection]:
    """Open connections 100 at a time; with ``hello``, each says it and waits for ``ready``."""
    opened: list[ClientConnection] = []

    async def one(url: str) -> ClientConnection:
        connection = await connect(url, origin=origin, open_timeout=60, ping_interval=None, max_queue=4)
        if hello is not None:
            await connection.send(json.dumps(hello))
            while json.loads(await connection.recv())["type"] != "ready":
                pass
        return connection

    for start in range(0, len(urls), 100):
        opened.extend(await asyncio.gather(*(one(u) for u in urls[start:start + 100])))
    return opened


async def paced(count: int, rate: float, action: Any) -> None:
    """Run ``action(i)`` for i in range(count), started at ``rate`` per second (open loop)."""
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(i)))
    await asyncio.gather(*tasks)


async def baseline(args: argparse.Namespace) -> dict[str, Any]:
    process = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = f"ws://127.0.0.1:{process.stdout.readline().strip()}"
        before = await settled_rss(process.pid)
        idle = await open_many([url] * args.connections, None, None)
        after = await settled_rss(process.pid)
        client = await connect(url, ping_interval=None)
        times: list[float] = []
        lock = asyncio.Lock()

        async def echo(i: int) -> None:
            async with lock:  # one at a time on one connection: a request, its echo
                sent = time.perf_counter()
                await client.send(f"ping {i}")
                await client.recv()
                times.append(time.perf_counter() - sent)

        await paced(args.round_trips, args.rate, echo)
        await client.close()
        for connection in idle:
            await connection.close()
        return {"rss_before": before, "rss_after": after, "round_trips": times}
    finally:
        process.terminate()
        process.wait(timeout=10)


class AgentTap:
    """The agent's websocket: when each message body arrived."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.arrived: dict[str, list[float]] = {}
        self.conversation_of: dict[str, str] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            update = json.loads(raw)
            if update.get("type") == "conversation.message_received":
                self.arrived.setdefault(update["body"], []).append(time.perf_counter())
                self.conversation_of[update["body"]] = update["conversation_id"]


class VisitorTap:
    """One active visitor: acks and replies as they arrive."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.acks: dict[str, float] = {}
        self.replies: dict[str, list[float]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            if frame["type"] == "ack":
                self.acks[frame["client_id"]] = time.perf_counter()
            elif frame["type"] == "message" and frame["direction"] == "out":
                self.replies.setdefault(frame["body"], []).append(time.perf_counter())

    async def say(self, body: str) -> tuple[str, float]:
        client_id = uuid.uuid4().hex
        sent = time.perf_counter()
        await self.connection.send(json.dumps({"type": "message", "client_id": client_id, "body": body,
                                               "notice_accepted": True}))
        return client_id, sent


async def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def ours(args: argparse.Namespace, server: Any, owner: httpx.AsyncClient, token: str, key: str) -> dict[str, Any]:
    ws = server.url.replace("http://", "ws://", 1)
    before = await settled_rss(server.process.pid)
    opened_at = time.perf_counter()
    visitors = await open_many([f"{ws}/ws/widget/{key}"] * args.connections, {"type": "hello", "after": 0}, ORIGIN)
    connect_seconds = time.perf_counter() - opened_at
    after = await settled_rss(server.process.pid)

    agent = AgentTap(await connect(f"{ws}/ws/agent", ping_interval=None))
    await agent.connection.send(json.dumps({"token": token}))
    active = [VisitorTap(c) for c in visitors[: args.active]]
    warm = [f"hello from visitor {i} {uuid.uuid4().hex[:6]}" for i in range(len(active))]
    await paced(len(active), args.rate * 2, lambda i: active[i].say(warm[i]))
    await wait_until(lambda: all(b in agent.arrived for b in warm), 60)
    after_active = await settled_rss(server.process.pid)

    sent: dict[str, tuple[VisitorTap, str, float]] = {}

    async def visitor_message(i: int) -> None:
        body = f"round trip {i} {uuid.uuid4().hex[:8]}"
        tap = active[i % len(active)]
        client_id, at = await tap.say(body)
        sent[body] = (tap, client_id, at)

    await paced(args.round_trips, args.rate, visitor_message)
    await wait_until(lambda: all(b in agent.arrived for b in sent), 30)
    to_agent = [agent.arrived[b][0] - at for b, (_, _, at) in sent.items() if b in agent.arrived]
    acks = [tap.acks[c] - at for tap, c, at in sent.values() if c in tap.acks]
    doubled = sum(len(v) - 1 for b, v in agent.arrived.items() if b in sent and len(v) > 1)

    replied: dict[str, tuple[VisitorTap, float]] = {}

    async def agent_reply(i: int) -> None:
        tap = active[i % len(active)]
        conversation = agent.conversation_of[warm[i % len(active)]]
        body = f"reply {i} {uuid.uuid4().hex[:8]}"
        at = time.perf_counter()
        replied[body] = (tap, at)
        answer = await owner.post(f"/api/v1/conversations/{conversation}/reply", json={"body": body})
        answer.raise_for_status()

    await paced(min(args.round_trips, 200), args.rate, agent_reply)
    await wait_until(lambda: all(b in t.replies for b, (t, _) in replied.items()), 30)
    to_visitor = [t.replies[b][0] - at for b, (t, at) in replied.items() if b in t.replies]
    doubled += sum(len(t.replies.get(b, [])) > 1 for b, (t, _) in replied.items())

    for tap in active:
        tap.task.cancel()
    agent.task.cancel()
    await agent.connection.close()
    for connection in visitors:
        await connection.close()
    return {"rss_before": before, "rss_after": after, "rss_active": after_active, "connect_seconds": connect_seconds,
            "to_agent": to_agent, "acks": acks, "to_visitor": to_visitor, "sent": len(sent), "replied": len(replied),
            "lost": len(sent) - len(to_agent) + len(replied) - len(to_visitor), "doubled": doubled}


def report(args: argparse.Namespace, base: dict[str, Any], result: dict[str, Any]) -> None:
    n = args.connections
    per = (result["rss_after"] - result["rss_before"]) / n
    per_echo = (base["rss_after"] - base["rss_before"]) / n
    memory = Table(title=f"Memory with {n:,} idle connections (RSS delta / connections)")
    for column in ("server", "RSS before", "RSS after", "per connection", "ratio"):
        memory.add_column(column, justify="right")
    memory.add_row("commhub widget socket", f"{result['rss_before'] / 2**20:.1f} MiB",
                   f"{result['rss_after'] / 2**20:.1f} MiB", f"{per / 1024:.1f} KiB", ratio(per, per_echo))
    memory.add_row("bare websockets echo (baseline)", f"{base['rss_before'] / 2**20:.1f} MiB",
                   f"{base['rss_after'] / 2**20:.1f} MiB", f"{per_echo / 1024:.1f} KiB", "1.00")
    console.print(memory)
    console.print(f"{args.active} visitors became contacts with a conversation: RSS "
                  f"{result['rss_active'] / 2**20:.1f} MiB; {n:,} connections opened in {result['connect_seconds']:.1f} s")
    trips = Table(title=f"Round trips at {args.rate:g}/s with {n:,} widget connections open")
    for column in ("path", "n", "p50", "p95", "p99", "p99 / echo p99"):
        trips.add_column(column, justify="right")
    echo99 = percentile(base["round_trips"], 99)
    for label, values in (("visitor → stored (ack)", result["acks"]), ("visitor → agent socket", result["to_agent"]),
                          ("agent REST reply → visitor", result["to_visitor"]),
                          ("websockets echo (baseline)", base["round_trips"])):
        trips.add_row(label, str(len(values)), ms(percentile(values, 50)), ms(percentile(values, 95)),
                      ms(percentile(values, 99)), ratio(percentile(values, 99), echo99))
    console.print(trips)
    console.print(f"lost: {result['lost']}, doubled: {result['doubled']} "
                  f"(of {result['sent']} visitor messages and {result['replied']} replies)")
    findings = Findings("widget")
    findings.figure(f"memory per connection ({n:,} open)", per / 1024, per_echo / 1024, "KiB", better="lower",
                    baseline_name="bare websockets echo server")
    for label, values in (("visitor → agent socket", result["to_agent"]),
                          ("agent REST reply → visitor", result["to_visitor"])):
        findings.figure(f"{label} p99", percentile(values, 99) * 1000, echo99 * 1000, "ms", better="lower",
                        baseline_name="websockets echo round trip")
        findings.latencies(label, values)
    findings.latencies("websockets echo (baseline)", base["round_trips"])
    findings.write()


async def run(args: argparse.Namespace, server: Any) -> None:
    login = json.loads((server.data_dir / "demo-login.json").read_text())
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as owner:
        answer = await owner.post("/api/v1/auth/login", json={"workspace": login["workspace_slug"],
                                                               "email": login["email"], "password": login["password"]})
        token = answer.json()["token"]
        owner.headers["Authorization"] = f"Bearer {token}"
        widget = (await owner.put("/api/v1/widget", json={"allowed_origins": [ORIGIN]})).json()
        console.log("baseline: bare websockets echo server")
        base = await baseline(args)
        console.log(f"commhub: {args.connections:,} widget connections")
        result = await ours(args, server, owner, token, widget["public_key"])
    report(args, base, result)


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.conftest import start_server, stop_server

    args = parse_args(argv)
    limit = raise_file_limit(3 * args.connections + 1000)
    load = os.getloadavg()
    console.log(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; open files limit {limit}")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="commhub-widget-bench-")))
        url, where = server_url(stack, tmp)
        console.log(f"PostgreSQL: {where}")
        database = fresh_schema(stack, url, "widget")
        env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema,
               "COMMHUB_KEK": encode_kek(generate_kek()), "COMMHUB_LOG_LEVEL": "warning",
               "COMMHUB_WIDGET_IP_CONNECTIONS_PER_MINUTE": "10000000", "COMMHUB_WIDGET_IP_MESSAGES_PER_MINUTE": "10000000"}
        server = start_server(tmp, env, "--demo", timeout=120)
        stack.callback(stop_server, server)
        try:
            asyncio.run(asyncio.wait_for(run(args, server), args.time_limit))
        except asyncio.TimeoutError:
            console.print(f"[red]gave up after {args.time_limit:g} s[/red]")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
