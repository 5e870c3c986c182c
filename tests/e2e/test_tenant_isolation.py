"""Tenant isolation: staff of workspace B, however they ask, never see or change workspace A's data."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.api_support import (
    AgentSocket,
    Api,
    add_workspace,
    assert_problem,
    demo_credentials,
    demo_login,
    example,
    operations,
    phone_number,
    serving_demo,
    unique,
)
from tests.e2e.conftest import Server
from tests.radicale_server import Radicale

CONTACTS = "/api/v1/contacts"
CONVERSATIONS = "/api/v1/conversations"
PASSWORD = "workspace b password"


@dataclass
class WorkspaceA:
    """What workspace A holds: its ids, and every piece of text that must never reach B."""

    ids: dict[str, str]
    secrets: list[str] = field(default_factory=list)

    def leaked(self, text: str) -> list[str]:
        return [secret for secret in self.secrets + list(self.ids.values()) if secret in text]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    """One server for the module: each test only adds data, and compares A's data before and after."""
    with serving_demo(tmp_path_factory.mktemp("tenants"), server_url, session_kek,
                      COMMHUB_CALDAV_ALLOW_PRIVATE="on") as running:  # Radicale listens on loopback
        yield running


@pytest.fixture(scope="module")
def tenants(server, tmp_path_factory) -> Iterator[tuple[Api, Api, WorkspaceA]]:
    a = demo_login(server)
    b = add_workspace(server, tmp_path_factory.mktemp("b"), name="Other Practice", slug=unique("other"),
                      email="owner@other.example", password=PASSWORD)
    phone, email = phone_number(), f"{unique('alice')}@a.example"
    name, second_name = unique("Alice Aardvark"), unique("Albert Aardvark")
    note, body, reply = unique("A private note"), unique("A private message"), unique("A private reply")
    canned_title, canned_body = unique("A canned title"), unique("A canned body")
    staff_name, staff_email = unique("A Staff"), f"{unique('a-staff')}@a.example"
    contact = a.ok("POST", CONTACTS, {"name": name, "phone": phone, "email": email})
    a.ok("POST", f"{CONTACTS}/{contact['contact_id']}/notes", {"text": note})
    a.ok("POST", f"{CONTACTS}/{contact['contact_id']}/tags", {"add": ["a-tag"]})
    second = a.ok("POST", CONTACTS, {"name": second_name})
    inbound = a.inbound(phone, body, provider_message_id="a-provider-id")
    a.ok("POST", f"{CONVERSATIONS}/{inbound['conversation_id']}/reply", {"body": reply})
    canned = a.ok("POST", "/api/v1/canned-responses", {"title": canned_title, "body": canned_body})
    staff = a.ok("POST", "/api/v1/staff", {"name": staff_name, "email": staff_email, "role": "agent",
                                           "password": "a long enough password"})
    key = a.ok("POST", "/api/v1/api-keys", {"name": unique("A key"), "scopes": ["contacts:read"]})
    hook = a.ok("POST", "/api/v1/webhooks", {"url": f"https://{unique('a-hooks')}.invalid/in",
                                             "event_types": ["contact.created"]})
    assert inbound["contact_id"] == contact["contact_id"]
    appointment = a.ok("POST", "/api/v1/appointments", {
        "contact_id": contact["contact_id"], "service": "A service", "starts_at": "2031-01-02T10:00:00+00:00",
        "ends_at": "2031-01-02T10:30:00+00:00", "staff_id": a.me["staff_id"]})
    ids = {"key_id": key["key_id"], "subscription_id": hook["subscription_id"],
           "appointment_id": appointment["appointment_id"], "contact_id": contact["contact_id"],
           "conversation_id": inbound["conversation_id"],
           "message_id": inbound["message_id"], "response_id": canned["response_id"], "staff_id": staff["staff_id"],
           "duplicate_id": second["contact_id"], "assignee_id": staff["staff_id"], "owner_id": a.me["staff_id"],
           "workspace_id": a.me["workspace_id"]}
    secrets = [phone, phone[3:], email, name, second_name, note, body, reply, canned_title, canned_body, staff_name,
               staff_email, demo_credentials(server)["email"], "Demo Clinic", "Ada Lovelace", "a-tag",
               key["secret"], hook["secret"], hook["url"]]
    yield a, b, WorkspaceA(ids, secrets)
    a.close()
    b.close()


def snapshot(a: Api, ids: dict[str, str]) -> dict[str, Any]:
    """Workspace A's data as A sees it, to compare before and after B's attempts."""
    return {
        "contact": a.ok("GET", f"{CONTACTS}/{ids['contact_id']}"),
        "duplicate": a.ok("GET", f"{CONTACTS}/{ids['duplicate_id']}"),
        "timeline": a.ok("GET", f"{CONTACTS}/{ids['contact_id']}/timeline")["items"],
        "conversation": a.ok("GET", f"{CONVERSATIONS}/{ids['conversation_id']}"),
        "messages": [(m["message_id"], m["kind"], m["body"]) for m in a.messages(ids["conversation_id"])],
        "canned": a.ok("GET", "/api/v1/canned-responses")["items"],
        "staff": a.ok("GET", "/api/v1/staff")["items"],
        "keys": [(k["key_id"], k["revoked_at"]) for k in a.ok("GET", "/api/v1/api-keys")["items"]],
        "webhooks": a.ok("GET", "/api/v1/webhooks")["items"],
    }


