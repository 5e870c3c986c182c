"""How the agent websocket frames live updates: one frame per update, or — for a client that asked
with ``"batch": true`` — the updates published together in one ``batch`` frame, in order, without
what the client has already seen. Driven through ``_forward`` with a socket that records its frames."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from api.live import LiveFeed, Update
from api.routes.agent_socket import _forward


class RecordingSocket:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.sent = asyncio.Event()
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        self.frames.append(text)
        self.sent.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def message(position: int) -> Update:
    return Update(type="conversation.message_received", position=position, body=f"m{position}")


async def forwarded(batch: bool, published: list[list[Update]], last: int) -> list[object]:
    """Frames sent for ``published`` (each inner list put in the queue at once), parsed."""
    socket, queue = RecordingSocket(), asyncio.Queue()
    task = asyncio.create_task(_forward(socket, queue, last, batch))  # type: ignore[arg-type]
    try:
        for together in published:
            for update in together:
                queue.put_nowait(update)
            while not queue.empty():
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    return [json.loads(frame) for frame in socket.frames]


@pytest.mark.parametrize("batch", [True, False])
def test_updates_published_together_come_in_one_frame_only_when_asked(batch):
    typing = Update(type="conversation.typing", conversation_id="c", who="visitor")
    frames = asyncio.run(forwarded(batch, [[message(4), message(5), message(6), typing], [message(7)]], last=4))
    if batch:
        assert frames == [{"type": "batch", "updates": [dict(message(5)), dict(message(6)), dict(typing)]},
                          dict(message(7))]
    else:
        assert frames == [dict(message(5)), dict(message(6)), dict(typing), dict(message(7))]


def test_a_batch_of_only_seen_updates_sends_nothing():
    assert asyncio.run(forwarded(True, [[message(2), message(3)]], last=3)) == []


def test_a_backlog_is_split_into_frames_of_bounded_count_and_size():
    backlog = [message(n) for n in range(1, 151)]
    frames = asyncio.run(forwarded(True, [backlog], last=0))
    assert [len(frame["updates"]) for frame in frames] == [100, 50]
    assert [u["position"] for frame in frames for u in frame["updates"]] == list(range(1, 151))

    long = [Update(type="conversation.message_received", position=n, body="é" * 50_000) for n in (1, 2, 3)]
    frames = asyncio.run(forwarded(True, [long], last=0))
    assert [len(frame["updates"]) if frame["type"] == "batch" else 1 for frame in frames] == [2, 1]
    sizes = [len(json.dumps(frame, ensure_ascii=False).encode()) for frame in frames]
    assert max(sizes) < 512 * 1024 and [u["position"] for u in frames[0]["updates"]] == [1, 2]


class Store:
    schema = "unit"  # the feed's typing channel is named after it; nothing here reads the store


def test_a_socket_that_falls_too_far_behind_is_dropped_and_closed_so_memory_does_not_grow():
    async def scenario() -> tuple[list[object], tuple[int, str] | None, int, int]:
        feed = LiveFeed(None, Store(), queue_limit=3)  # type: ignore[arg-type]
        workspace = uuid.uuid4()
        stalled, reading = feed.subscribe(workspace), feed.subscribe(workspace)
        for position in range(1, 6):  # nobody takes from ``stalled``; ``reading`` is drained as it goes
            feed._dispatch_all([([workspace], message(position))])
            while not reading.empty():
                reading.get_nowait()
        assert stalled.qsize() == 1  # its pending updates freed, only the overflow mark left
        socket = RecordingSocket()
        await _forward(socket, stalled, 0, True)  # type: ignore[arg-type]  # returns after closing
        feed._dispatch_all([([workspace], message(6))])
        return [json.loads(f) for f in socket.frames], socket.closed, stalled.qsize(), reading.qsize()

    frames, closed, left, other = asyncio.run(scenario())
    assert frames == [] and closed is not None and closed[0] == 1013
    assert (left, other) == (0, 1)  # unsubscribed; the agent who reads still gets every update
