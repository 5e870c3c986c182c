"""PostgreSQL restarted while signed Twilio SMS webhooks arrive at about 200 a second: every webhook the hub
acknowledged is exactly one message, every one it did not is retried by the sender until it is, and an agent's
websocket (reconnecting with ``after`` as the inbox page does) shows each message exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from adapters.postgres import Database
from tests.e2e.api_support import AgentSocket, demo_login, phone_number, wait_for
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.restartable_postgres import pg_ctl, restart_postgres
from tests.faults.conftest import all_messages, hub_env, inbound_params, post_until_acknowledged

MESSAGES = 600
RATE = 200  # webhooks offered per second (the hub may take them slower on a loaded machine: correctness counts)
SENDERS = 35
IN_FLIGHT = 48  # webhooks awaiting an answer at once, at most
RECEIVED = "conversation.message_received"


class LiveInbox:
    """An agent's websocket held through the fault: on a drop it reconnects with the last position it saw."""

    def __init__(self, url: str, token: str) -> None:
        self.socket = AgentSocket(url, token)
        self.shown: Counter[str] = Counter()
        self.reconnects = 0

    def take(self, updates: list[dict[str, Any]]) -> None:
        self.shown.update(u["body"] for u in updates if u["type"] == RECEIVED)

    async def follow(self, expected: set[str], deadline: float) -> None:
        while not expected <= set(self.shown):
            assert time.monotonic() < deadline, f"the websocket showed {len(set(self.shown) & expected)} of " \
                                                f"{len(expected)} messages"
            try:
                if self.socket.connection is None:
                    self.reconnects += 1
                    self.take(await self.socket.connect(after=self.socket.position))
                self.take([await self.socket.receive(timeout=max(0.1, deadline - time.monotonic()))])
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                self.socket.connection = None
                await asyncio.sleep(0.2)  # back off before reconnecting, as the inbox page does


@pytest.mark.timeout(120)
def test_every_acknowledged_webhook_is_one_message_and_shown_once_across_a_postgresql_restart(
        tmp_path: Path, own_postgres, session_kek, fake):
    data_dir, url = own_postgres
    database = Database(url, "restart_under_load")
    database.ensure_schema()
    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server", hub_env(database, session_kek, fake), "--demo")
    try:
        with demo_login(server) as owner:
            number = phone_number()
            owner.ok("POST", "/api/v1/sms/numbers", {"number": number})
            token = owner.token
        senders = [phone_number() for _ in range(SENDERS)]
        sids = [f"SM{uuid.uuid4().hex}" for _ in range(MESSAGES)]
        bodies = {sid: f"fault {i} {sid}" for i, sid in enumerate(sids)}
        answers: Counter[str] = Counter()
        acknowledged: dict[str, int] = {}

        async def scenario() -> LiveInbox:
            inbox = LiveInbox(server.url, token)
            assert await inbox.socket.connect() == []
            deadline = time.monotonic() + 75
            follower = asyncio.create_task(inbox.follow(set(bodies.values()), deadline))
            limit = asyncio.Semaphore(IN_FLIGHT)
            async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:
                async def offer(index: int, sid: str) -> None:
                    await asyncio.sleep(index / RATE)
                    async with limit:
                        params = inbound_params(fake, sid, senders[index % SENDERS], number, bodies[sid])
                        acknowledged[sid] = await post_until_acknowledged(client, server.url, fake, params, answers,
                                                                          deadline)

                async def restart() -> None:
                    await asyncio.sleep(MESSAGES / RATE / 3)
                    await asyncio.to_thread(pg_ctl, data_dir, "stop", "-m", "fast")
                    await asyncio.sleep(1.5)  # the database stays away while webhooks keep coming
                    await asyncio.to_thread(restart_postgres, data_dir, url, stopped=True)

                await asyncio.gather(restart(), *(offer(i, sid) for i, sid in enumerate(sids)))
            await follower
            await inbox.socket.close()
            return inbox

        inbox = asyncio.run(asyncio.wait_for(scenario(), timeout=100))

        assert len(acknowledged) == MESSAGES
        retried = sum(tries > 1 for tries in acknowledged.values())
        assert retried > 0 and set(answers) - {"200"}, f"the restart refused no webhook: {answers}"
        with demo_login(server) as owner:
            stored = wait_for(lambda: (found := all_messages(owner)) and len(found) >= MESSAGES and found,
                              timeout=30, what="every message in the read model")
        per_body = Counter(m["body"] for m in stored if m["kind"] == "in" and m["body"].startswith("fault "))
        assert per_body == Counter(bodies.values()), "a webhook was lost or stored twice"
        assert inbox.shown == Counter(bodies.values()), "the websocket lost or repeated a message"
    finally:
        stop_server(server)
