"""Messenger and Instagram contacts named from their Meta profiles, against PostgreSQL and the fake
Graph API on loopback: the page's token reads the profile once, an agent's name / an erasure / a
restriction is never overridden or looked up, throttling is retried, a refusal ends the lookup, and
a rebuild reads nothing again."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from adapters.meta_profiles import MetaProfileWorker, profile_name
from api.bootstrap import Hub, bootstrap
from domain.social import Platform
from tests.fake_meta import FakeMeta
from tests.integration.helpers import NOW
from tests.integration.test_erasure_workflow import erase
from tests.integration.test_meta_channel import connected, inbound


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    meta = FakeMeta().start()
    yield meta
    meta.stop()


@pytest.fixture
def isolated_hub(settings, fresh_database) -> Iterator[Hub]:
    """A schema of its own: no other test's senders are in the lookup queue."""
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def worker(hub: Hub, fake: FakeMeta, **options) -> MetaProfileWorker:
    return MetaProfileWorker(hub.app, hub.database, hub.extras["meta"].accounts, graph_url=fake.graph_url,
                             timeout=2, **{"base_delay": 0.0, **options})


def name_of(hub: Hub, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    return hub.app.get_contact(workspace_id, contact_id).name


def lookups(hub: Hub) -> dict[uuid.UUID, tuple[str, str | None, int]]:
    """Each queued contact's lookup: state, outcome, attempts."""
    with hub.database.connection() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(
            "SELECT contact_id, state, outcome, attempts FROM commhub_meta_profile_lookups")}


def test_messenger_and_instagram_senders_get_the_names_on_their_profiles_once(isolated_hub, fake):
    hub = isolated_hub
    workspace_id, page = connected(hub, fake, "messenger")
    fake.profile(page, "2002", first_name="Ada", last_name="Lovelace", profile_pic="https://cdn.example/a.jpg")
    instagram, token = fake.account("instagram")  # the same workspace's second account
    hub.app.connect_meta_account(workspace_id, "instagram", instagram, NOW)
    hub.extras["meta"].accounts.save(workspace_id, "instagram", instagram, token, NOW)
    fake.profile(instagram, "3003", name="Grace Hopper", username="amazing_grace")
    fake.profile(instagram, "3004", username="only_a_handle")

    ada = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "2002", "Hello")
    grace = inbound(hub.app, workspace_id, Platform.INSTAGRAM, instagram, "3003", "Hi")
    handle = inbound(hub.app, workspace_id, Platform.INSTAGRAM, instagram, "3004", "Hey")
    assert name_of(hub, workspace_id, ada.contact_id) == "Messenger contact"
    hub.projections.catch_up()
    assert worker(hub, fake).run_once() == 3

    assert name_of(hub, workspace_id, ada.contact_id) == "Ada Lovelace"
    assert name_of(hub, workspace_id, grace.contact_id) == "Grace Hopper"
    assert name_of(hub, workspace_id, handle.contact_id) == "only_a_handle"
    assert sorted(fake.profile_reads) == sorted([(page, "2002", "first_name,last_name"),
                                                 (instagram, "3003", "name,username"),
                                                 (instagram, "3004", "name,username")])
    assert [state for state, _, _ in lookups(hub).values()] == ["done"] * 3

    inbound(hub.app, workspace_id, Platform.MESSENGER, page, "2002", "Me again")  # a known sender: no new lookup
    hub.projections.rebuild("meta_profiles")
    assert worker(hub, fake).run_once() == 0
    assert len(fake.profile_reads) == 3


def test_an_agents_name_an_erasure_and_a_restriction_are_never_overridden_nor_looked_up(isolated_hub, fake):
    hub = isolated_hub
    workspace_id, page = connected(hub, fake, "messenger")
    for psid in ("5001", "5002", "5003"):
        fake.profile(page, psid, first_name="From", last_name="Meta")
    named = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "5001", "Hello")
    erased = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "5002", "Hello")
    restricted = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "5003", "Hello")
    hub.app.rectify_contact(workspace_id, named.contact_id, {"name": "Named By Agent"}, None, NOW)
    assert erase(hub, workspace_id, erased.contact_id).status == "completed"
    hub.app.restrict_processing(workspace_id, restricted.contact_id, "disputed accuracy", None, NOW)
    hub.projections.catch_up()

    worker(hub, fake).run_once()
    assert fake.profile_reads == []
    assert name_of(hub, workspace_id, named.contact_id) == "Named By Agent"
    assert name_of(hub, workspace_id, restricted.contact_id) == "Messenger contact"
    assert {state for state, _, _ in lookups(hub).values()} == {"done"}


