"""Two ``commhub worker`` processes racing for the same outbox rows (and projecting the same events):
no reply reaches Twilio twice, counted at the fake, and the read models equal a rebuild.

Each worker talks to its own fake Twilio (same account and token), so the test also sees that both took
part. Two processes racing for the same *reminder* rows are covered by
``tests/integration/test_reminders.py::test_two_worker_processes_never_send_the_same_reminder``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.postgres import Database
from tests.e2e.api_support import phone_number, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_twilio import FakeTwilio
from tests.faults.conftest import (
    PUBLIC,
    accepted_per_message,
    hub_env,
    login_once_projected,
    rebuilt_equals_live,
    settled,
    start_worker,
)

CUSTOMERS = 10
REPLIES = 40


@pytest.fixture
def second_fake(fake: FakeTwilio) -> Iterator[FakeTwilio]:
    twilio = FakeTwilio(account_sid=fake.account_sid, auth_token=fake.auth_token).start()
    yield twilio
    twilio.stop()


@pytest.fixture
def api_only(tmp_path: Path, fresh_database: Database, session_kek: str, fake: FakeTwilio,
             second_fake: FakeTwilio) -> Iterator[Server]:
    (tmp_path / "api").mkdir()
    server = start_server(tmp_path / "api", hub_env(fresh_database, session_kek, fake), "--demo", "--no-workers")
    fake.proxy = second_fake.proxy = (PUBLIC, server.url)
    yield server
    stop_server(server)


@pytest.mark.timeout(90)
def test_two_workers_racing_for_the_same_outbox_rows_send_each_reply_exactly_once(
        tmp_path, api_only, fake, second_fake, fresh_database, session_kek):
    fake.delay_seconds = second_fake.delay_seconds = 0.03  # each send takes a while: claims overlap
    workers = [start_worker(tmp_path / name, hub_env(fresh_database, session_kek, twilio))
               for name, twilio in (("first", fake), ("second", second_fake))]
    try:
        owner = wait_for(lambda: login_once_projected(api_only), timeout=20, what="the workers to project the staff")
        number = phone_number()
        owner.ok("POST", "/api/v1/sms/numbers", {"number": number})
        first = [f"race {i} {uuid.uuid4().hex}" for i in range(CUSTOMERS)]
        for body in first:
            assert fake.inbound_sms(PUBLIC, sender=phone_number(), to=number, body=body).status_code == 200

        def conversations() -> list[str] | None:
            rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=sms&limit=200")["items"]
            ids = {row["preview"]: row["conversation_id"] for row in rows}
            return [ids[body] for body in first] if set(first) <= set(ids) else None

        targets = wait_for(conversations, timeout=20, what="the conversations")

        def reply(index: int) -> str:
            answer = owner.ok("POST", f"/api/v1/conversations/{targets[index % CUSTOMERS]}/reply",
                              {"body": f"answer {index}"})
            assert answer["status"] == "queued"
            return answer["message_id"]

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(reply, range(REPLIES)))

        def all_sent_and_called_back() -> bool:
            sent = accepted_per_message(fake, second_fake)
            callbacks = len(fake.callback_answers) + len(second_fake.callback_answers)
            return set(sent) >= set(replies) and callbacks >= 2 * sum(sent.values())

        wait_for(all_sent_and_called_back, timeout=40, what="every reply to be sent and its callbacks answered")
        wait_for(lambda: settled(fresh_database), timeout=20, what="the workers to finish projecting")
        owner.close()
    finally:
        for worker in workers:
            worker.stop()
    stop_server(api_only)

    sent = accepted_per_message(fake, second_fake)
    assert sent == {message_id: 1 for message_id in replies}, "a reply was sent twice (or lost)"
    assert accepted_per_message(fake) and accepted_per_message(second_fake), "only one worker ever sent"
    rebuilt_equals_live(fresh_database, session_kek, tmp_path)
