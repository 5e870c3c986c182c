"""The agent websocket: live updates for the agent's workspace, resumable from a position.

Protocol: the client connects to ``/ws/agent`` and sends ``{"token": "...", "after": N}`` first
(``after`` is the last position it saw; omit it to start from now). The server answers with
every update after N, then ``{"type": "ready", "position": P}``, then live updates as they happen.
A client that adds ``"batch": true`` to its hello may get several live updates in one frame,
``{"type": "batch", "updates": [...]}`` (in order): whatever is queued for the socket when it sends,
typically a projection batch (one write per socket instead of one per update, which is what 50
agents cost the server); a frame holds at most ``BATCH_UPDATES`` updates and about ``BATCH_CHARS``
characters (one longer update goes alone, as a plain frame).
Close codes: 4401 not authenticated, 4403 role may not use the inbox, 4409 too far behind (reload),
1013 the client read nothing while ``QUEUE_LIMIT`` updates waited for it (reconnect with ``after``).
Typing indicators (``conversation.typing``) carry no position: they are not replayed. While the socket
is open the agent counts as online for the web chat widget (``commhub_agent_presence``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, Callable
from uuid import uuid4

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api.deps import PERMISSIONS
from api.live import CLOSE_OVERFLOW, OVERFLOW, Update
from api.routing import APIRouter

router = APIRouter()
BATCH_UPDATES = 100  # at most this many updates, and about BATCH_CHARS characters, in one batch frame
BATCH_CHARS = 128 * 1024  # at most ~512 KiB of UTF-8: under the 1 MiB frames clients such as `websockets` take


@router.websocket("/ws/agent")
async def agent_socket(socket: WebSocket) -> None:
    await socket.accept()
    hub = socket.app.state.hub
    feed = socket.app.state.live
    try:
        hello = json.loads(await asyncio.wait_for(socket.receive_text(), timeout=10))
        token = str(hello["token"])
        after = hello.get("after")
        after = int(after) if after is not None else None
        batch = hello.get("batch", False)
        if not isinstance(batch, bool):
            raise ValueError("batch must be true or false")
        if after is not None and not 0 <= after < 2**62:
            raise ValueError("after out of range")
    except (asyncio.TimeoutError, ValueError, KeyError, TypeError, OverflowError):
        await socket.close(4401, "send {\"token\": ..., \"after\": N} first")
        return
    except WebSocketDisconnect:
        return
    principal = await run_in_threadpool(hub.tokens.resolve, token, datetime.now(timezone.utc))
    if await _refused(socket, principal):
        return
    queue = feed.subscribe(principal.workspace_id)
    presence, connection_id = hub.extras["visitors"], uuid4()

    def still_valid() -> Any:
        holder = hub.tokens.resolve(token, datetime.now(timezone.utc))
        if holder is not None:
            presence.agent_seen(connection_id, principal.workspace_id, datetime.now(timezone.utc))
        return holder

    try:
        await run_in_threadpool(presence.agent_seen, connection_id, principal.workspace_id, datetime.now(timezone.utc))
        head = await run_in_threadpool(feed.floor)
        last = head if after is None else after
        if after is not None:
            missed = await run_in_threadpool(feed.backfill, principal.workspace_id, after, head)
            if missed is None:
                await socket.close(4409, "too far behind; reload and reconnect without 'after'")
                return
            for update in missed:
                await socket.send_json(update)
            last = max(after, head)
        await socket.send_json({"type": "ready", "position": last})
        await _pump(socket, queue, last, still_valid, hub.settings.socket_recheck_seconds, batch)
    except WebSocketDisconnect:
        pass
    finally:
        feed.unsubscribe(principal.workspace_id, queue)
        await run_in_threadpool(presence.agent_left, connection_id)


async def _pump(
    socket: WebSocket, queue: asyncio.Queue[Update], last: int, still_valid: Callable[[], Any],
    recheck_seconds: float, batch: bool = False,
) -> None:
    """Forward live updates (skipping what the backfill already sent) until the client leaves,
    re-checking the token so that a revoked or expired one stops the stream.

    Three tasks, so that an update costs the socket one queue wake-up and one frame: the sender
    (each update's JSON is made once for every socket, ``api.live.Update``), the reader that notices
    the client leaving, and the token check, which sleeps in between."""
    tasks = {asyncio.create_task(_forward(socket, queue, last, batch)), asyncio.create_task(_drain(socket)),
             asyncio.create_task(_recheck(socket, still_valid, recheck_seconds))}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a send that failed because the client left raises here, as it did inline
    finally:
        for task in tasks:
            task.cancel()


async def _forward(socket: WebSocket, queue: asyncio.Queue[Update], last: int, batch: bool) -> None:
    while True:
        pending = [await queue.get()]
        while batch and len(pending) < BATCH_UPDATES and not queue.empty():  # published together: one frame
            pending.append(queue.get_nowait())
        texts, size, overflow = [], 0, False
        for update in pending:
            if update is OVERFLOW:
                overflow = True
                continue
            position = update.get("position")
            if position is None or position > last:  # typing (no position) is live only
                text = update.text()  # made once for every socket
                if texts and size + len(text) > BATCH_CHARS:  # a frame stays well under clients' limits
                    await _send(socket, texts)
                    texts, size = [], 0
                texts.append(text)
                size += len(text)
                if position is not None:
                    last = position
        if texts:
            await _send(socket, texts)
        if overflow:
            await socket.close(*CLOSE_OVERFLOW)
            return


async def _send(socket: WebSocket, texts: list[str]) -> None:
    await socket.send_text(texts[0] if len(texts) == 1 else '{"type":"batch","updates":[' + ",".join(texts) + "]}")


async def _recheck(socket: WebSocket, still_valid: Callable[[], Any], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if await _refused(socket, await run_in_threadpool(still_valid)):
            return


async def _refused(socket: WebSocket, holder: Any) -> bool:
    """Close the socket if its token's holder (None: no valid token) may not use the inbox."""
    if holder is None:
        await socket.close(4401, "token is invalid, expired or revoked")
        return True
    if "inbox" not in PERMISSIONS.get(holder.role, frozenset()):
        await socket.close(4403, "role may not use the inbox")
        return True
    return False


async def _drain(socket: WebSocket) -> None:
    """Read (and ignore) client frames; returns when the client disconnects."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