def test_every_route_given_workspace_a_ids_and_a_workspace_b_token_answers_not_found(tenants, server):
    a, b, workspace_a = tenants
    before = snapshot(a, workspace_a.ids)
    answers: list[str] = []
    leaks: list[str] = []
    for op in operations(server.url):
        token = b.token
        if op.path.endswith("/logout"):  # logging out would end B's session for the routes after it
            token = _fresh_token(b, server)
        body = example(op, op.body_schema, lambda f: workspace_a.ids.get(f, workspace_a.ids["contact_id"]))
        params = {p["name"]: workspace_a.secrets[3] for p in op.query_params if p["name"] == "q"}
        response = httpx.request(op.method, f"{server.url}{op.url(workspace_a.ids)}", json=body, params=params,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=15)
        answers.append(f"{op} -> {response.status_code}")
        leaked = workspace_a.leaked(response.text)
        if leaked:
            leaks.append(f"{op} -> {response.status_code} returned A's {leaked}")
        if op.path_params:
            if response.status_code != 404:
                leaks.append(f"{op} with A's ids -> {response.status_code}, not 404: {response.text[:200]}")
            else:
                assert_problem(response, 404)
        else:
            assert response.status_code < 500, f"{op} -> {response.status_code}"
    assert not leaks, "\n".join(leaks) + "\n\nall answers:\n" + "\n".join(answers)
    assert snapshot(a, workspace_a.ids) == before, "workspace B changed workspace A's data"


def _fresh_token(b: Api, server) -> str:
    response = httpx.post(f"{server.url}/api/v1/auth/login", json={
        "workspace": b.me["workspace_slug"], "email": "owner@other.example", "password": PASSWORD})
    return response.json()["token"]


def test_workspace_b_lists_and_searches_show_nothing_of_workspace_a(tenants):
    a, b, workspace_a = tenants
    own = b.ok("POST", CONTACTS, {"name": unique("Bob of B")})
    b.inbound(phone_number(), unique("B's own message"))
    b.ok("POST", "/api/v1/canned-responses", {"title": unique("B title"), "body": "B body"})
    lists = [
        ("GET", CONTACTS, {}), ("GET", CONTACTS, {"limit": 200}),
        ("GET", CONVERSATIONS, {"view": "all", "limit": 200}), ("GET", CONVERSATIONS, {"view": "unassigned"}),
        ("GET", "/api/v1/staff", {}),
        ("GET", "/api/v1/canned-responses", {}), ("GET", "/api/v1/auth/me", {}),
    ]
    searches = [
        (f"{CONTACTS}/search", {"q": "Aardvark"}), (f"{CONTACTS}/search", {"q": workspace_a.secrets[0]}),
        (f"{CONTACTS}/search", {"q": "a.example"}), (f"{CONVERSATIONS}/search", {"view": "all", "label": "a-tag"}),
    ]
    responses = [(path, params, b.request(method, path, params=params)) for method, path, params in lists]
    responses += [(path, body, b.request("POST", path, json=body)) for path, body in searches]
    for path, params, response in responses:
        assert response.status_code == 200, f"{path} {params}: {response.status_code}"
        assert not workspace_a.leaked(response.text), f"{path} {params} shows A's {workspace_a.leaked(response.text)}"
    assert own["contact_id"] in [c["contact_id"] for c in b.ok("GET", CONTACTS)["items"]]
    assert "owner@other.example" in [s["email"] for s in b.ok("GET", "/api/v1/staff")["items"]]
    # A's own lists are untouched by B's data
    a_contacts = a.ok("GET", CONTACTS, params={"limit": 200}).get("items")
    assert own["contact_id"] not in [c["contact_id"] for c in a_contacts]


def test_workspace_b_cannot_pull_workspace_a_records_into_its_own(tenants):
    a, b, workspace_a = tenants
    before = snapshot(a, workspace_a.ids)
    b_contact = b.ok("POST", CONTACTS, {"name": unique("B contact")})
    b_conversation = b.inbound(phone_number(), "hello B")["conversation_id"]
    merge = b.post(f"{CONTACTS}/{b_contact['contact_id']}/merge", {"duplicate_id": workspace_a.ids["contact_id"]})
    assert_problem(merge, 404)
    assign = b.post(f"{CONVERSATIONS}/{b_conversation}/assign", {"assignee_id": workspace_a.ids["staff_id"]})
    assert_problem(assign, 404)
    assert not workspace_a.leaked(merge.text + assign.text)
    assert b.ok("GET", f"{CONTACTS}/{b_contact['contact_id']}")["merged_into"] is None
    assert snapshot(a, workspace_a.ids) == before


