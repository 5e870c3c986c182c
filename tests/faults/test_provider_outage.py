"""Twilio down for a while — answering 500, then hanging past the client's timeout, then refusing
connections — with replies queued meanwhile: after it recovers every queued reply is delivered exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from adapters.postgres import Database
from tests.e2e.api_support import Api, demo_login, phone_number, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_twilio import FakeTwilio
from tests.faults.conftest import PUBLIC, accepted_per_message, answers_per_message, hub_env

REPLIES = 8


@pytest.fixture
def hub(tmp_path, fresh_database: Database, session_kek: str, fake: FakeTwilio) -> Iterator[Server]:
    server = start_server(tmp_path, hub_env(fresh_database, session_kek, fake), "--demo")
    fake.proxy = (PUBLIC, server.url)
    yield server
    stop_server(server)


def conversations_texted_in(owner: Api, fake: FakeTwilio, count: int) -> list[str]:
    number = phone_number()
    owner.ok("POST", "/api/v1/sms/numbers", {"number": number})
    bodies = [f"outage {i} {uuid.uuid4().hex[:8]}" for i in range(count)]
    for body in bodies:
        assert fake.inbound_sms(PUBLIC, sender=phone_number(), to=number, body=body).status_code == 200

    def found() -> list[str] | None:
        rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=sms&limit=200")["items"]
        ids = {row["preview"]: row["conversation_id"] for row in rows}
        return [ids[body] for body in bodies] if set(bodies) <= set(ids) else None

    return wait_for(found, timeout=20, what="the conversations texted in")


def attempts(database: Database, message_ids: list[str]) -> dict[str, int]:
    with database.connect() as conn:
        rows = conn.execute("SELECT message_id::text, attempts FROM commhub_outbox WHERE message_id::text = ANY(%s)",
                            (message_ids,)).fetchall()
    return dict(rows)


@pytest.mark.timeout(90)
def test_replies_queued_while_twilio_fails_hangs_and_refuses_connections_are_each_delivered_once_after(
        hub, fake, fresh_database):
    owner = demo_login(hub)
    conversations = conversations_texted_in(owner, fake, REPLIES)

    fake.outage = "500"
    replies = {owner.ok("POST", f"/api/v1/conversations/{c}/reply", {"body": f"reply {uuid.uuid4().hex[:8]}"})
               ["message_id"]: c for c in conversations}
    assert len(replies) == REPLIES

    def every_reply_answered(answer: int) -> bool:
        seen = answers_per_message(fake)
        return all(answer in seen.get(m, []) for m in replies)

    wait_for(lambda: every_reply_answered(500), timeout=20, what="every reply to meet a 500")
    fake.outage = "hang"  # longer than COMMHUB_TWILIO_TIMEOUT: the hub gives up on each call
    wait_for(lambda: every_reply_answered(-1), timeout=30, what="every reply to meet a hanging Twilio")
    fake.stop()  # connection refused
    tried = attempts(fresh_database, list(replies))
    wait_for(lambda: all(n > tried[m] for m, n in attempts(fresh_database, list(replies)).items()), timeout=30,
             what="every reply to be tried while Twilio refuses connections")
    assert fake.accepted() == []

    fake.outage = None
    fake.start()  # back, on the same port
    for message_id, conversation_id in replies.items():
        def delivered(m: str = message_id, c: str = conversation_id) -> bool:
            return any(row["message_id"] == m and row["status"] == "delivered" for row in owner.messages(c))

        wait_for(delivered, timeout=30, what="the reply to be delivered after the outage")
    time.sleep(0.5)  # a second send of any of them would have happened by now

    assert accepted_per_message(fake) == {m: 1 for m in replies}
    owner.close()
