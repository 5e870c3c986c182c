"""Reading the newest part of long threads and timelines, and the headers every answer carries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def login(server) -> Iterator[httpx.Client]:
    details = json.loads((server.data_dir / "demo-login.json").read_text())
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = client.post("/api/v1/auth/login", json={"workspace": details["workspace_slug"], "email": details["email"],
                                                        "password": details["password"]}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_before_gives_the_newest_messages_and_timeline_entries_in_order(demo_server):
    with login(demo_server) as client:
        for i in range(6):
            sent = client.post("/api/v1/sandbox/inbound", json={"from": "+447912345678", "body": f"message {i}"})
            assert sent.status_code == 201
        conversation, contact = sent.json()["conversation_id"], sent.json()["contact_id"]
        newest = client.get(f"/api/v1/conversations/{conversation}/messages", params={"before": 2**62, "limit": 3})
        assert [m["body"] for m in newest.json()["items"]] == ["message 3", "message 4", "message 5"]
        older = client.get(f"/api/v1/conversations/{conversation}/messages",
                           params={"before": newest.json()["items"][0]["position"], "limit": 3})
        assert [m["body"] for m in older.json()["items"]] == ["message 0", "message 1", "message 2"]
        latest = client.get(f"/api/v1/contacts/{contact}/timeline", params={"before": 2**62, "limit": 2}).json()["items"]
        assert [e["detail"]["preview"] for e in latest] == ["message 4", "message 5"]
        assert client.get(f"/api/v1/contacts/{contact}/timeline", params={"before": 2**70}).status_code == 422


def test_pages_and_api_answers_carry_protective_headers(demo_server):
    page = httpx.get(f"{demo_server.url}/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    with login(demo_server) as client:
        answer = client.get("/api/v1/conversations")
        assert answer.headers["cache-control"] == "no-store" and answer.headers["referrer-policy"] == "no-referrer"