def test_the_same_phone_writing_to_two_workspaces_is_two_separate_contacts(tenants):
    a, b, workspace_a = tenants
    phone = workspace_a.secrets[0]
    in_b = b.inbound(phone, "Hello B, this is a different business", provider_message_id="a-provider-id")
    assert in_b["duplicate"] is False, "a provider message id of workspace A suppressed B's message"
    assert in_b["contact_id"] != workspace_a.ids["contact_id"]
    assert in_b["conversation_id"] != workspace_a.ids["conversation_id"]
    b_contact = b.ok("GET", f"{CONTACTS}/{in_b['contact_id']}")
    assert b_contact["name"] == phone and b_contact["notes"] == [] and b_contact["tags"] == []
    assert not workspace_a.leaked(json.dumps(b_contact).replace(phone, ""))
    a_messages = a.messages(workspace_a.ids["conversation_id"])
    assert "Hello B, this is a different business" not in json.dumps(a_messages)


def test_a_staff_member_of_one_workspace_cannot_log_into_another(tenants, server):
    a, b, workspace_a = tenants
    credentials = demo_credentials(server)
    into_b = httpx.post(f"{server.url}/api/v1/auth/login", json={
        "workspace": b.me["workspace_slug"], "email": credentials["email"], "password": credentials["password"]})
    into_a = httpx.post(f"{server.url}/api/v1/auth/login", json={
        "workspace": credentials["workspace_slug"], "email": "owner@other.example", "password": PASSWORD})
    assert_problem(into_b, 401)
    assert_problem(into_a, 401)


def test_workspace_b_websocket_never_receives_workspace_a_updates(tenants, server):
    a, b, workspace_a = tenants

    async def scenario() -> None:
        socket = AgentSocket(server.url, b.token)
        replayed = await socket.connect(after=0)  # everything B may see, from the very beginning
        assert not workspace_a.leaked(json.dumps(replayed))
        a.inbound(workspace_a.secrets[0], unique("A again"))
        marker = unique("B's live message")
        b.inbound(phone_number(), marker)
        updates = await socket.collect(lambda seen: any(u.get("body") == marker for u in seen), timeout=10)
        assert not workspace_a.leaked(json.dumps(updates)), "B's socket received A's update"
        assert all(u["type"] != "conversation.message_received" or u["body"] == marker for u in updates)
        await socket.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale-tenants")).start()
    yield server
    server.stop()


def test_workspace_b_cannot_see_change_or_remove_workspace_a_calendar_connections(tenants, radicale):
    a, b, workspace_a = tenants
    user, password = radicale.new_user()
    calendar = radicale.make_calendar(user)
    staff_id, appointment_id = workspace_a.ids["owner_id"], workspace_a.ids["appointment_id"]
    path = f"/api/v1/caldav/connections/{staff_id}"
    a.ok("PUT", path, {"collection_url": calendar, "username": user, "password": password})
    workspace_a.secrets += [calendar, user, password]
    before = a.ok("GET", path)
    answers = [
        b.get(path), b.request("DELETE", path),
        b.request("PUT", path, json={"collection_url": calendar, "username": user, "password": password}),
        b.get(f"/api/v1/appointments/{appointment_id}/caldav"),
        b.get("/api/v1/caldav/sync", params={"staff_id": staff_id}),
    ]
    for response in answers[:4]:
        assert_problem(response, 404)
    assert answers[4].status_code == 200 and answers[4].json()["items"] == []
    lists = [b.ok("GET", "/api/v1/caldav/connections"), b.ok("GET", "/api/v1/caldav/sync"),
             b.ok("GET", "/api/v1/caldav/settings")]
    assert not workspace_a.leaked(json.dumps(lists) + "".join(r.text for r in answers))
    assert a.ok("GET", path) == before
    assert [s["staff_id"] for s in a.ok("GET", f"/api/v1/appointments/{appointment_id}/caldav")["items"]] == [staff_id]


def test_workspace_b_cannot_take_see_or_release_workspace_a_meta_accounts(tenants):
    a, b, workspace_a = tenants
    accounts, account = "/api/v1/settings/meta/accounts", str(uuid.uuid4().int)[:15]
    a.ok("POST", accounts, {"platform": "whatsapp", "account_id": account, "access_token": "EAA-a-secret-token"})
    taken = b.post(accounts, {"platform": "whatsapp", "account_id": account, "access_token": "EAA-b-token"})
    assert_problem(taken, 409)
    released = b.post(f"{accounts}/disconnect", {"platform": "whatsapp", "account_id": account})
    assert_problem(released, 404)
    listed = b.get(accounts)
    assert listed.status_code == 200 and account not in listed.text
    assert not workspace_a.leaked(taken.text + released.text + listed.text)
    assert account in [item["account_id"] for item in a.ok("GET", accounts)["items"]]
