"""Privacy through the API of a real server: roles, legal holds, export, restriction and objection
on the timeline and at send time, retention, and the audit log (API and page)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.api_support import (
    Api,
    assert_problem,
    demo_credentials,
    demo_login,
    login,
    phone_number,
    serving_demo,
    unique,
    wait_for,
)
from tests.e2e.conftest import Server

CONTACTS = "/api/v1/contacts"
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    with serving_demo(tmp_path_factory.mktemp("privacy"), server_url, session_kek) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[Api]:
    with demo_login(server) as api:
        yield api


def staff_member(server: Server, owner: Api, role: str) -> Api:
    email = f"{unique(role)}@clinic.example"
    owner.ok("POST", "/api/v1/staff", {"name": f"A {role}", "email": email, "role": role, "password": PASSWORD})
    return login(server.url, demo_credentials(server)["workspace_slug"], email, PASSWORD)


@pytest.fixture(scope="module")
def officer(server: Server, owner: Api) -> Iterator[Api]:
    with staff_member(server, owner, "compliance") as api:
        yield api


@pytest.fixture(scope="module")
def agent(server: Server, owner: Api) -> Iterator[Api]:
    with staff_member(server, owner, "agent") as api:
        yield api


def new_contact(api: Api) -> dict:
    return api.ok("POST", CONTACTS, {"name": unique("Contact"), "phone": phone_number()})


def audit_entries(officer: Api, at_least: int = 1, **params: object) -> list[dict]:
    """Audit entries matching ``params`` once at least ``at_least`` of them are there (the audit
    table is a projection, a moment behind the request that wrote the entry)."""
    return wait_for(lambda: (items := officer.ok("GET", "/api/v1/audit", params=params)["items"])
                    and len(items) >= at_least and items, what=f"audit entries {params}")


def timeline_kinds(api: Api, contact_id: str) -> list[str]:
    return [e["kind"] for e in api.ok("GET", f"{CONTACTS}/{contact_id}/timeline")["items"]]


def test_only_compliance_and_owners_erase_export_and_read_the_audit_log(officer, agent, owner):
    contact = new_contact(owner)
    body = {"contact_id": contact["contact_id"], "reason": "data_subject_request", "reference": "T-1"}
    assert_problem(agent.post("/api/v1/privacy/erasures", body), 403)
    assert_problem(agent.get(f"{CONTACTS}/{contact['contact_id']}/export"), 403)
    assert_problem(agent.get("/api/v1/audit"), 403)
    assert_problem(officer.get("/api/v1/conversations"), 403)  # compliance does not read the inbox
    assert officer.ok("GET", "/api/v1/privacy/signing-key")["algorithm"] == "Ed25519"


def test_erasure_input_is_checked_and_never_echoed(officer, owner):
    contact = new_contact(owner)
    problem = assert_problem(officer.post("/api/v1/privacy/erasures", {
        "contact_id": contact["contact_id"], "reason": "because", "reference": "Jane Doe +44 7700 900123"}), 422)
    assert "Jane" not in json.dumps(problem) and "7700" not in json.dumps(problem)
    assert_problem(officer.post("/api/v1/privacy/erasures", {
        "contact_id": "00000000-0000-0000-0000-000000000000", "reason": "objection", "reference": "T-2"}), 404)


def test_a_legal_hold_refuses_erasure_with_a_problem_until_it_is_lifted(officer, owner):
    contact_id = new_contact(owner)["contact_id"]
    held = officer.ok("POST", f"{CONTACTS}/{contact_id}/legal-hold", {"held": True, "reference": "CASE-2026-9"})
    assert held == {"contact_id": contact_id, "legal_hold": True}
    body = {"contact_id": contact_id, "reason": "data_subject_request", "reference": "T-3"}

    refused = assert_problem(officer.post("/api/v1/privacy/erasures", body), 409)

    assert refused["code"] == "ContactUnderLegalHoldError" and "legal hold" in refused["detail"]
    status = officer.ok("GET", f"/api/v1/privacy/erasures/{refused['erasure_id']}")
    assert (status["status"], status["refusal"]) == ("refused", "legal_hold")
    assert "privacy.legal_hold_placed" in timeline_kinds(owner, contact_id)
    officer.ok("POST", f"{CONTACTS}/{contact_id}/legal-hold", {"held": False})
    done = officer.post("/api/v1/privacy/erasures", body)
    assert done.status_code == 201 and done.json()["status"] == "completed"
    listed = officer.ok("GET", "/api/v1/privacy/erasures")["items"]
    assert {(e["erasure_id"], e["status"]) for e in listed} >= {(refused["erasure_id"], "refused"),
                                                                (done.json()["erasure_id"], "completed")}


def test_an_export_streams_a_zip_named_by_export_id_and_is_audited(officer, owner):
    sent = owner.inbound(phone_number(), "Can I get my records?", name=unique("Exporter"),
                         attachments=[{"filename": "letter.txt", "content_base64": "aGVsbG8gd29ybGQ="}])
    contact_id = sent["contact_id"]

    response = officer.get(f"{CONTACTS}/{contact_id}/export")

    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert contact_id not in disposition and disposition.startswith('attachment; filename="export-')
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    subject = json.loads(archive.read("subject.json"))
    assert subject["contact_id"] == contact_id and subject["appointments"] == []
    message = subject["conversations"][0]["messages"][0]
    assert message["body"] == "Can I get my records?"
    assert archive.read(message["attachments"][0]["path"]) == b"hello world"
    [entry] = audit_entries(officer, subject_id=contact_id, action="contact.exported")
    assert entry["actor_id"] == officer.me["staff_id"] and entry["count"] == 1


def test_rectification_restriction_and_objection_show_on_the_timeline_and_stop_sends(owner):
    sent = owner.inbound(phone_number(), "Hello", name=unique("Restricted"))
    contact_id, conversation_id = sent["contact_id"], sent["conversation_id"]
    owner.ok("PATCH", f"{CONTACTS}/{contact_id}", {"name": unique("Rectified")})
    owner.ok("POST", f"{CONTACTS}/{contact_id}/consents", {"channel": "sms", "purpose": "marketing", "granted": True,
                                                           "source": "form", "wording": "Offers by text"})
    owner.ok("POST", f"{CONTACTS}/{contact_id}/objection", {"objected": True})
    reply = f"/api/v1/conversations/{conversation_id}/reply"
    assert owner.ok("POST", reply, {"body": "Sale!", "purpose": "marketing"})["reason"] == "objected_to_marketing"
    assert owner.ok("POST", reply, {"body": "Your appointment is at 3"})["status"] == "queued"

    owner.ok("POST", f"{CONTACTS}/{contact_id}/restriction", {"restricted": True, "reason": "disputes accuracy"})
    assert owner.ok("POST", reply, {"body": "Your appointment is at 4"})["reason"] == "processing_restricted"
    owner.ok("POST", f"{CONTACTS}/{contact_id}/restriction", {"restricted": False})
    assert owner.ok("POST", reply, {"body": "Your appointment is at 5"})["status"] == "queued"

    kinds = timeline_kinds(owner, contact_id)
    for kind in ("contact.rectified", "privacy.objected", "privacy.restricted", "privacy.restriction_lifted",
                 "message.refused"):
        assert kind in kinds, kind


def test_retention_answers_a_dry_run_report_first(officer, owner):
    assert officer.ok("PUT", "/api/v1/privacy/retention", {"erase_inactive_after_days": 3650,
                                                           "delete_bodies_after_days": 730}) == {
        "erase_inactive_after_days": 3650, "delete_bodies_after_days": 730}
    report = officer.ok("POST", "/api/v1/privacy/retention/run", {})
    assert report["contacts_to_erase"] == [] and report["message_bodies_to_delete"] == 0
    assert "erasures" not in report  # a dry run does nothing
    changed = audit_entries(officer, action="settings.retention_policy_changed")
    assert changed[0]["actor_id"] == officer.me["staff_id"]


def test_reads_logins_and_staff_changes_are_in_the_audit_log_with_ids_only(server, officer, agent, owner):
    # two staff.created entries: the officer's and the agent's (requested here, not left to other tests)
    contact = new_contact(owner)
    owner.ok("GET", f"{CONTACTS}/{contact['contact_id']}")
    owner.ok("POST", f"{CONTACTS}/search", {"q": contact["name"]})
    credentials = demo_credentials(server)
    bad = owner.post("/api/v1/auth/login", {"workspace": credentials["workspace_slug"], "email": credentials["email"],
                                           "password": "wrong password here"})
    assert bad.status_code == 401

    viewed = audit_entries(officer, 3, subject_id=contact["contact_id"])
    assert {"contact.created", "contact.viewed", "contacts.searched"} <= {e["action"] for e in viewed}
    searched = next(e for e in viewed if e["action"] == "contacts.searched")
    assert searched["count"] == 1 and searched["route"] == "POST /api/v1/contacts/search"
    failed = audit_entries(officer, action="auth.login_failed")
    assert failed[0]["outcome"] == "refused" and failed[0]["actor_id"] == owner.me["staff_id"]
    staff = audit_entries(officer, 2, action="staff.created")
    assert all(e["target_id"] for e in staff)
    logins = audit_entries(officer, action="auth.login")
    assert officer.me["staff_id"] in {e["actor_id"] for e in logins}
    saved = owner.ok("POST", "/api/v1/canned-responses", {"title": "Hours", "body": "Open 9-5"})
    canned = audit_entries(officer, action="settings.canned_response_saved")
    assert (canned[0]["target_id"], canned[0]["actor_id"]) == (saved["response_id"], owner.me["staff_id"])
    everything = json.dumps(officer.ok("GET", "/api/v1/audit", params={"limit": 500}))
    assert contact["name"] not in everything and contact["phone"] not in everything


def test_the_audit_log_pages_back_by_cursor_and_its_chain_verifies(officer, owner):
    for _ in range(3):
        owner.ok("GET", "/api/v1/contacts")
    audit_entries(officer, 3, action="contacts.listed")
    first = officer.ok("GET", "/api/v1/audit", params={"limit": 2, "action": "contacts.listed"})
    second = officer.ok("GET", "/api/v1/audit", params={"limit": 2, "action": "contacts.listed",
                                                        "cursor": first["next_cursor"]})
    positions = [e["position"] for e in first["items"] + second["items"]]
    assert len(positions) >= 3 and positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
    assert_problem(officer.get("/api/v1/audit", params={"cursor": "abc"}), 422)
    report = officer.ok("GET", "/api/v1/audit/verify")
    assert report["intact"] and report["entries"] > 5


def test_the_compliance_officer_reads_and_verifies_the_audit_log_on_its_page(server, officer, owner):
    contact = new_contact(owner)
    owner.ok("GET", f"{CONTACTS}/{contact['contact_id']}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(Path("/usr/bin/chromium")),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}/audit")
            page.get_by_label("Workspace").fill(demo_credentials(server)["workspace_slug"])
            page.get_by_label("Email", exact=True).fill(officer.ok("GET", "/api/v1/auth/me")["email"])
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            audit_entries(officer, subject_id=contact["contact_id"], action="contact.viewed")
            page.get_by_label("Subject id").fill(contact["contact_id"])
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("#entries tr", has_text="contact.viewed")).to_have_count(1)
            page.get_by_role("button", name="Verify chain").click()
            expect(page.locator("#verify-result")).to_contain_text("Chain intact")
            assert contact["name"] not in page.content()
            assert errors == []
        finally:
            browser.close()
