"""API keys and outbound webhooks against real server processes: a key works within its scopes and
workspace, is audited as itself and stops at once when revoked (in every process); a subscriber on
loopback receives signed deliveries that the README's own verification snippet accepts."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from api.api_key_scopes import ROUTE_SCOPES
from domain.integrations import SCOPES
from tests.e2e.api_support import (
    Api,
    add_workspace,
    assert_problem,
    demo_login,
    example,
    operations,
    phone_number,
    unique,
    wait_for,
)
from tests.e2e.conftest import Server, start_server, stop_server
from tests.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "webhooks" / "events.schema.json").read_text())


@pytest.fixture(scope="module")
def env(server_url: str, session_kek: str) -> Iterator[dict[str, str]]:
    from adapters.postgres import Database

    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    yield {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           "COMMHUB_WEBHOOK_ALLOW_PRIVATE": "on", "COMMHUB_WEBHOOK_BASE_DELAY": "0.2",
           "COMMHUB_WEBHOOK_MAX_DELAY": "1"}
    database.drop_schema()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("integrations"), env, "--demo")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[Api]:
    with demo_login(server) as api:
        yield api


def issue(owner: Api, scopes: list[str], name: str = "Integration") -> dict[str, Any]:
    return owner.ok("POST", "/api/v1/api-keys", {"name": name, "scopes": scopes})


def as_key(server: Server, secret: str) -> Api:
    return Api(server.url, secret)


def test_an_api_key_works_within_its_scope_is_audited_as_itself_and_is_refused_everywhere_once_revoked(
        server, owner, env, tmp_path):
    contact = owner.ok("POST", "/api/v1/contacts", {"name": unique("Keyed Contact"), "phone": phone_number()})
    created = issue(owner, ["contacts:read"], "CRM sync")
    assert created["secret"].startswith("chk_") and len(created["secret"]) > 40
    assert created["hint"] == created["secret"][:8] and created["scopes"] == ["contacts:read"]

    other = start_server(tmp_path, env, "--no-workers")  # a second process on the same database
    try:
        with as_key(server, created["secret"]) as key, as_key(other, created["secret"]) as key_elsewhere:
            assert key.ok("GET", f"/api/v1/contacts/{contact['contact_id']}")["name"] == contact["name"]
            assert key_elsewhere.ok("GET", "/api/v1/contacts")["items"]
            assert_problem(key.post("/api/v1/contacts", {"name": "Not allowed"}), 403)
            assert_problem(key.get("/api/v1/staff"), 403)
            assert_problem(key.post("/api/v1/api-keys", {"name": "escalate", "scopes": ["contacts:write"]}), 403)
            assert_problem(key.get("/api/v1/auth/me"), 403)

            listed = {k["key_id"]: k for k in owner.ok("GET", "/api/v1/api-keys")["items"]}
            assert created["secret"] not in json.dumps(listed)
            assert listed[created["key_id"]]["last_used_at"] is not None
            assert listed[created["key_id"]]["revoked_at"] is None

            entries = owner.ok("GET", "/api/v1/audit", params={"actor_id": created["key_id"]})["items"]
            viewed = [e for e in entries if e["action"] == "contact.viewed"]
            assert viewed and viewed[0]["via"] == "api_key" and viewed[0]["subject_ids"] == [contact["contact_id"]]
            issued = owner.ok("GET", "/api/v1/audit", params={"action": "api_key.issued"})["items"]
            assert created["key_id"] in [e["target_id"] for e in issued]

            revoked = owner.ok("POST", f"/api/v1/api-keys/{created['key_id']}/revoke")
            assert revoked["revoked_at"] is not None
            assert_problem(key.get("/api/v1/contacts"), 401)
            assert_problem(key_elsewhere.get("/api/v1/contacts"), 401)
            revocations = owner.ok("GET", "/api/v1/audit", params={"action": "api_key.revoked"})["items"]
            assert created["key_id"] in [e["target_id"] for e in revocations]
    finally:
        stop_server(other)
    for line in server.log().splitlines() + other.log().splitlines():
        assert created["secret"] not in line and contact["name"] not in line


def test_each_scope_reaches_exactly_its_routes_and_every_other_route_answers_403(server, owner):
    ops = [op for op in operations(server.url)
           if op.path.startswith("/api/v1/") and op.path != "/api/v1/auth/login"]
    assert len([op for op in ops if (op.method, op.path) in ROUTE_SCOPES]) == len(ROUTE_SCOPES)
    wrong: list[str] = []
    for scope in SCOPES:
        with as_key(server, issue(owner, [scope], f"only {scope}")["secret"]) as key:
            for op in ops:
                body = example(op, op.body_schema, lambda _field: str(uuid.uuid4()))
                if isinstance(body, dict) and "url" in body:
                    body["url"] = "not a url"  # never subscribe anything here
                response = key.request(op.method, op.url({}), json=body)
                allowed = ROUTE_SCOPES.get((op.method, op.path)) == scope
                if allowed and response.status_code in (401, 403):
                    wrong.append(f"{scope}: {op} refused ({response.status_code})")
                if not allowed and response.status_code != 403:
                    wrong.append(f"{scope}: {op} answered {response.status_code}, not 403")
                if response.status_code >= 500:
                    wrong.append(f"{scope}: {op} failed with {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_a_key_sees_nothing_of_another_workspace(server, owner, tmp_path):
    b = add_workspace(server, tmp_path, name="Second Clinic", slug=unique("second"), email="owner@second.example",
                      password="second clinic password")
    theirs = b.ok("POST", "/api/v1/contacts", {"name": unique("Their Contact")})
    b_subscription = b.ok("POST", "/api/v1/webhooks", {"url": "https://hooks.second.example/x",
                                                       "event_types": ["contact.created"]})
    with as_key(server, issue(owner, list(SCOPES), "everything")["secret"]) as key:
        assert_problem(key.get(f"/api/v1/contacts/{theirs['contact_id']}"), 404)
        assert_problem(key.get(f"/api/v1/webhooks/{b_subscription['subscription_id']}"), 404)
        assert_problem(key.get(f"/api/v1/webhooks/{b_subscription['subscription_id']}/deliveries"), 404)
        assert theirs["contact_id"] not in key.get("/api/v1/contacts").text
        assert b_subscription["subscription_id"] not in key.get("/api/v1/webhooks").text
    with b:
        assert_problem(b.post(f"/api/v1/api-keys/{uuid.uuid4()}/revoke"), 404)


def readme_snippet() -> dict[str, Any]:
    """The verification snippet of the README's "Outbound webhooks" section, run as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Outbound webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the documented code is the test subject)
    return namespace


