"""Live updates across processes: a message stored through one API server reaches an agent's
websocket held by another, once and in order; a reconnecting agent resumes from its last position;
and a PostgreSQL restart loses nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict
from websockets.exceptions import ConnectionClosed

from adapters.postgres import Database
from tests.e2e.api_support import AgentSocket, bodies_received, demo_login, phone_number, unique, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.e2e.restartable_postgres import pg_ctl

RECEIVED = "conversation.message_received"


def received_all(expected: list[str]):
    def done(updates: list[dict[str, Any]]) -> bool:
        return set(expected) <= set(bodies_received(updates))
    return done


async def post_inbound(client: httpx.AsyncClient, sender: str, body: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/sandbox/inbound", json={"from": sender, "body": body, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def two_servers(tmp_path: Path, fresh_database: Database, session_kek: str) -> Iterator[tuple[Server, Server]]:
    """Two ``commhub serve`` processes on one database, as behind a load balancer."""
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema, "COMMHUB_KEK": session_kek}
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_server(tmp_path / "first", env, "--demo")
    try:
        second = start_server(tmp_path / "second", env)
    except BaseException:
        stop_server(first)
        raise
    yield first, second
    stop_server(second)
    stop_server(first)


def test_a_message_posted_on_one_server_reaches_a_websocket_on_another_once_and_in_order(two_servers):
    first, second = two_servers
    with demo_login(first) as owner:
        token = owner.token

    async def scenario() -> None:
        socket = AgentSocket(first.url, token)
        assert await socket.connect() == []
        sender = phone_number()
        async with httpx.AsyncClient(base_url=second.url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=15) as other:
            live = [f"live {i} {unique('m')}" for i in range(10)]
            for body in live:
                started = time.monotonic()
                stored = await post_inbound(other, sender, body)
                (update,) = [u for u in await socket.collect(received_all([body]), timeout=5) if u["type"] == RECEIVED]
                assert time.monotonic() - started < 5
                assert (update["body"], update["message_id"], update["direction"]) == (body, stored["message_id"], "in")
                assert update["conversation_id"] == stored["conversation_id"]

            await socket.close()
            missed = [f"missed {i} {unique('m')}" for i in range(5)]
            stored_missed = [await post_inbound(other, sender, body) for body in missed]
            last_seen = socket.position
            replayed = await socket.reconnect()
            assert socket.ready is not None and socket.ready["position"] >= max(u["position"] for u in replayed)
            assert bodies_received(replayed) == missed
            replayed_ids = [u["message_id"] for u in replayed if u["type"] == RECEIVED]
            assert replayed_ids == [s["message_id"] for s in stored_missed]
            positions = [u["position"] for u in replayed]
            assert positions == sorted(set(positions)) and positions[0] > last_seen

            after = unique("after reconnect")
            await post_inbound(other, sender, after)
            more = await socket.collect(received_all([after]), timeout=5)
            assert bodies_received(more) == [after], "the live stream repeated what the backfill sent"
            await socket.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_a_websocket_refuses_a_bad_hello_and_roles_without_the_inbox(demo_server):
    with demo_login(demo_server) as owner:
        password = "a long enough password"
        email = f"{unique('compliance')}@demo.example"
        owner.ok("POST", "/api/v1/staff", {"name": "Compliance", "email": email, "role": "compliance",
                                           "password": password})
        credentials = json.loads((demo_server.data_dir / "demo-login.json").read_text())
        compliance = httpx.post(f"{demo_server.url}/api/v1/auth/login", json={
            "workspace": credentials["workspace_slug"], "email": email, "password": password}).json()["token"]

    async def closed_with(hello: str) -> int:
        socket = AgentSocket(demo_server.url, "")
        from websockets.asyncio.client import connect

        async with connect(socket.url) as connection:
            await connection.send(hello)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(connection.recv(), 10)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code

    async def scenario() -> None:
        assert await closed_with("not json") == 4401
        assert await closed_with(json.dumps({"after": 0})) == 4401
        assert await closed_with(json.dumps({"token": "forged", "after": 0})) == 4401
        assert await closed_with(json.dumps({"token": owner.token, "after": "ten"})) == 4401
        assert await closed_with(json.dumps({"token": owner.token, "batch": "yes"})) == 4401
        assert await closed_with(json.dumps({"token": compliance})) == 4403

    asyncio.run(asyncio.wait_for(scenario(), timeout=40))


def test_every_agent_gets_each_update_once_and_a_revoked_token_is_cut_off_while_the_others_stay(
        tmp_path, fresh_database, session_kek):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema, "COMMHUB_KEK": session_kek,
           "COMMHUB_SOCKET_RECHECK_SECONDS": "0.5"}
    server = start_server(tmp_path, env, "--demo")
    try:
        with demo_login(server) as owner:
            password, email = "a long enough password", f"{unique('agent')}@demo.example"
            owner.ok("POST", "/api/v1/staff", {"name": "Agent", "email": email, "role": "agent", "password": password})
            slug = json.loads((server.data_dir / "demo-login.json").read_text())["workspace_slug"]
            agent_token = httpx.post(f"{server.url}/api/v1/auth/login", json={
                "workspace": slug, "email": email, "password": password}).json()["token"]

            async def scenario() -> None:
                owners = [AgentSocket(server.url, owner.token, batch=n % 2 == 0) for n in range(6)]
                agent = AgentSocket(server.url, agent_token)
                for socket in (*owners, agent):
                    await socket.connect()
                async with httpx.AsyncClient(base_url=server.url, timeout=15,
                                             headers={"Authorization": f"Bearer {owner.token}"}) as client:
                    first = unique("to everyone")
                    stored = await post_inbound(client, phone_number(), first)
                    for socket in (*owners, agent):
                        updates = await socket.collect(received_all([first]), timeout=5)
                        [update] = [u for u in updates if u["type"] == RECEIVED]
                        assert (update["body"], update["message_id"]) == (first, stored["message_id"])

                    revoked = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {agent_token}"})
                    assert revoked.status_code == 204
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:  # the socket ends within a recheck or two (0.5 s here)
                            await agent.receive(timeout=5)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

                    second = unique("still live")
                    await post_inbound(client, phone_number(), second)
                    for socket in owners:
                        assert bodies_received(await socket.collect(received_all([second]), timeout=5)) == [second]

                    # A burst: sockets that asked for batches get the same updates in the same order,
                    # none twice (how many frames they came in depends on timing: the unit test
                    # tests/unit/test_agent_socket_frames.py shows the framing itself).
                    burst = [unique(f"burst {n}") for n in range(30)]
                    await asyncio.gather(*(post_inbound(client, phone_number(), body) for body in burst))
                    seen = [await socket.collect(received_all(burst), timeout=15) for socket in owners]
                    for socket, updates in zip(owners, seen):
                        positions = [u["position"] for u in updates]
                        assert positions == sorted(set(positions))
                        assert sorted(bodies_received(updates)) == sorted(burst)
                        if not socket.batch:
                            assert set(socket.frames) == {1}
                    common = min(updates[-1]["position"] for updates in seen)  # what every socket has read
                    in_order = [[(u["type"], u["position"]) for u in updates if u["position"] <= common]
                                for updates in seen]
                    assert all(order == in_order[0] for order in in_order)
                for socket in owners:
                    await socket.close()

            asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    finally:
        stop_server(server)


def test_an_unreadable_event_in_the_log_does_not_stop_the_live_feed(tmp_path, fresh_database, session_kek):
    """An event this version cannot decode (here: a topic no module defines, with a real workspace's
    state) is skipped by the projections and by the feed of a process that reads the log (it runs
    no projections) alike; later messages still arrive live."""
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema, "COMMHUB_KEK": session_kek}
    (tmp_path / "projecting").mkdir()
    (tmp_path / "reading").mkdir()
    projecting = start_server(tmp_path / "projecting", env, "--demo")
    try:
        reading = start_server(tmp_path / "reading", env, "--no-workers")
        try:
            with demo_login(projecting) as owner:
                async def scenario() -> None:
                    socket = AgentSocket(reading.url, owner.token)
                    await socket.connect()
                    async with httpx.AsyncClient(base_url=projecting.url, timeout=15,
                                                 headers={"Authorization": f"Bearer {owner.token}"}) as client:
                        before = unique("before")
                        await post_inbound(client, phone_number(), before)
                        await socket.collect(received_all([before]), timeout=10)
                        with fresh_database.connect() as conn:
                            inserted = conn.execute(
                                "INSERT INTO commhub_events (originator_id, originator_version, topic, state)"
                                " SELECT gen_random_uuid(), 1, 'commhub_gone.module:Gone', state FROM commhub_events"
                                " WHERE topic LIKE %s ORDER BY notification_id DESC LIMIT 1", ("%MessageReceived",))
                            assert inserted.rowcount == 1
                        after = unique("after")
                        await post_inbound(client, phone_number(), after)
                        updates = await socket.collect(received_all([after]), timeout=10)
                        assert bodies_received(updates) == [after]
                    await socket.close()

                asyncio.run(asyncio.wait_for(scenario(), timeout=40))
            assert "live feed skipped unreadable event" in reading.log()
        finally:
            stop_server(reading)
    finally:
        stop_server(projecting)


# PostgreSQL restarts -------------------------------------------------------------------------------------


def test_after_a_postgresql_restart_the_same_websocket_gets_every_message_including_those_stored_meanwhile(
    tmp_path, own_postgres, session_kek,
):
    data_dir, url = own_postgres
    database = Database(url, "live_restart")
    database.ensure_schema()
    env = {"DATABASE_URL": url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek}
    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server", env, "--demo")
    socket_dir = conninfo_to_dict(url)["host"]
    try:
        with demo_login(server) as owner:
            token = owner.token

        async def scenario() -> None:
            socket = AgentSocket(server.url, token)
            await socket.connect()
            sender = phone_number()
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                                         timeout=15) as api:
                before = unique("before restart")
                await post_inbound(api, sender, before)
                await socket.collect(received_all([before]), timeout=5)

                await asyncio.to_thread(pg_ctl, data_dir, "stop", "-m", "fast")
                # Down long enough that the live feed backs off for over a second: the messages below
                # are stored while its listener is still away, and must come from its catch-up read.
                await asyncio.to_thread(wait_for, lambda: "reconnecting in 1.6s" in server.log(), timeout=15,
                                        what="the live feed to back off")
                await asyncio.to_thread(pg_ctl, data_dir, "start", "-l", str(data_dir / "log"),
                                        "-o", f'-h "" -k {socket_dir}')

                # The first message after the restart: retried (idempotently) until the server answers 201.
                after = [unique(f"after restart {i}") for i in range(5)]
                deadline = time.monotonic() + 30
                while True:
                    response = await api.post("/api/v1/sandbox/inbound", json={
                        "from": sender, "body": after[0], "provider_message_id": "restart-0"})
                    if response.status_code == 201:
                        break
                    assert time.monotonic() < deadline, f"the server did not recover: {response.status_code}"
                    await asyncio.sleep(0.1)  # a back-off between retries of a request, not a wait for a condition
                for i, body in enumerate(after[1:], start=1):
                    await post_inbound(api, sender, body, provider_message_id=f"restart-{i}")

                try:
                    updates = await socket.collect(received_all(after), timeout=15)
                except ConnectionClosed:  # the client's own recovery: reconnect from the last position
                    updates = await socket.reconnect()
                    if not received_all(after)(updates):
                        updates += await socket.collect(received_all(after), timeout=15)
                assert bodies_received(updates) == after
                await socket.close()

        asyncio.run(asyncio.wait_for(scenario(), timeout=90))
    finally:
        stop_server(server)


def test_readyz_answers_503_while_the_database_is_down_and_200_once_it_is_back(tmp_path, own_postgres, session_kek):
    data_dir, url = own_postgres
    database = Database(url, "readyz")
    database.ensure_schema()
    env = {"DATABASE_URL": url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek}
    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server", env)
    try:
        pg_ctl(data_dir, "stop", "-m", "fast")
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        down = httpx.get(f"{server.url}/readyz")
        pg_ctl(data_dir, "start", "-l", str(data_dir / "log"), "-o", f'-h "" -k {conninfo_to_dict(url)["host"]}')
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, timeout=15, what="readyz to recover")
    finally:
        stop_server(server)
    assert down.status_code == 503, f"readyz answered {down.status_code} {down.headers.get('content-type')}"
    assert down.headers["content-type"] == "application/problem+json"
