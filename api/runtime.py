"""Process-wide runtime settings for long-running processes (``commhub serve``, ``commhub worker``)."""

from __future__ import annotations

import gc


def freeze_start_up_heap() -> None:
    """Collect once, then move every object alive after start-up out of the collector's reach.

    Start-up leaves well over a hundred thousand long-lived objects (FastAPI's routes and models,
    pydantic, eventsourcing, the projections); every full collection traversed all of them, holding
    the GIL for ~100 ms every few seconds under load — a pause every in-flight request and the
    live feed waited out (docs/decisions.md, 28). Frozen objects are never collected, which is
    what they are anyway: they live as long as the process.
    """
    gc.collect()
    gc.freeze()
