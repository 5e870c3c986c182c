"""A fake Meta Graph API on loopback: the ``/{id}/messages`` send endpoint of Messenger, Instagram
and WhatsApp, the user profile read (``GET /{psid-or-igsid}?fields=…``), and signed webhooks sent to
commhub the way Meta sends them.

Real HTTP on 127.0.0.1. It records every send; tell it how to answer the next sends ("200", "429",
"500", "400:<graph code>", e.g. "400:131047" or a throttling "400:80007"). Each account has its own
access token: a send with another token gets Graph error 190. The webhook signature is computed
here from Meta's documented scheme (``sha256=`` + hex HMAC-SHA256 of the raw body with the app
secret), not with commhub's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.loopback_http import LoopbackHttp

SEND = re.compile(r"^/v[0-9.]+/(?P<account>[0-9]+)/messages$")
PROFILE = re.compile(r"^/v[0-9.]+/(?P<user>[0-9]+)\?fields=(?P<fields>[A-Za-z0-9_,%]+)$")
VERSION = "v21.0"


def sign(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 as Meta computes it."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def new_id(prefix: str = "") -> str:
    return prefix + str(uuid.uuid4().int)[:16]


@dataclass
class Sent:
    """One request that reached the fake's send endpoint."""

    account_id: str
    body: dict[str, Any]
    authorised: bool
    answered: int
    message_id: str | None = None


