"""The agent websocket: live updates for the agent's workspace, resumable from a position.

Protocol: the client connects to ``/ws/agent`` and sends ``{"token": "...", "after": N}`` first
(``after`` is the last position it saw; omit it to start from now). The server answers with
every update after N, then ``{"type": "ready", "position": P}``, then live updates as they happen.
Close codes: 4401 not authenticated, 4403 role may not use the inbox, 4409 too far behind (reload).
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
from api.routing import APIRouter

router = APIRouter()
TOKEN_RECHECK_SECONDS = 15.0


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
        if after is not None and not 0 <= after < 2**62:
            raise ValueError("after out of range")
    except (asyncio.TimeoutError, ValueError, KeyError, TypeError, OverflowError):
        await socket.close(4401, "send {\"token\": ..., \"after\": N} first")
        return
    except WebSocketDisconnect:
        return
    principal = await run_in_threadpool(hub.tokens.resolve, token, datetime.now(timezone.utc))
    if principal is None:
        await socket.close(4401, "token is invalid, expired or revoked")
        return
    if "inbox" not in PERMISSIONS.get(principal.role, frozenset()):
        await socket.close(4403, "role may not use the inbox")
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
        await _pump(socket, queue, last, still_valid)
    except WebSocketDisconnect:
        pass
    finally:
        feed.unsubscribe(principal.workspace_id, queue)
        await run_in_threadpool(presence.agent_left, connection_id)


async def _pump(
    socket: WebSocket, queue: asyncio.Queue[dict[str, Any]], last: int, still_valid: Callable[[], Any],
) -> None:
    """Forward live updates (skipping what the backfill already sent) until the client leaves,
    re-checking the token so that a revoked or expired one stops the stream."""
    loop = asyncio.get_running_loop()
    receiver = asyncio.create_task(_drain(socket))
    getter: asyncio.Task[dict[str, Any]] | None = None
    checked = loop.time()
    try:
        while not receiver.done():
            if loop.time() - checked > TOKEN_RECHECK_SECONDS:
                checked = loop.time()
                holder = await run_in_threadpool(still_valid)
                if holder is None:
                    await socket.close(4401, "token is invalid, expired or revoked")
                    return
                if "inbox" not in PERMISSIONS.get(holder.role, frozenset()):
                    await socket.close(4403, "role may not use the inbox")
                    return
            getter = getter or asyncio.create_task(queue.get())  # kept across timeouts: no update is lost
            done, _ = await asyncio.wait({getter, receiver}, timeout=TOKEN_RECHECK_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                update = getter.result()
                getter = None
                if "position" not in update:  # typing: live only
                    await socket.send_json(update)
                elif update["position"] > last:
                    await socket.send_json(update)
                    last = update["position"]
    finally:
        receiver.cancel()
        if getter is not None:
            getter.cancel()


async def _drain(socket: WebSocket) -> None:
    """Read (and ignore) client frames; returns when the client disconnects."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
