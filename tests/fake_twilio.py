"""A fake Twilio on loopback: the Messages API the twilio client calls, and signed webhooks and
status callbacks sent to commhub the way Twilio sends them.

Real HTTP on 127.0.0.1. Tell it how to answer the next Messages requests (201, 429, 500, a 4xx
with a Twilio error code, or hang), or to answer every request one way for a while (``outage``);
stop it and start it again on the same port to refuse connections meanwhile. By default every
accepted message gets status callbacks (sent, then delivered). The signature is computed here from
Twilio's published algorithm
(HMAC-SHA1 over the URL followed by the sorted form fields, base64), not with commhub's code.
"""

from __future__ import annotations

import base64
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
from urllib.parse import parse_qsl, urlencode

import httpx

from tests.loopback_http import LoopbackHttp

MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Received:
    """One request the fake's Messages API received."""

    account_sid: str
    form: dict[str, str]
    authorised: bool
    answered: int
    sid: str | None = None


@dataclass
class FakeTwilio(LoopbackHttp):
    account_sid: str = field(default_factory=lambda: "AC" + uuid.uuid4().hex)
    auth_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    callbacks: tuple[str, ...] = ("sent", "delivered")
    hang_seconds: float = 5.0
    delay_seconds: float = 0.0  # how long each Messages request takes before it is answered

    def __post_init__(self) -> None:
        self.requests: list[Received] = []
        self.plan: deque[str] = deque()
        self.callback_answers: list[int] = []
        self._lock = threading.Lock()
        self.proxy: tuple[str, str] | None = None  # (public base URL, where it really is): a reverse proxy
        self.outage: str | None = None  # while set, the answer to every authorised request ("500", "hang")
        self.port = 0

    # Lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.port, "start the fake first"
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """commhub's settings for talking to this fake."""
        return {"COMMHUB_TWILIO_ACCOUNT_SID": self.account_sid, "COMMHUB_TWILIO_AUTH_TOKEN": self.auth_token,
                "COMMHUB_TWILIO_API_URL": self.url}

    # Behaviour ------------------------------------------------------------------------------

    def answer_next(self, *answers: str) -> None:
        """Answers for the next Messages requests, in order: "201", "429", "500", "400:21211", "hang"."""
        with self._lock:
            self.plan.extend(answers)

    def messages(self) -> list[Received]:
        """Requests that reached the Messages API with valid credentials."""
        with self._lock:
            return [r for r in self.requests if r.authorised]

    def accepted(self) -> list[Received]:
        return [r for r in self.messages() if r.answered == 201]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length)
        if len(data) < length:  # the client died halfway through its request: Twilio never saw a message
            handler.close_connection = True
            return None
        form = dict(parse_qsl(data.decode()))
        match = MESSAGES.match(handler.path)
        if match is None:
            return self._reply(handler, 404, {"code": 20404, "message": "The requested resource was not found"})
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        authorised = match["sid"] == self.account_sid and handler.headers.get("Authorization") == expected
        with self._lock:
            answer = self.outage or (self.plan.popleft() if self.plan and authorised else "201")
            record = Received(match["sid"], form, authorised, 0)
            self.requests.append(record)
        if not authorised:
            record.answered = 401
            return self._reply(handler, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if answer == "hang":
            record.answered = -1
            time.sleep(self.hang_seconds)
            handler.close_connection = True
            return None
        status, _, code = answer.partition(":")
        record.answered = int(status)
        if record.answered != 201:
            error_code = int(code) if code else {429: 20429, 500: 20500}.get(record.answered, 21211)
            return self._reply(handler, record.answered, {"code": error_code, "message": "fake refusal",
                                                          "more_info": "", "status": record.answered})
        record.sid = "SM" + uuid.uuid4().hex
        try:
            self._reply(handler, 201, self._message_resource(record))
        finally:  # the message is Twilio's now, even if its sender is gone before it reads the answer
            if form.get("StatusCallback") and self.callbacks:
                threading.Thread(target=self._send_callbacks, args=(record,), daemon=True).start()
        return None

    def _message_resource(self, record: Received) -> dict[str, Any]:
        return {"sid": record.sid, "account_sid": self.account_sid, "to": record.form.get("To"),
                "from": record.form.get("From"), "body": record.form.get("Body"), "status": "queued",
                "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
                "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                "error_code": None, "error_message": None, "price": None, "uri": ""}

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _send_callbacks(self, record: Received) -> None:
        for status in self.callbacks:
            self.status_callback(record, status)

    # Requests to commhub, signed ----------------------------------------------------------

    def post(self, url: str, params: dict[str, str], *, signed_url: str | None = None,
             sign: bool = True, token: str | None = None) -> httpx.Response:
        """POST a form to ``url`` as Twilio does, signed for ``signed_url`` (default: ``url``); a URL
        under ``proxy``'s public base is signed as such and delivered to where the app really listens."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        if sign:
            headers["X-Twilio-Signature"] = signature(token or self.auth_token, signed_url or url, params)
        if self.proxy is not None and url.startswith(self.proxy[0]):
            url = self.proxy[1] + url[len(self.proxy[0]):]
        return httpx.post(url, content=urlencode(params), headers=headers, timeout=15)

    def status_callback(self, record: Received, status: str, error_code: str | None = None) -> httpx.Response:
        params = {"MessageSid": record.sid or "", "SmsSid": record.sid or "", "MessageStatus": status,
                  "SmsStatus": status, "AccountSid": self.account_sid, "From": record.form.get("From", ""),
                  "To": record.form.get("To", ""), "ApiVersion": "2010-04-01"}
        if error_code:
            params["ErrorCode"] = error_code
        response = self.post(record.form["StatusCallback"], params)
        with self._lock:
            self.callback_answers.append(response.status_code)
        return response

    def inbound_sms(self, app_url: str, *, sender: str, to: str, body: str, sid: str | None = None,
                    media: list[tuple[str, str]] = (), **extra: str) -> httpx.Response:
        """An incoming SMS/MMS webhook, with the fields Twilio sends."""
        sid = sid or "SM" + uuid.uuid4().hex
        params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": self.account_sid,
                  "MessagingServiceSid": "", "From": sender, "To": to, "Body": body, "NumMedia": str(len(media)),
                  "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01", "FromCountry": "GB",
                  "ToCountry": "GB", **extra}
        for index, (url, content_type) in enumerate(media):
            params[f"MediaUrl{index}"] = url
            params[f"MediaContentType{index}"] = content_type
        return self.post(app_url + "/webhooks/twilio/sms", params)

    def call_params(self, call_sid: str, *, sender: str, to: str, **extra: str) -> dict[str, str]:
        return {"CallSid": call_sid, "AccountSid": self.account_sid, "From": sender, "To": to,
                "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}
