"""Read-your-writes without holding a worker thread.

A route that changed something answers only once the read models include its change, so the
caller's next read sees it. ``settle(hub)`` (api/deps.py) waits in the route's worker thread; a
route whose answer does not read the projections calls ``settle_before_answer()`` instead, and
the wait moves to the event loop: ``ReadYourWrites`` holds the answer's first message until the
projections (of this process or, in follower mode, of a ``commhub worker``) reach what the
request wrote. The worker thread is free for the next request meanwhile, which is what keeps a
burst of inbound messages from queueing behind requests that only wait.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from domain.application import last_position

SETTLE_SECONDS = 5.0  # read-your-writes waits at most this long; the answer then leaves anyway


@dataclass
class Written:
    """The highest event position a request stored (shared with its worker threads)."""

    position: int = 0


_written: ContextVar[Written | None] = ContextVar("commhub_request_written", default=None)


def settle_before_answer() -> bool:
    """Hold this request's answer until the read models include what it has stored so far.

    Called in the route (worker thread or event loop) after its writes; returns False outside a
    request served through ``ReadYourWrites`` (the caller should then wait itself)."""
    written = _written.get()
    if written is None:
        return False
    written.position = max(written.position, last_position.get() or 0)
    return True


class ReadYourWrites:
    """ASGI middleware: gives each HTTP request a ``Written`` and awaits it before the answer starts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        written = Written()
        token = _written.set(written)

        async def send_settled(message: Any) -> None:
            if message["type"] == "http.response.start" and written.position:
                position, written.position = written.position, 0
                await scope["app"].state.hub.settled(position, SETTLE_SECONDS)
            await send(message)

        try:
            await self.app(scope, receive, send_settled)
        finally:
            _written.reset(token)
