"""How the agent websocket frames live updates: one frame per update, or — for a client that asked
with ``"batch": true`` — the updates published together in one ``batch`` frame, in order, without
what the client has already seen. Driven through ``_forward`` with a socket that records its frames."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.live import Update
from api.routes.agent_socket import _forward


class RecordingSocket:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.sent = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.frames.append(text)
        self.sent.set()


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