def test_a_subscriber_receives_signed_deliveries_it_can_verify_with_the_readme_snippet(server, owner):
    verify = readme_snippet()["verify_commhub_webhook"]
    scopes = ["webhooks:manage", "contacts:write", "messages:send", "appointments:write"]
    with WebhookReceiver(plan=[500]) as receiver, as_key(server, issue(owner, scopes, "hooks")["secret"]) as key:
        subscription = key.ok("POST", "/api/v1/webhooks", {
            "url": receiver.url("/commhub?team=7"), "event_types": list(SCHEMA_TYPES), "description": "CRM"})
        secret = subscription["secret"]
        assert secret.startswith("whsec_")
        assert secret not in json.dumps(key.ok("GET", "/api/v1/webhooks"))

        name, text, reply = unique("Webhook Person"), unique("Is my appointment on?"), unique("Yes it is")
        phone = phone_number()
        inbound = owner.inbound(phone, text, name=name)
        contact_id = inbound["contact_id"]
        key.ok("POST", f"/api/v1/contacts/{contact_id}/consents", {
            "channel": "sms", "purpose": "marketing", "granted": True, "source": "web form", "wording": "Yes"})
        key.ok("POST", f"/api/v1/conversations/{inbound['conversation_id']}/reply", {"body": reply})
        start = datetime.now(UTC) + timedelta(days=3)
        booked = key.ok("POST", "/api/v1/appointments", {
            "contact_id": contact_id, "service": "Knee review", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=30)).isoformat(), "time_zone": "Europe/London"})
        key.ok("POST", f"/api/v1/appointments/{booked['appointment_id']}/cancel", {"reason": "better now"})

        wanted = {"contact.created", "message.received", "consent.changed", "message.sent", "appointment.booked",
                  "appointment.cancelled"}
        receiver.wait_for(lambda got: wanted <= {r.headers["commhub-event-type"] for r in got}
                          and len(got) > len({r.headers["commhub-event-id"] for r in got}), timeout=20)
        seen: set[str] = set()
        firsts = {}
        for request in receiver.received:
            assert request.path == "/commhub?team=7"
            headers = httpx.Headers(request.headers)
            jsonschema.validate(request.json, SCHEMA, format_checker=jsonschema.FormatChecker())
            assert verify(secret, headers, request.body, seen) is (request.headers["commhub-event-id"]
                                                                  not in firsts)
            firsts.setdefault(request.headers["commhub-event-id"], request)
            for personal in (name, text, reply, phone, "Knee review", "better now"):
                assert personal not in request.body.decode()
        assert len(receiver.received) == len(firsts) + 1, "only the first attempt, answered 500, came twice"

        sample = next(iter(firsts.values()))
        headers = httpx.Headers(sample.headers)
        with pytest.raises(ValueError):
            verify(secret, headers, sample.body.replace(b'"type"', b'"typo"'), set())
        stale = int(time.time()) - 600
        stale_mac = hmac.new(secret.encode(), f"{stale}.".encode() + sample.body, hashlib.sha256).hexdigest()
        with pytest.raises(ValueError):
            verify(secret, httpx.Headers({**sample.headers, "commhub-signature": f"t={stale},v1={stale_mac}"}),
                   sample.body, set())
        with pytest.raises(ValueError):
            verify("whsec_someone-else", headers, sample.body, set())

        path = f"/api/v1/webhooks/{subscription['subscription_id']}/deliveries"
        deliveries = wait_for(lambda: [items for items in [key.ok("GET", path)["items"]]
                                       if all(d["state"] == "delivered" for d in items)], what="delivered")[0]
        assert {d["event_type"] for d in deliveries} >= wanted
        retried = [d for d in deliveries if len(d["attempt_log"]) == 2]
        assert len(retried) == 1
        first, second = retried[0]["attempt_log"]
        assert (first["http_status"], second["http_status"]) == (500, 200)
        assert first["next_retry_at"] is not None and first["duration_ms"] >= 0
        rotated = key.ok("POST", f"/api/v1/webhooks/{subscription['subscription_id']}/secret")
        assert rotated["secret"] != secret and rotated["secret_rotated_at"] > subscription["secret_rotated_at"]
        key.ok("DELETE", f"/api/v1/webhooks/{subscription['subscription_id']}")
        assert_problem(key.get(f"/api/v1/webhooks/{subscription['subscription_id']}"), 404)


