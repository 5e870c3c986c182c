"""The REST API as its users meet it, against a real ``commhub serve --demo`` process: logging in,
contacts, conversations, roles, and hostile input that must never reach a 500."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.api_support import (
    Api,
    assert_problem,
    demo_credentials,
    demo_login,
    example,
    garbage_values,
    login,
    operations,
    phone_number,
    serving_demo,
    unique,
    wait_for,
)
from tests.e2e.conftest import Server

CONTACTS = "/api/v1/contacts"
CONVERSATIONS = "/api/v1/conversations"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    """One demo server for the tests of this module that only add data of their own."""
    with serving_demo(tmp_path_factory.mktemp("api"), server_url, session_kek) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[Api]:
    with demo_login(server) as api:
        yield api


def new_contact(api: Api, **fields: Any) -> dict[str, Any]:
    return api.ok("POST", CONTACTS, {"name": unique("Contact"), **fields})


def new_conversation(api: Api, body: str | None = None) -> dict[str, Any]:
    return api.inbound(phone_number(), body or unique("hello"), name=unique("Caller"))


def timeline_kinds(api: Api, contact_id: str) -> list[str]:
    return [entry["kind"] for entry in api.ok("GET", f"{CONTACTS}/{contact_id}/timeline")["items"]]


# Logging in ----------------------------------------------------------------------------------------------


def test_the_demo_owner_logs_in_and_the_token_says_who_they_are(server):
    credentials = demo_credentials(server)
    with login(server.url, credentials["workspace_slug"], credentials["email"], credentials["password"]) as api:
        assert api.me["role"] == "owner" and api.me["token_type"] == "bearer"
        me = api.ok("GET", "/api/v1/auth/me")
    assert me["email"] == credentials["email"] and me["role"] == "owner"
    assert me["workspace_id"] == credentials["workspace_id"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_401_problem(server):
    credentials = demo_credentials(server)
    attempts = [
        {**credentials, "password": "not the password at all"},
        {**credentials, "email": "nobody-here@example.com"},
        {**credentials, "workspace_slug": "no-such-workspace"},
    ]
    answers = []
    for attempt in attempts:
        response = httpx.post(f"{server.url}/api/v1/auth/login", json={
            "workspace": attempt["workspace_slug"], "email": attempt["email"], "password": attempt["password"]})
        answers.append(assert_problem(response, 401))
        assert "nobody-here" not in response.text and "not the password" not in response.text
    assert answers[0] == answers[1] == answers[2]


def test_requests_without_a_valid_token_are_refused_with_401(server):
    anonymous = httpx.get(f"{server.url}{CONTACTS}")
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = httpx.get(f"{server.url}{CONTACTS}", headers={"Authorization": "Bearer forged-token"})
    assert_problem(forged, 401)


def test_logging_out_revokes_that_token_and_no_other(server):
    first, second = demo_login(server), demo_login(server)
    with first, second:
        assert first.post("/api/v1/auth/logout").status_code == 204
        assert_problem(first.get("/api/v1/auth/me"), 401)
        assert_problem(first.get(CONTACTS), 401)
        assert second.get("/api/v1/auth/me").status_code == 200


# Contacts ------------------------------------------------------------------------------------------------


def test_a_national_phone_number_with_a_default_region_is_stored_in_e164(owner):
    e164 = phone_number()
    national = f"0{e164[3:7]} {e164[7:10]} {e164[10:]}"  # +447400123456 -> 07400 123 456
    created = new_contact(owner, phone=national, default_region="GB", email="  Someone@Example.COM ")
    assert created["phone"] == e164
    assert created["email"] == "Someone@example.com"
    assert owner.ok("GET", f"{CONTACTS}/{created['contact_id']}")["phone"] == e164


@pytest.mark.parametrize("field, value", [
    ("phone", "+44 SECRET 0000"),
    ("phone", "07911 123456"),  # national, but no default_region to read it with
    ("phone", "+1 555 000 000 000 000 1"),
    ("email", "secret.person-at-example.org"),
    ("email", "secret@@example.org"),
], ids=["letters-in-phone", "national-without-region", "too-long-phone", "email-without-at", "email-double-at"])
def test_an_invalid_phone_or_email_is_refused_with_422_without_echoing_it(owner, field, value):
    response = owner.post(CONTACTS, {"name": "Valid Name", field: value})
    problem = assert_problem(response, 422)
    assert value not in response.text and "secret" not in response.text.lower()
    assert problem["code"] in ("PhoneNumberInvalidError", "EmailAddressInvalidError")


def test_contacts_are_found_by_name_email_or_phone_digits(owner):
    marker = uuid.uuid4().hex[:8]
    e164 = phone_number()
    contact = new_contact(owner, name=f"Marguerite {marker} Duras", phone=e164, email=f"m.{marker}@example.net")
    other = new_contact(owner, name=f"Someone {uuid.uuid4().hex[:8]} Else")

    def found(query: str) -> list[str]:
        return [c["contact_id"] for c in owner.ok("POST", f"{CONTACTS}/search", {"q": query})["items"]]

    assert found(f"MARGUERITE {marker}") == [contact["contact_id"]]
    assert found(f"m.{marker}@EXAMPLE") == [contact["contact_id"]]
    assert contact["contact_id"] in found(f"{e164[3:7]}-{e164[7:10]} {e164[10:]}")
    assert other["contact_id"] not in found(marker)
    assert found(f"{marker}%") == [] and found("_" * 30) == []  # LIKE wildcards are literal


def test_rectifying_a_contact_corrects_its_profile_search_and_timeline(owner):
    old_name, new_name = unique("Old Name"), unique("New Name")
    contact = new_contact(owner, name=old_name)
    corrected = owner.ok("PATCH", f"{CONTACTS}/{contact['contact_id']}",
                         {"name": new_name, "phone": "+33 6 12 34 56 78", "time_zone": "Europe/Paris"})
    assert (corrected["name"], corrected["phone"], corrected["time_zone"]) == (new_name, "+33612345678", "Europe/Paris")
    assert owner.ok("POST", f"{CONTACTS}/search", {"q": old_name})["items"] == []
    assert [c["name"] for c in owner.ok("POST", f"{CONTACTS}/search", {"q": new_name})["items"]] == [new_name]
    entries = owner.ok("GET", f"{CONTACTS}/{contact['contact_id']}/timeline")["items"]
    assert [e["kind"] for e in entries] == ["contact.created", "contact.rectified"]
    assert entries[1]["detail"] == {"fields": ["name", "phone", "time_zone"]}
    assert old_name not in json.dumps(entries[1])


def test_tags_are_added_and_removed(owner):
    contact = new_contact(owner)
    path = f"{CONTACTS}/{contact['contact_id']}/tags"
    assert owner.ok("POST", path, {"add": ["vip", "physio", "vip"]})["tags"] == ["vip", "physio"]
    assert owner.ok("POST", path, {"remove": ["vip", "never-had-it"]})["tags"] == ["physio"]
    assert owner.ok("POST", f"{CONTACTS}/search", {"q": contact["name"]})["items"][0]["tags"] == ["physio"]


def test_the_timeline_shows_creation_notes_and_consent_changes_in_order(owner):
    contact = new_contact(owner)
    base = f"{CONTACTS}/{contact['contact_id']}"
    note = owner.ok("POST", f"{base}/notes", {"text": "Prefers morning appointments"})
    evidence = {"channel": "sms", "purpose": "marketing", "source": "front desk", "wording": "Offers by text?"}
    owner.ok("POST", f"{base}/consents", {**evidence, "granted": True})
    owner.ok("POST", f"{base}/consents", {**evidence, "granted": False})
    entries = owner.ok("GET", f"{base}/timeline")["items"]
    assert [e["kind"] for e in entries] == ["contact.created", "contact.note", "consent.granted", "consent.withdrawn"]
    positions = [e["position"] for e in entries]
    assert positions == sorted(set(positions))
    assert entries[1]["detail"] == {"note_id": note["note_id"], "text": "Prefers morning appointments"}
    assert entries[2]["detail"] == {"channel": "sms", "purpose": "marketing", "source": "front desk",
                                    "wording": "Offers by text?"}
    after = owner.ok("GET", f"{base}/timeline", params={"after": positions[1]})["items"]
    assert [e["kind"] for e in after] == ["consent.granted", "consent.withdrawn"]


def test_consent_is_granted_and_withdrawn_with_its_evidence(owner):
    contact = new_contact(owner)
    base = f"{CONTACTS}/{contact['contact_id']}"
    grant = {"channel": "email", "purpose": "marketing", "granted": True, "source": "web form",
             "wording": "Send me the newsletter", "expires_at": "2040-01-01T00:00:00+00:00"}
    owner.ok("POST", f"{base}/consents", grant)
    (granted,) = owner.ok("GET", f"{base}/consents")["items"]
    assert (granted["channel"], granted["purpose"], granted["granted"]) == ("email", "marketing", True)
    assert (granted["source"], granted["wording"]) == ("web form", "Send me the newsletter")
    assert granted["expires_at"].startswith("2040-01-01")
    owner.ok("POST", f"{base}/consents", {**grant, "granted": False, "source": "reply STOP", "wording": "STOP"})
    (withdrawn,) = owner.ok("GET", f"{base}/consents")["items"]
    assert (withdrawn["granted"], withdrawn["source"]) == (False, "reply STOP")
    assert owner.ok("GET", base)["consents"][0]["granted"] is False


def test_merging_two_contacts_keeps_one_with_the_profile_of_both(owner):
    survivor = new_contact(owner, phone=phone_number())
    duplicate = new_contact(owner, email=f"{unique('dup')}@example.com")
    owner.ok("POST", f"{CONTACTS}/{duplicate['contact_id']}/tags", {"add": ["from-duplicate"]})
    owner.ok("POST", f"{CONTACTS}/{duplicate['contact_id']}/notes", {"text": "Note on the duplicate"})
    merged = owner.ok("POST", f"{CONTACTS}/{survivor['contact_id']}/merge", {"duplicate_id": duplicate["contact_id"]})
    assert merged["contact_id"] == survivor["contact_id"]
    assert (merged["phone"], merged["email"]) == (survivor["phone"], duplicate["email"])
    assert merged["tags"] == ["from-duplicate"]
    assert [n["text"] for n in merged["notes"]] == ["Note on the duplicate"]
    assert owner.ok("GET", f"{CONTACTS}/{duplicate['contact_id']}")["merged_into"] == survivor["contact_id"]
    assert owner.ok("POST", f"{CONTACTS}/search", {"q": duplicate["name"]})["items"] == []
    problem = assert_problem(owner.post(f"{CONTACTS}/{duplicate['contact_id']}/notes", {"text": "late"}), 409)
    assert problem["code"] == "ContactMergedError"
    assert "contact.merged" in timeline_kinds(owner, survivor["contact_id"])


# Conversations -------------------------------------------------------------------------------------------


def test_an_inbound_sandbox_message_creates_the_contact_and_the_conversation(owner):
    sender, name, body = phone_number(), unique("Newcomer"), unique("Is the clinic open on Saturday?")
    national = f"0{sender[3:]}"
    received = owner.inbound(national, body, name=name, default_region="GB")
    assert received["duplicate"] is False
    contact = owner.ok("GET", f"{CONTACTS}/{received['contact_id']}")
    assert (contact["name"], contact["phone"]) == (name, sender)
    conversation = owner.ok("GET", f"{CONVERSATIONS}/{received['conversation_id']}")
    assert (conversation["status"], conversation["channel"], conversation["unread"]) == ("open", "sms", 1)
    assert conversation["contact_name"] == name and conversation["preview"] == body
    (message,) = owner.messages(received["conversation_id"])
    assert (message["message_id"], message["kind"], message["body"]) == (received["message_id"], "in", body)
    again = owner.inbound(sender, "second message")
    assert (again["contact_id"], again["conversation_id"]) == (received["contact_id"], received["conversation_id"])
    assert "message.received" in timeline_kinds(owner, received["contact_id"])


def test_a_repeated_provider_message_id_stores_the_message_once(owner):
    sender, provider_id = phone_number(), unique("SM")
    first = owner.inbound(sender, "retried webhook", provider_message_id=provider_id)
    second = owner.inbound(sender, "retried webhook", provider_message_id=provider_id)
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert second["message_id"] == first["message_id"]
    assert len(owner.messages(first["conversation_id"])) == 1
    assert owner.ok("GET", f"{CONVERSATIONS}/{first['conversation_id']}")["message_count"] == 1


def test_the_inbox_filters_open_closed_mine_and_unassigned(owner):
    label = unique("filter")
    mine, unassigned, closed = (new_conversation(owner)["conversation_id"] for _ in range(3))
    for conversation_id in (mine, unassigned, closed):
        owner.ok("POST", f"{CONVERSATIONS}/{conversation_id}/labels", {"add": [label]})
    owner.ok("POST", f"{CONVERSATIONS}/{mine}/assign", {"assignee_id": owner.me["staff_id"]})
    owner.ok("POST", f"{CONVERSATIONS}/{closed}/close")

    def view(name: str) -> set[str]:
        items = owner.ok("POST", f"{CONVERSATIONS}/search", {"view": name, "label": label})["items"]
        return {c["conversation_id"] for c in items}

    assert view("all") == {mine, unassigned, closed}
    assert view("open") == {mine, unassigned}
    assert view("closed") == {closed}
    assert view("mine") == {mine}
    assert view("unassigned") == {unassigned}
    default = {c["conversation_id"] for c in owner.ok("POST", f"{CONVERSATIONS}/search", {"label": label})["items"]}
    assert default == {mine, unassigned}


def test_cursor_pagination_returns_every_conversation_exactly_once(owner):
    created = {new_conversation(owner)["conversation_id"] for _ in range(7)}
    everything = owner.ok("GET", CONVERSATIONS, params={"view": "all", "limit": 200})
    assert everything["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    for _ in range(200):
        params = {"view": "all", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = owner.ok("GET", CONVERSATIONS, params=params)
        assert len(page["items"]) <= 2
        seen += [c["conversation_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a conversation appeared on two pages"
    assert seen == [c["conversation_id"] for c in everything["items"]]
    assert created <= set(seen)
    activity = [c["last_activity"] for c in everything["items"]]
    assert activity == sorted(activity, reverse=True)


def test_a_reply_is_captured_by_the_sandbox_channel(owner):
    conversation_id = new_conversation(owner)["conversation_id"]
    reply = owner.ok("POST", f"{CONVERSATIONS}/{conversation_id}/reply", {"body": "See you on Friday at 10."})
    assert reply["status"] == "queued" and reply["reason"] is None

    def captured() -> dict[str, Any] | None:
        return next((m for m in owner.messages(conversation_id)
                     if m["message_id"] == reply["message_id"] and m["status"] == "captured"), None)

    message = wait_for(captured, timeout=10, what="the reply to be captured by the sandbox")
    assert (message["kind"], message["body"], message["author_id"]) == ("out", "See you on Friday at 10.",
                                                                       owner.me["staff_id"])
    conversation = owner.ok("GET", f"{CONVERSATIONS}/{conversation_id}")
    assert (conversation["last_direction"], conversation["unread"]) == ("out", 0)


def test_a_reply_to_a_contact_who_withdrew_sms_consent_is_refused_and_never_sent(owner):
    withdrawn = new_conversation(owner)
    owner.ok("POST", f"{CONTACTS}/{withdrawn['contact_id']}/consents", {
        "channel": "sms", "purpose": "transactional", "granted": False, "source": "phone call", "wording": "No texts"})
    refused = owner.ok("POST", f"{CONVERSATIONS}/{withdrawn['conversation_id']}/reply", {"body": "Your results"})
    assert refused["status"] == "refused" and refused["reason"]
    # A reply sent afterwards to someone else is captured: the outbox has run past the refused one.
    allowed = new_conversation(owner)
    sent = owner.ok("POST", f"{CONVERSATIONS}/{allowed['conversation_id']}/reply", {"body": "Fine to send"})
    wait_for(lambda: any(m["message_id"] == sent["message_id"] and m["status"] == "captured"
                         for m in owner.messages(allowed["conversation_id"])), what="the allowed reply to be captured")
    messages = owner.messages(withdrawn["conversation_id"])
    (message,) = [m for m in messages if m["message_id"] == refused["message_id"]]
    assert (message["kind"], message["status"], message["reason"]) == ("refused", "refused", refused["reason"])
    assert not any(m["status"] == "captured" for m in messages)
    assert "message.refused" in timeline_kinds(owner, withdrawn["contact_id"])


def test_assigning_closing_reopening_labelling_reading_and_noting_a_conversation(owner):
    conversation_id = new_conversation(owner)["conversation_id"]
    path = f"{CONVERSATIONS}/{conversation_id}"
    me = owner.me["staff_id"]
    assert owner.ok("POST", f"{path}/assign", {"assignee_id": me})["assignee_id"] == me
    assert owner.ok("POST", f"{path}/assign", {"assignee_id": None})["assignee_id"] is None
    assert_problem(owner.post(f"{path}/assign", {"assignee_id": str(uuid.uuid4())}), 404)
    assert owner.ok("POST", f"{path}/labels", {"add": ["billing", "urgent"]})["labels"] == ["billing", "urgent"]
    assert owner.ok("POST", f"{path}/labels", {"remove": ["urgent"]})["labels"] == ["billing"]
    assert owner.ok("GET", path)["unread"] == 1
    assert owner.ok("POST", f"{path}/read")["unread"] == 0
    assert owner.ok("POST", f"{path}/close")["status"] == "closed"
    assert owner.ok("POST", f"{path}/reopen")["status"] == "open"
    note = owner.ok("POST", f"{path}/notes", {"text": "Internal: call back after 5pm"})
    notes = [m for m in owner.messages(conversation_id) if m["kind"] == "note"]
    assert [(n["message_id"], n["body"], n["status"]) for n in notes] == [
        (note["note_id"], "Internal: call back after 5pm", None)]


def test_snoozing_needs_a_time_zone_and_a_closed_conversation_cannot_be_snoozed(owner):
    conversation_id = new_conversation(owner)["conversation_id"]
    path = f"{CONVERSATIONS}/{conversation_id}"
    assert_problem(owner.post(f"{path}/snooze", {"until": "2031-01-01T09:00:00"}), 422)
    snoozed = owner.ok("POST", f"{path}/snooze", {"until": "2031-01-01T09:00:00+01:00"})
    assert datetime.fromisoformat(snoozed["snoozed_until"]) == datetime(2031, 1, 1, 8, tzinfo=UTC)
    owner.ok("POST", f"{path}/close")
    assert_problem(owner.post(f"{path}/snooze", {"until": "2031-01-01T09:00:00+00:00"}), 409)


# Roles ---------------------------------------------------------------------------------------------------


def test_each_role_may_use_only_what_it_is_for(server, owner):
    credentials = demo_credentials(server)
    password = "a long enough password"
    clients: dict[str, Api] = {}
    for role in ("agent", "admin", "compliance"):
        email = f"{unique(role)}@demo.example"
        staff = owner.ok("POST", "/api/v1/staff", {"name": f"Test {role}", "email": email, "role": role,
                                                   "password": password})
        assert (staff["role"], staff["email"], staff["active"]) == (role, email, True)
        clients[role] = login(server.url, credentials["workspace_slug"], email, password)
    conversation_id = new_conversation(owner)["conversation_id"]
    new_staff = {"name": "Someone", "email": f"{unique('x')}@demo.example", "role": "agent", "password": password}
    canned = {"title": unique("Opening hours"), "body": "We open at 9."}
    checks: list[tuple[str, str, str, Any]] = [
        ("GET", CONVERSATIONS, "inbox", None),
        ("GET", f"{CONVERSATIONS}/{conversation_id}/messages", "inbox", None),
        ("POST", f"{CONVERSATIONS}/{conversation_id}/notes", "inbox", {"text": "seen"}),
        ("GET", CONTACTS, "contacts", None),
        ("POST", CONTACTS, "contacts", {"name": "Role test"}),
        ("GET", "/api/v1/canned-responses", "inbox", None),
        ("POST", "/api/v1/canned-responses", "settings", canned),
        ("POST", "/api/v1/staff", "staff", new_staff),
    ]
    allowed = {"agent": {"inbox", "contacts"}, "admin": {"inbox", "contacts", "settings", "staff"},
               "compliance": set()}
    try:
        for role, api in clients.items():
            assert api.ok("GET", "/api/v1/auth/me")["role"] == role
            for method, path, permission, body in checks:
                if method == "POST" and "staff" in path:
                    body = {**body, "email": f"{unique(role)}@demo.example"}
                response = api.request(method, path, json=body)
                if permission in allowed[role]:
                    assert response.is_success, f"{role} {method} {path}: {response.status_code} {response.text}"
                else:
                    assert_problem(response, 403)
        assert_problem(clients["agent"].patch(f"/api/v1/staff/{owner.me['staff_id']}", {"role": "agent"}), 403)
    finally:
        for api in clients.values():
            api.close()
    assert owner.ok("GET", "/api/v1/auth/me")["role"] == "owner"


def test_a_staff_email_can_be_added_only_once_and_weak_passwords_are_refused(owner):
    email = f"{unique('once')}@demo.example"
    body = {"name": "Once", "email": email, "role": "agent", "password": "a long enough password"}
    owner.ok("POST", "/api/v1/staff", body)
    assert_problem(owner.post("/api/v1/staff", {**body, "email": email.upper()}), 409)
    weak = owner.post("/api/v1/staff", {**body, "email": f"{unique('weak')}@demo.example", "password": "short"})
    assert_problem(weak, 422)
    assert "short" not in weak.text


# Malformed input -----------------------------------------------------------------------------------------


def test_the_body_limit_is_1_mb(owner):
    at_limit = owner.post(CONTACTS, content=b" " * 1_000_000, headers={"content-type": "application/json"})
    assert_problem(at_limit, 422)
    over = owner.post(CONTACTS, content=b" " * 1_000_001, headers={"content-type": "application/json"})
    assert_problem(over, 413)


def test_a_huge_body_without_a_content_length_is_refused_with_413(owner):
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(30):
            yield b"x" * 100_000
        yield b'"}'

    response = owner.post(CONTACTS, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers  # sent chunked
    assert_problem(response, 413)


JSON = {"content-type": "application/json"}
MALFORMED: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("invalid-json", "POST", CONTACTS, {"content": b'{"name": "Ann",', "headers": JSON}, 422),
    ("not-json-at-all", "POST", CONTACTS, {"content": b"name=Ann", "headers": {"content-type": "text/plain"}}, 422),
    ("json-array-body", "POST", CONTACTS, {"json": [{"name": "Ann"}]}, 422),
    ("wrong-type-name", "POST", CONTACTS, {"json": {"name": 42}}, 422),
    ("wrong-type-custom-fields", "POST", CONTACTS, {"json": {"name": "Ann", "custom_fields": ["a"]}}, 422),
    ("unknown-field", "POST", CONTACTS, {"json": {"name": "Ann", "is_admin": True}}, 422),
    ("empty-body", "POST", CONTACTS, {}, 422),
    ("name-too-long", "POST", CONTACTS, {"json": {"name": "x" * 201}}, 422),
    ("unknown-region", "POST", CONTACTS,
     {"json": {"name": "Ann", "phone": "07911 123456", "default_region": "ZZ"}}, 422),
    ("unknown-time-zone", "POST", CONTACTS, {"json": {"name": "Ann", "time_zone": "Mars/Olympus"}}, 422),
    ("bad-uuid-in-path", "GET", f"{CONTACTS}/not-a-uuid", {}, 422),
    ("bad-uuid-in-conversation-path", "POST", f"{CONVERSATIONS}/1234/close", {}, 422),
    ("unknown-contact", "GET", f"{CONTACTS}/{uuid.uuid4()}", {}, 404),
    ("unknown-conversation", "GET", f"{CONVERSATIONS}/{uuid.uuid4()}/messages", {}, 404),
    ("bad-cursor-conversations", "GET", CONVERSATIONS, {"params": {"cursor": "not-a-cursor"}}, 422),
    ("bad-cursor-contacts", "GET", CONTACTS, {"params": {"cursor": "bm90IGEgY3Vyc29y"}}, 422),
    ("bad-view", "GET", CONVERSATIONS, {"params": {"view": "everything"}}, 422),
    ("limit-zero", "GET", CONVERSATIONS, {"params": {"limit": 0}}, 422),
    ("limit-too-big", "GET", CONTACTS, {"params": {"limit": 100_000}}, 422),
    ("negative-after", "GET", f"{CONTACTS}/{uuid.uuid4()}/timeline", {"params": {"after": -1}}, 422),
    ("bad-consent-channel", "POST", f"{CONTACTS}/{uuid.uuid4()}/consents",
     {"json": {"channel": "fax", "purpose": "marketing", "granted": True, "source": "s", "wording": "w"}}, 422),
    ("wrong-method", "DELETE", CONTACTS, {}, 405),
]


@pytest.mark.parametrize("method, path, kwargs, status", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_requests_get_a_4xx_problem_and_never_a_500(owner, method, path, kwargs, status):
    response = owner.request(method, path, **kwargs)
    problem = assert_problem(response, status)
    if status == 422 and "json" in kwargs and isinstance(kwargs["json"], dict):
        for value in kwargs["json"].values():
            if isinstance(value, str) and len(value) > 3:
                assert value not in response.text, "the refused input was echoed back"
    assert "Traceback" not in response.text and "psycopg" not in problem.get("detail", "")


def test_text_with_a_nul_character_is_refused_and_the_read_models_keep_working(demo_server):
    with demo_login(demo_server) as api:
        poisoned = api.post(CONTACTS, {"name": "Ann\x00Other"})
        assert_problem(poisoned, 422)
        later = new_contact(api)
        found = wait_for(lambda: api.ok("POST", f"{CONTACTS}/search", {"q": later["name"]})["items"], timeout=8,
                         what="a contact created afterwards to be searchable")
        assert found[0]["contact_id"] == later["contact_id"]


# Every route, garbage in ---------------------------------------------------------------------------------


def test_every_route_answers_garbage_with_4xx_problems_and_never_a_5xx(demo_server):
    """Sweeps every operation the server publishes with wrong values in the path, the query and the body."""
    with demo_login(demo_server) as owner_api:
        ids = {
            "contact_id": new_contact(owner_api)["contact_id"],
            "conversation_id": new_conversation(owner_api)["conversation_id"],
            "staff_id": owner_api.me["staff_id"],
            "response_id": owner_api.ok("POST", "/api/v1/canned-responses", {"title": "t", "body": "b"})["response_id"],
        }
    sweeper = demo_login(demo_server)  # its own token, which the logout route may revoke
    failures: list[str] = []
    requests = 0
    http = httpx.Client(base_url=demo_server.url, timeout=20)

    def call(method: str, path: str, **kwargs: Any) -> None:
        nonlocal requests, http
        requests += 1
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {sweeper.token}"}
        body = str(kwargs.get("json", kwargs.get("content")))[:80]
        sent = f"{method} {path} params={kwargs.get('params')} body={body}"
        try:
            response = http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            failures.append(f"{sent}: connection failed ({type(error).__name__})")
            response = None
        if response is None or response.status_code >= 500:
            if response is not None:
                failures.append(f"{sent} -> {response.status_code}")
            http.close()  # the server may drop a connection after an error: carry on with a fresh one
            http = httpx.Client(base_url=demo_server.url, timeout=20)
        elif response.status_code >= 400 and not response.headers.get("content-type", "").startswith(
                "application/problem+json"):
            failures.append(f"{sent} -> {response.status_code} is not problem+json")

    ops = sorted(operations(demo_server.url), key=lambda op: op.path.endswith("/logout"))  # logout last
    garbage = [g for g in garbage_values() if not (isinstance(g, str) and "\x00" in g)]  # NUL: its own test above
    def uuids(field: str) -> str:
        return ids.get(field, str(uuid.uuid4()))

    for op in ops:
        valid_body = example(op, op.body_schema, uuids)
        real_path = op.url(ids)
        for param in op.path_params:
            for bad in ("not-a-uuid", "0", "..", "x" * 300, "%00", "00000000-0000-0000-0000-000000000000",
                        str(uuid.uuid4())):
                call(op.method, op.url({**ids, param: bad}), json=valid_body)
        for param in op.query_params:
            for bad in garbage:
                value = json.dumps(bad) if not isinstance(bad, str) else bad
                call(op.method, real_path, params={param["name"]: value}, json=valid_body)
        call(op.method, real_path, content=b"{not json", headers=JSON)
        if op.body_schema is None:
            continue
        call(op.method, real_path)
        call(op.method, real_path, content=b'{"x": NaN, "y": Infinity}', headers=JSON)
        call(op.method, real_path, content=b'{"a": "\\udc00"}', headers=JSON)
        call(op.method, real_path, content=b"[" * 5000 + b"]" * 5000, headers=JSON)
        for bad in garbage:
            call(op.method, real_path, json=bad)
        if isinstance(valid_body, dict):
            call(op.method, real_path, json={**valid_body, "unexpected": 1})
            for field in valid_body:
                for bad in garbage:
                    call(op.method, real_path, json={**valid_body, field: bad})
    http.close()
    sweeper.close()
    assert requests > 500
    assert not failures, f"{len(failures)} of {requests} requests failed:\n" + "\n".join(sorted(set(failures))[:60])
    with demo_login(demo_server) as api:  # and the server still works afterwards
        after = new_contact(api)
        assert api.ok("POST", f"{CONTACTS}/search", {"q": after["name"]})["items"][0]["contact_id"] == after["contact_id"]


def test_only_an_owner_hands_out_ownership_and_nobody_changes_their_own_role(server, owner):
    credentials = demo_credentials(server)
    password = "a long enough password"
    email = f"{unique('admin')}@demo.example"
    admin_staff = owner.ok("POST", "/api/v1/staff", {"name": "Ada Admin", "email": email, "role": "admin",
                                                     "password": password})
    admin = login(server.url, credentials["workspace_slug"], email, password)
    with admin:
        assert_problem(admin.patch(f"/api/v1/staff/{admin_staff['staff_id']}", {"role": "owner"}), 403)
        assert_problem(admin.post("/api/v1/staff", {"name": "Sneaky", "email": f"{unique('o')}@demo.example",
                                                    "role": "owner", "password": password}), 403)
        assert_problem(admin.patch(f"/api/v1/staff/{owner.me['staff_id']}", {"role": "agent"}), 403)
    assert_problem(owner.patch(f"/api/v1/staff/{owner.me['staff_id']}", {"role": "agent"}), 403)
    promoted = owner.ok("PATCH", f"/api/v1/staff/{admin_staff['staff_id']}", {"role": "owner"})
    assert promoted["role"] == "owner"


def test_a_snoozed_conversation_leaves_the_open_view_until_the_customer_writes_again(owner):
    sender = phone_number()
    conversation_id = owner.inbound(sender, unique("hello"))["conversation_id"]
    owner.ok("POST", f"{CONVERSATIONS}/{conversation_id}/snooze", {"until": "2031-01-01T09:00:00+00:00"})

    def in_view(view: str) -> bool:
        items = owner.ok("GET", CONVERSATIONS, params={"view": view, "limit": 200})["items"]
        return conversation_id in {c["conversation_id"] for c in items}

    assert not in_view("open") and not in_view("unassigned") and in_view("snoozed") and in_view("all")
    owner.inbound(sender, "Actually, one more question")
    assert in_view("open") and not in_view("snoozed")