@dataclass
class FakeMeta(LoopbackHttp):
    app_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    verify_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    webhook_url: str | None = None  # set: every accepted send is reported "delivered" to commhub here

    def __post_init__(self) -> None:
        self.sends: list[Sent] = []
        self.tokens: dict[str, str] = {}
        self.platforms: dict[str, str] = {}
        self.plan: deque[str] = deque()
        self.profiles: dict[tuple[str, str], dict[str, Any]] = {}  # (account, PSID/IGSID) → profile fields
        self.profile_plan: deque[str] = deque()  # answers of the next profile reads: "500", "400:10", …
        self.profile_reads: list[tuple[str, str, str]] = []  # (account whose token was used, user id, fields)
        self.get_paths: list[str] = []  # every GET's path, whatever it asked for
        self._lock = threading.Lock()
        self.port = 0

    @property
    def graph_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{VERSION}"

    def env(self) -> dict[str, str]:
        return {"COMMHUB_META_APP_SECRET": self.app_secret, "COMMHUB_META_VERIFY_TOKEN": self.verify_token,
                "COMMHUB_META_GRAPH_URL": self.graph_url}

    # Accounts and behaviour ----------------------------------------------------------------

    def account(self, platform: str) -> tuple[str, str]:
        """A new business account id (page, Instagram account or phone number id) and its token."""
        account_id, token = new_id("1"), f"EAA{platform}{uuid.uuid4().hex}"
        self.tokens[account_id] = token
        self.platforms[account_id] = platform
        return account_id, token

    def profile(self, account_id: str, user_id: str, **fields: str) -> None:
        """What ``GET /{user_id}`` answers with the account's token (others get Graph error 100)."""
        self.profiles[(account_id, user_id)] = {"id": user_id, **fields}

    def answer_next_profile_reads(self, *answers: str) -> None:
        with self._lock:
            self.profile_plan.extend(answers)

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.get_paths.append(handler.path)
        match = PROFILE.match(handler.path)
        if match is None:
            return self._reply(handler, 404, {"error": {"message": "Unknown path", "type": "GraphMethodException",
                                                        "code": 100}})
        token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
        account_id = next((a for a, t in self.tokens.items() if t == token), None)
        if account_id is None:
            return self._reply(handler, 401, {"error": {"message": "Invalid OAuth access token.",
                                                        "type": "OAuthException", "code": 190}})
        user_id, fields = match["user"], match["fields"].replace("%2C", ",")
        with self._lock:
            self.profile_reads.append((account_id, user_id, fields))
            answer = self.profile_plan.popleft() if self.profile_plan else "200"
        status, _, code = answer.partition(":")
        found = self.profiles.get((account_id, user_id))
        if status == "200" and found is not None:
            return self._reply(handler, 200, {k: v for k, v in found.items() if k == "id" or k in fields.split(",")})
        graph_code = int(code) if code else {429: 4, 500: 2}.get(int(status), 100)
        self._reply(handler, 400 if status == "200" else int(status), {"error": {
            "message": f"(#{graph_code}) cannot read profile {user_id}", "type": "OAuthException",
            "code": graph_code}})

    def answer_next(self, *answers: str) -> None:
        with self._lock:
            self.plan.extend(answers)

    def accepted(self, account_id: str | None = None) -> list[Sent]:
        with self._lock:
            return [s for s in self.sends if s.answered == 200 and account_id in (None, s.account_id)]

    def attempts(self, account_id: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sends if s.authorised and s.account_id == account_id]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length)
        match = SEND.match(handler.path)
        if match is None:
            return self._reply(handler, 404, {"error": {"message": "Unknown path", "type": "GraphMethodException",
                                                        "code": 100}})
        account_id = match["account"]
        authorised = handler.headers.get("Authorization") == f"Bearer {self.tokens.get(account_id)}"
        body = json.loads(data or b"{}")
        with self._lock:
            answer = self.plan.popleft() if self.plan and authorised else "200"
            record = Sent(account_id, body, authorised, 0)
            self.sends.append(record)
        if not authorised:
            record.answered = 401
            return self._reply(handler, 401, {"error": {"message": "Invalid OAuth access token.",
                                                        "type": "OAuthException", "code": 190}})
        status, _, code = answer.partition(":")
        record.answered = int(status)
        if record.answered != 200:
            graph_code = int(code) if code else {429: 4, 500: 2}.get(record.answered, 100)
            # Meta's message text can quote the recipient: commhub must never show or log it.
            return self._reply(handler, record.answered, {"error": {
                "message": f"(#{graph_code}) refused for recipient {json.dumps(body)}", "type": "OAuthException",
                "code": graph_code, "fbtrace_id": "Afake"}})
        if "messaging_product" in body:
            record.message_id = "wamid." + uuid.uuid4().hex.upper()
            answer_body: dict[str, Any] = {"messaging_product": "whatsapp",
                                           "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                                           "messages": [{"id": record.message_id}]}
        else:
            record.message_id = "m_" + uuid.uuid4().hex
            answer_body = {"recipient_id": body.get("recipient", {}).get("id"), "message_id": record.message_id}
        self._reply(handler, 200, answer_body)
        if self.webhook_url:
            threading.Thread(target=self._report_delivery, args=(record,), daemon=True).start()

    def _report_delivery(self, record: Sent) -> None:
        """Meta's delivery webhook, sent twice a little later (commhub records our id once it has the answer)."""
        if "messaging_product" in record.body:
            payload = wa_status(record.account_id, record.message_id or "", "delivered")
        else:
            platform = self.platforms.get(record.account_id, "messenger")
            payload = delivery(platform, record.account_id, record.body["recipient"]["id"], [record.message_id or ""])
        for pause in (0.3, 1.5):
            time.sleep(pause)
            if self.webhook_url:
                self.deliver(self.webhook_url, payload)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    # Webhooks to commhub ------------------------------------------------------------------

    def deliver(self, url: str, payload: Any, *, secret: str | None = None, signature: str | None = None,
                raw: bytes | None = None) -> httpx.Response:
        """POST a webhook delivery to commhub's ``/webhooks/meta`` at ``url``, signed as Meta signs it."""
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if signature != "":
            headers["X-Hub-Signature-256"] = signature or sign(secret or self.app_secret, body)
        return httpx.post(f"{url}/webhooks/meta", content=body, headers=headers, timeout=15)

    def handshake(self, url: str, token: str | None = None, challenge: str = "1158201444") -> httpx.Response:
        params = {"hub.mode": "subscribe", "hub.verify_token": token or self.verify_token, "hub.challenge": challenge}
        return httpx.get(f"{url}/webhooks/meta", params=params, timeout=15)


# Payloads, as Meta documents them ---------------------------------------------------------------

def now_ms() -> int:
    return int(time.time() * 1000)


def messaging(platform: str, account_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "instagram" if platform == "instagram" else "page",
            "entry": [{"id": account_id, "time": now_ms(), "messaging": items}]}


def dm(platform: str, account_id: str, sender_id: str, text: str | None = None, *, mid: str | None = None,
       images: list[str] = (), echo: bool = False, sent_ms: int | None = None) -> dict[str, Any]:
    """A Messenger or Instagram message from ``sender_id`` to the page/account (or our own echo)."""
    message: dict[str, Any] = {"mid": mid or "m_" + uuid.uuid4().hex}
    if text is not None:
        message["text"] = text
    if images:
        message["attachments"] = [{"type": "image", "payload": {"url": url}} for url in images]
    if echo:
        message["is_echo"] = True
        message["app_id"] = 1517776481860111
    sender, recipient = (account_id, sender_id) if echo else (sender_id, account_id)
    return messaging(platform, account_id, [{"sender": {"id": sender}, "recipient": {"id": recipient},
                                             "timestamp": sent_ms or now_ms(), "message": message}])


def read(platform: str, account_id: str, sender_id: str, watermark: int | None = None,
         mid: str | None = None) -> dict[str, Any]:
    receipt: dict[str, Any] = {"mid": mid} if mid else {"watermark": watermark or now_ms()}
    return messaging(platform, account_id, [{"sender": {"id": sender_id}, "recipient": {"id": account_id},
                                             "timestamp": now_ms(), "read": receipt}])


def delivery(platform: str, account_id: str, sender_id: str, mids: list[str]) -> dict[str, Any]:
    return messaging(platform, account_id, [{"sender": {"id": sender_id}, "recipient": {"id": account_id},
                                             "timestamp": now_ms(),
                                             "delivery": {"mids": mids, "watermark": now_ms()}}])


def whatsapp(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": new_id("2"), "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"display_phone_number": "15550001111",
                                                    "phone_number_id": phone_number_id}, **value}}]}]}


def wa_message(phone_number_id: str, wa_id: str, text: str | None = None, *, name: str | None = None,
               wamid: str | None = None, image: tuple[str, str] | None = None,
               sent: float | None = None) -> dict[str, Any]:
    """A WhatsApp message from ``wa_id`` (their number, digits only), with their profile name."""
    message: dict[str, Any] = {"from": wa_id, "id": wamid or "wamid." + uuid.uuid4().hex.upper(),
                               "timestamp": str(int(sent or time.time()))}
    if image is not None:
        message.update(type="image",
                       image={"id": image[0], "mime_type": image[1], "sha256": "x", "caption": text or ""})
    else:
        message.update(type="text", text={"body": text})
    contacts = [{"profile": {"name": name}, "wa_id": wa_id}] if name else []
    return whatsapp(phone_number_id, {"contacts": contacts, "messages": [message]})


def wa_status(phone_number_id: str, wamid: str, status: str, error_code: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                             "recipient_id": "15550009999"}
    if error_code is not None:
        entry["errors"] = [{"code": error_code, "title": "Message failed for 447700900123"}]
    return whatsapp(phone_number_id, {"statuses": [entry]})