def test_bad_subscriptions_are_refused_with_problems(owner):
    for body in ({"url": "ftp://example.com/x", "event_types": ["contact.created"]},
                 {"url": "https://user:pw@example.com/x", "event_types": ["contact.created"]},
                 {"url": "https://example.com/x", "event_types": ["contact.deleted"]},
                 {"url": "https://example.com/x", "event_types": []}):
        assert_problem(owner.post("/api/v1/webhooks", body), 422)
    assert_problem(owner.post("/api/v1/api-keys", {"name": "x", "scopes": ["staff:manage"]}), 422)
    assert_problem(owner.patch(f"/api/v1/webhooks/{uuid.uuid4()}", {"active": False}), 404)


SCHEMA_TYPES = [one["$ref"].rsplit("/", 1)[1].replace("_", ".", 1) for one in SCHEMA["oneOf"]]


def test_calendar_and_fhir_urls_on_this_machine_are_refused_unless_the_operator_allows_them(owner):
    # This server allows private webhook destinations only: a calendar or an EHR on loopback is a
    # way into the hub's own network (SSRF) and is refused before any connection is made.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        refused = owner.request("PUT", f"/api/v1/caldav/connections/{owner.me['staff_id']}",
                                json={"collection_url": f"http://localhost:{port}/dav/cal/", "username": "u",
                                      "password": "p"})
        problem = assert_problem(refused, 422)
        assert problem["code"] == "caldav_destination_refused" and "COMMHUB_CALDAV_ALLOW_PRIVATE" in problem["detail"]
        assert owner.ok("GET", "/api/v1/caldav/connections")["items"] == []

        for base_url in (f"http://127.0.0.1:{port}/fhir", "http://169.254.169.254/latest"):
            problem = assert_problem(owner.request("PUT", "/api/v1/integrations/fhir/write-back",
                                                   json={"base_url": base_url, "token": "t0ken"}), 422)
            assert problem["code"] == "fhir_destination_refused" and "COMMHUB_FHIR_ALLOW_PRIVATE" in problem["detail"]
        assert owner.request("GET", "/api/v1/integrations/fhir/write-back").status_code == 404
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