def test_throttling_is_retried_and_a_refusal_ends_the_lookup_with_nothing_personal_logged(isolated_hub, fake,
                                                                                          caplog):
    hub = isolated_hub
    workspace_id, page = connected(hub, fake, "messenger")
    fake.profile(page, "6001", first_name="Retried", last_name="Later")
    fake.profile(page, "6002", first_name="Never", last_name="Read")
    caplog.set_level(logging.DEBUG)
    throttled = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "6001", "Hello")
    hub.projections.catch_up()
    fake.answer_next_profile_reads("400:613")  # Meta's rate limit
    lookup = worker(hub, fake)
    assert lookup.run_once() == 1
    assert name_of(hub, workspace_id, throttled.contact_id) == "Messenger contact"
    assert lookups(hub) == {throttled.contact_id: ("pending", "http_400 meta 613", 1)}
    assert lookup.run_once() == 1
    assert name_of(hub, workspace_id, throttled.contact_id) == "Retried Later"

    refused = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "6002", "Hello")
    hub.projections.catch_up()
    fake.answer_next_profile_reads("400:10")  # the page lacks the permission to read profiles
    assert lookup.run_once() == 1
    assert lookup.run_once() == 0  # not retried
    assert name_of(hub, workspace_id, refused.contact_id) == "Messenger contact"
    assert lookups(hub)[refused.contact_id] == ("failed", "http_400 meta 10", 1)
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("adapters", "api", "domain", "projections")]
    assert any(r.name == "adapters.meta_profiles" for r in ours)  # it did log the retry and the refusal
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)  # (httpx is held at WARNING by api.logs)
    for secret in ("6001", "6002", "Retried", "Never", fake.tokens[page]):
        assert secret not in logged


@pytest.mark.parametrize(("platform", "body", "expected"), [
    (Platform.MESSENGER, {"first_name": " Ada ", "last_name": "Lovelace"}, "Ada Lovelace"),
    (Platform.MESSENGER, {"first_name": "Cher"}, "Cher"),
    (Platform.MESSENGER, {"first_name": "", "last_name": ""}, None),
    (Platform.INSTAGRAM, {"name": "Grace\u0000 Hopper\n", "username": "g"}, "Grace Hopper"),
    (Platform.INSTAGRAM, {"username": "handle"}, "handle"),
    (Platform.INSTAGRAM, {"name": 42}, None),
    (Platform.MESSENGER, ["not", "a", "profile"], None),
    (Platform.MESSENGER, {"first_name": "x" * 500}, "x" * 200),
])
def test_a_profile_answer_becomes_a_clean_name_or_none(platform, body, expected):
    assert profile_name(platform, body) == expected


@pytest.mark.parametrize("odd", ["9/../2002", "me", ".."])
def test_a_sender_id_that_is_not_a_meta_id_is_never_sent_to_the_graph_api(isolated_hub, fake, odd):
    """Meta's ids are digits; anything else could name another Graph object for the page's token
    ("me" is the page itself, ".." is dropped from the path by URL normalisation)."""
    hub = isolated_hub
    workspace_id, page = connected(hub, fake, "messenger")
    fake.profile(page, "2002", first_name="Ada", last_name="Lovelace")
    received = inbound(hub.app, workspace_id, Platform.MESSENGER, page, odd, "Hello")
    hub.projections.catch_up()
    assert worker(hub, fake).run_once() == 1
    assert fake.profile_reads == [] and fake.get_paths == []
    assert name_of(hub, workspace_id, received.contact_id) == "Messenger contact"
    assert lookups(hub)[received.contact_id] == ("failed", "bad_id", 1)


def test_a_row_that_breaks_neither_stops_the_batch_nor_comes_back_for_ever(isolated_hub, fake):
    hub = isolated_hub
    workspace_id, page = connected(hub, fake, "messenger")
    fake.profile(page, "7001", first_name="Still", last_name="Named")
    missing = uuid.uuid4()  # a row this version cannot read (a platform it does not know), first in the queue
    with hub.database.connection() as conn:
        conn.execute("INSERT INTO commhub_meta_profile_lookups (contact_id, platform, account_id, workspace_id,"
                     " created_at, due_at) VALUES (%s, 'threads', %s, %s, %s, %s)",
                     (missing, page, workspace_id, NOW, NOW))
    named = inbound(hub.app, workspace_id, Platform.MESSENGER, page, "7001", "Hello")
    hub.projections.catch_up()
    lookup = worker(hub, fake, max_attempts=2)
    assert lookup.run_once() == 2
    assert name_of(hub, workspace_id, named.contact_id) == "Still Named"
    state, outcome, attempts = lookups(hub)[missing]
    assert (state, attempts) == ("pending", 1) and outcome.startswith("error ")
    assert lookup.run_once() == 1
    assert lookups(hub)[missing][:2] == ("failed", outcome)
    assert lookup.run_once() == 0
