"""A ``commhub worker`` (projections, outbox, reminders) killed with SIGKILL at random points while
webhooks and replies keep arriving, and started again each time: afterwards every read model equals a
rebuild from zero, and no reply reached Twilio twice (nor was any lost)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.postgres import Database
from tests.e2e.api_support import Api, phone_number, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_twilio import FakeTwilio
from tests.faults.conftest import (
    login_once_projected,
    settled,
    PUBLIC,
    StartedWorker,
    accepted_per_message,
    hub_env,
    rebuilt_equals_live,
    start_worker,
)

KILLS = 3
CUSTOMERS = 6
LEASE = "3"  # seconds before a dead worker's claimed outbox rows are taken up again


@pytest.fixture
def api_only(tmp_path: Path, fresh_database: Database, session_kek: str, fake: FakeTwilio) -> Iterator[Server]:
    """``commhub serve --no-workers``: the API alone, which Twilio's webhooks and status callbacks reach."""
    env = hub_env(fresh_database, session_kek, fake, COMMHUB_OUTBOX_LEASE_SECONDS=LEASE)
    (tmp_path / "api").mkdir()
    server = start_server(tmp_path / "api", env, "--demo", "--no-workers")
    fake.proxy = (PUBLIC, server.url)
    yield server
    stop_server(server)


class Traffic:
    """Customers texting in and agents replying, in a thread, until stopped."""

    def __init__(self, owner: Api, fake: FakeTwilio, number: str, conversations: dict[str, str]) -> None:
        self.owner, self.fake, self.number, self.conversations = owner, fake, number, conversations
        self.replies: list[str] = []
        self.texts = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._text_in, name="texts", daemon=True),
                        threading.Thread(target=self._reply, name="replies", daemon=True)]

    def _text_in(self) -> None:
        while not self.stopping.is_set():
            sender = random.choice(list(self.conversations))
            response = self.fake.inbound_sms(PUBLIC, sender=sender, to=self.number, body=f"more {uuid.uuid4().hex}")
            assert response.status_code == 200, response.text
            self.texts += 1

    def _reply(self) -> None:
        while not self.stopping.is_set():
            conversation_id = random.choice(list(self.conversations.values()))
            reply = self.owner.ok("POST", f"/api/v1/conversations/{conversation_id}/reply",
                                  {"body": f"answer {uuid.uuid4().hex[:8]}"})
            assert reply["status"] == "queued"
            self.replies.append(reply["message_id"])

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def running(self) -> bool:
        return all(thread.is_alive() for thread in self.threads)


@pytest.mark.timeout(120)
def test_after_a_worker_is_killed_again_and_again_under_traffic_read_models_equal_a_rebuild_and_nothing_is_sent_twice(
        tmp_path, api_only, fake, fresh_database, session_kek):
    env = hub_env(fresh_database, session_kek, fake, COMMHUB_OUTBOX_LEASE_SECONDS=LEASE)
    worker: StartedWorker = start_worker(tmp_path / "worker", env)
    try:
        owner = wait_for(lambda: login_once_projected(api_only), timeout=20, what="the worker to project the staff")
        number = phone_number()
        owner.ok("POST", "/api/v1/sms/numbers", {"number": number})
        first = {phone_number(): f"hello {uuid.uuid4().hex}" for _ in range(CUSTOMERS)}
        for sender, body in first.items():
            assert fake.inbound_sms(PUBLIC, sender=sender, to=number, body=body).status_code == 200
        conversations = wait_for(lambda: _conversations(owner, first), timeout=20, what="the first conversations")

        with Traffic(owner, fake, number, conversations) as traffic:
            for _ in range(KILLS):
                before = traffic.texts
                wait_for(lambda: traffic.texts > before + 3, timeout=30, what="traffic while the worker runs")
                time.sleep(random.uniform(0.1, 1.2))  # a random point in the worker's work
                worker.kill()
                # Half the time the next one is killed again before it could even report that it runs.
                worker = start_worker(tmp_path / "worker", env, wait=random.random() < 0.5)
            assert traffic.running(), "the traffic stopped early"
        assert traffic.texts >= KILLS and len(traffic.replies) >= KILLS

        def finished() -> bool:
            return (settled(fresh_database) and set(accepted_per_message(fake)) >= set(traffic.replies)
                    and len(fake.callback_answers) >= 2 * len(fake.accepted()) and settled(fresh_database))

        try:
            wait_for(finished, timeout=40, what="the last worker to catch up and send every reply")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: {_progress(fresh_database, fake, traffic.replies)}\n"
                                 f"{worker.log()[-2000:]}") from None
        worker.stop()
        owner.close()
    finally:
        worker.stop()

    stop_server(api_only)  # nothing may write while the read models are compared
    accepted = accepted_per_message(fake)
    assert set(accepted) == set(traffic.replies), "a reply was lost or a message nobody queued was sent"
    assert [m for m, count in accepted.items() if count > 1] == [], "a reply reached Twilio twice"
    rebuilt_equals_live(fresh_database, session_kek, tmp_path)


def _conversations(owner: Api, first: dict[str, str]) -> dict[str, str] | None:
    """Each customer's conversation, found by the message they opened it with."""
    rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=sms&limit=200")["items"]
    by_preview = {row["preview"]: row["conversation_id"] for row in rows}
    if not set(first.values()) <= set(by_preview):
        return None
    return {sender: by_preview[body] for sender, body in first.items()}


def _progress(database: Database, fake: FakeTwilio, replies: list[str]) -> str:
    """Where the pipeline stands, for a failure message."""
    with database.connect() as conn:
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM commhub_events").fetchone()[0]
        positions = conn.execute("SELECT name, position FROM commhub_projection_positions").fetchall()
        outbox = conn.execute("SELECT message_id::text, status, attempts, next_attempt_at, last_error FROM commhub_outbox"
                              " WHERE status = 'pending'").fetchall()
    unsent = set(replies) - set(accepted_per_message(fake))
    return (f"head {head}, positions {positions}, pending {outbox}, unsent {unsent}, "
            f"callbacks {len(fake.callback_answers)} of {2 * len(fake.accepted())}, {len(fake.messages())} requests")
