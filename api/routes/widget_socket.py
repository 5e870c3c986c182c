"""The visitor websocket of the web chat widget: ``/ws/widget/{public_key}``.

The handshake is refused (HTTP 403) unless the key is known and the ``Origin`` header is on the
widget's allowlist. The client then sends ``{"type": "hello", "visitor_token"?, "after"?,
"identity"? {user_id, expires, signature}}``; the server answers with the thread's messages after
``after``, then ``{"type": "ready", ...}``, then live messages and agent typing. Client frames:
``message`` {client_id, body, notice_accepted}, ``typing``, ``offline`` {client_id, email, body,
consent}. Each stored frame is acknowledged with ``ack`` {client_id, message_id}; resending a
``client_id`` stores nothing twice. Close codes: 4400 bad hello, 4403 identity refused (forged or
expired), 4410 the visitor's data was erased, 4429 rate limited.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api.live import CLOSE_OVERFLOW, OVERFLOW, Update
from api.rate_limit import TokenBucket
from api.routing import APIRouter
from api.widget_gateway import VisitorSession, WidgetGateway, live_frame
from domain.errors import (
    ContactErasedError,
    DomainError,
    SubjectErasedError,
    WidgetIdentityExpiredError,
    WidgetIdentityInvalidError,
)

router = APIRouter()
PRESENCE_SECONDS = 15.0
TYPING_EVERY = 2.0
MAX_REFUSALS = 20
CLIENT_ID_MAX = 64


def now() -> datetime:
    return datetime.now(timezone.utc)


@router.websocket("/ws/widget/{public_key}")
async def widget_socket(socket: WebSocket, public_key: str) -> None:
    gateway: WidgetGateway = socket.app.state.widget
    config = await run_in_threadpool(gateway.config, public_key) if len(public_key) <= 64 else None
    origin = socket.headers.get("origin", "").strip().lower().rstrip("/")
    if config is None or origin not in config.allowed_origins:
        await socket.close(1008)  # before accepting: the handshake is answered 403
        return
    ip = socket.client.host if socket.client else None
    await socket.accept()
    if not gateway.ip_connections.take(ip):
        await socket.close(4429, "too many connections from this address; retry later")
        return
    try:
        hello = _frame(await asyncio.wait_for(socket.receive_text(), timeout=10), gateway.max_chars)
        after = hello.get("after", 0)
        if hello.get("type") != "hello" or not isinstance(after, int) or not 0 <= after < 2**62:
            raise ValueError("not a hello")
    except (asyncio.TimeoutError, ValueError, KeyError, TypeError):
        await socket.close(4400, "send {\"type\": \"hello\", ...} first")
        return
    except WebSocketDisconnect:
        return
    try:
        session = await run_in_threadpool(gateway.open, config, hello, ip, now())
    except (WidgetIdentityInvalidError, WidgetIdentityExpiredError) as error:
        await socket.close(4403, str(error))
        return
    await VisitorConnection(socket, gateway, session).run(after)


def _frame(text: str, max_chars: int) -> dict[str, Any]:
    if len(text) > max_chars * 2 + 1000:
        raise ValueError("frame too large")
    frame = json.loads(text)
    if not isinstance(frame, dict):
        raise ValueError("frame must be an object")
    return frame


class VisitorConnection:
    def __init__(self, socket: WebSocket, gateway: WidgetGateway, session: VisitorSession) -> None:
        self.socket = socket
        self.gateway = gateway
        self.session = session
        self.feed = gateway.feed
        self.queue: asyncio.Queue[Update] | None = None
        self.last = 0
        self.bucket: TokenBucket = gateway.connection_messages.bucket()
        self.refusals = 0
        self.typed_at = 0.0
        self.online: bool | None = None

    async def run(self, after: int) -> None:
        self.gateway.connections += 1
        try:
            if self.session.contact_id is not None:
                self._subscribe()
                head = await run_in_threadpool(self.feed.floor)
                for frame in await run_in_threadpool(self.gateway.history, self.session, after, head):
                    await self.socket.send_json(frame)
                self.last = max(after, head)
            self.online = await self._agents_online()
            config = self.session.config
            await self.socket.send_json({
                "type": "ready", "position": self.last, "agents_online": self.online, "title": config.workspace_name,
                "notice": config.notice, "privacy_policy_url": config.privacy_policy_url,
                "offline_consent": config.offline_consent, "known": self.session.contact_id is not None,
                "verified": self.session.user_id is not None, "max_chars": self.gateway.max_chars,
            })
            await self._loop()
        except WebSocketDisconnect:
            pass
        finally:
            self.gateway.connections -= 1
            if self.queue is not None and self.session.conversation_id is not None:
                self.feed.unsubscribe(self.session.conversation_id, self.queue)
                self.gateway.subscriptions -= 1

    def _subscribe(self) -> None:
        if self.queue is None and self.session.conversation_id is not None:
            self.queue = self.feed.subscribe(self.session.conversation_id)
            self.gateway.subscriptions += 1

    async def _agents_online(self) -> bool:
        return await run_in_threadpool(self.gateway.visitors.agents_online, self.session.config.workspace_id, now())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        receiver: asyncio.Task[Any] = asyncio.create_task(self.socket.receive())
        getter: asyncio.Task[dict[str, Any]] | None = None
        checked = loop.time()
        try:
            while True:
                if self.queue is not None and getter is None:
                    getter = asyncio.create_task(self.queue.get())
                waiting = {receiver} | ({getter} if getter is not None else set())
                done, _ = await asyncio.wait(waiting, timeout=PRESENCE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                if getter is not None and getter in done:
                    await self._forward(getter.result())
                    getter = None
                if receiver in done:
                    message = receiver.result()
                    if message["type"] == "websocket.disconnect":
                        return
                    if not await self._handle(message.get("text")):
                        return
                    receiver = asyncio.create_task(self.socket.receive())
                if loop.time() - checked > PRESENCE_SECONDS:
                    checked = loop.time()
                    online = await self._agents_online()
                    if online != self.online:
                        self.online = online
                        await self.socket.send_json({"type": "presence", "agents_online": online})
        finally:
            receiver.cancel()
            if getter is not None:
                getter.cancel()

    async def _forward(self, update: dict[str, Any]) -> None:
        if update is OVERFLOW:  # the visitor read nothing for long: the page resumes from its position
            await self.socket.close(*CLOSE_OVERFLOW)
            return
        frame = live_frame(update)
        if frame is None:
            return
        if "position" not in frame:
            await self.socket.send_json(frame)
        elif frame["position"] > self.last:
            await self.socket.send_json(frame)
            self.last = frame["position"]

    async def _refuse(self, code: str, client_id: Any = None, detail: str | None = None) -> bool:
        """Tell the visitor why a frame was refused; too many refusals end the connection."""
        self.refusals += 1
        if self.refusals > MAX_REFUSALS:
            await self.socket.close(4429, "too many refused frames")
            return False
        await self.socket.send_json({"type": "error", "code": code, "client_id": client_id,
                                     **({"detail": detail} if detail else {})})
        return True

    async def _handle(self, text: str | None) -> bool:
        """Handle one client frame; False when the connection must end."""
        try:
            frame = _frame(text or "", self.gateway.max_chars)
        except (ValueError, TypeError):
            return await self._refuse("invalid")
        kind = frame.get("type")
        if kind == "typing":
            await self._typing()
            return True
        if kind not in ("message", "offline"):
            return await self._refuse("invalid")
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID_MAX or not client_id.isprintable():
            return await self._refuse("invalid", detail="client_id must be 1-64 printable characters")
        if not self.bucket.take(asyncio.get_running_loop().time()) or not self.gateway.ip_messages.take(self.session.ip):
            return await self._refuse("rate_limited", client_id, "slow down and send again in a few seconds")
        try:
            body = self.gateway.check_body(frame.get("body"))
        except DomainError as error:
            return await self._refuse("too_long" if isinstance(frame.get("body"), str) and frame["body"].strip()
                                      else "invalid", client_id, str(error))
        if kind == "offline" and frame.get("consent") is not True:
            return await self._refuse("consent_required", client_id, "tick the box to agree to an answer by email")
        if self.session.contact_id is None and kind == "message" and frame.get("notice_accepted") is not True:
            return await self._refuse("notice_required", client_id, "show the pre-chat notice first")
        return await self._store(kind, frame, client_id, body)

    async def _store(self, kind: str, frame: dict[str, Any], client_id: str, body: str) -> bool:
        try:
            if self.session.contact_id is None:
                await run_in_threadpool(self.gateway.ensure_contact, self.session, now())
            self._subscribe()  # before storing: our own message's echo is not missed
            if kind == "message":
                message_id = await run_in_threadpool(self.gateway.receive, self.session, client_id, body, now())
            else:
                email = frame.get("email")
                if not isinstance(email, str) or len(email) > 254:
                    return await self._refuse("invalid_email", client_id, "enter a valid email address")
                message_id = await run_in_threadpool(self.gateway.offline, self.session, client_id, email, body, now())
        except (ContactErasedError, SubjectErasedError):
            await self.socket.close(4410, "this conversation was erased")
            return False
        except DomainError as error:
            code = "invalid_email" if "email" in type(error).__name__.lower() else "invalid"
            return await self._refuse(code, client_id, str(error))
        if self.session.new_token is not None:
            await self.socket.send_json({"type": "session", "visitor_token": self.session.new_token})
            self.session.new_token = None
        await self.socket.send_json({"type": "ack", "client_id": client_id, "message_id": str(message_id)})
        return True

    async def _typing(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        conversation_id = self.session.conversation_id
        if conversation_id is None or loop_time - self.typed_at < TYPING_EVERY:
            return
        self.typed_at = loop_time
        await run_in_threadpool(self.feed.publish_typing, self.session.config.workspace_id, conversation_id, "visitor")
