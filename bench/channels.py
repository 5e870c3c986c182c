"""Benchmark: Twilio outbox throughput and inbound SMS webhook latency.

Run it with ``uv run python bench/channels.py [--quick]`` (about a minute; ``--quick`` under 30 s).
It uses the PostgreSQL server in ``DATABASE_URL`` when set, otherwise an embedded one; schemas
are fresh and dropped at the end; the only network traffic is to 127.0.0.1 (and the database).

1. Outbox throughput. An in-process hub (``api.bootstrap``) with the real Twilio channel pointed at
   the fake Twilio from ``tests/fake_twilio.py``: N contacts each text in, N replies are queued,
   then the outbox worker delivers them all (``run_once`` until nothing is due); reported as
   messages/s accepted by the fake. Baseline in the same run: the same twilio client sending N
   messages straight to the fake in a loop (the fake's raw request rate through the client).
2. Webhook latency. ``commhub serve`` as a real process with Twilio settings; M signed inbound SMS
   webhooks (a quarter from new senders) posted one after another on a kept-alive connection,
   p50/p95/p99 of the answer time. Baseline in the same run: a bare FastAPI endpoint in its own
   uvicorn process that reads the same form, verifies the same signature and answers the same
   empty TwiML (the protocol work without storing anything).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request, Response
from rich.table import Table
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.kek import encode_kek, generate_kek  # noqa: E402
from adapters.twilio_sms import RoutedHttpClient  # noqa: E402
from api.bootstrap import bootstrap, channel_senders  # noqa: E402
from api.settings import Settings  # noqa: E402
from bench._common import Findings, console, fresh_schema, ms, percentile, ratio, server_url, server_version  # noqa: E402
from tests.e2e.conftest import free_port, start_server, stop_server  # noqa: E402
from tests.fake_twilio import FakeTwilio, signature  # noqa: E402

TWILIO_NUMBER = "+15005550006"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def bare_app() -> Any:
    """The baseline webhook: parse the form, verify the signature, answer empty TwiML."""
    app = FastAPI()
    validator = RequestValidator(os.environ["BENCH_TWILIO_TOKEN"])

    @app.post("/webhooks/twilio/sms")
    async def sms(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if not validator.validate(str(request.url), form, request.headers.get("X-Twilio-Signature", "")):
            return Response(status_code=403)
        return Response(EMPTY_TWIML, media_type="application/xml")

    return app


def phone(n: int) -> str:
    return f"+447400{n % 1_000_000:06d}"


# Part 1 ------------------------------------------------------------------------------------------

def outbox_throughput(url: str, stack: ExitStack, tmp: Path, count: int) -> dict[str, float]:
    fake = FakeTwilio(callbacks=()).start()
    stack.callback(fake.stop)
    database = fresh_schema(stack, url, "twilio")
    settings = Settings(database_url=url, db_schema=database.schema, data_dir=tmp, kek=encode_kek(generate_kek()),
                        twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                        twilio_api_url=fake.url, public_url="https://hub.example.test")
    now = datetime.now(timezone.utc)
    with bootstrap(settings, database=database) as hub:
        app = hub.app
        workspace_id = app.create_workspace(workspace_id=uuid.uuid4(), name="Bench", slug="bench-twilio",
                                            time_zone="Europe/London", now=now)
        app.attach_number(workspace_id, TWILIO_NUMBER, now)
        conversations = []
        for index in range(count):
            contact_id = app.find_or_create_contact(workspace_id, kind="phone", value=phone(index), name=None, now=now)
            received = app.receive_sms(workspace_id=workspace_id, contact_id=contact_id, body="Hello",
                                       provider_message_id=f"SMbench{index}", attachments=[], now=now,
                                       to_number=TWILIO_NUMBER)
            conversations.append(received.conversation_id)
        hub.outbox.channels = channel_senders(settings, app)
        rates: dict[int, float] = {}
        for concurrency in (1, settings.outbox_concurrency):  # a fresh batch of replies for each
            for index, conversation_id in enumerate(conversations):
                app.reply(workspace_id, conversation_id, body=f"Reply {index}", author_id=None, now=now)
            hub.projections.catch_up()
            hub.outbox.concurrency = concurrency
            sent_before = len(fake.accepted())
            started = time.perf_counter()
            while hub.outbox.run_once(limit=100):
                pass
            rates[concurrency] = (len(fake.accepted()) - sent_before) / (time.perf_counter() - started)
        delivered = len(fake.accepted())
        with database.connect() as conn:
            pending = conn.execute("SELECT count(*) FROM commhub_outbox WHERE status <> 'sent'").fetchone()[0]

    client = RoutedHttpClient(fake.url, 10.0)
    from twilio.rest import Client

    twilio = Client(fake.account_sid, fake.auth_token, http_client=client)
    started = time.perf_counter()
    for index in range(count):
        twilio.messages.create(to=phone(index), from_=TWILIO_NUMBER, body=f"Direct {index}")
    baseline = time.perf_counter() - started
    return {"delivered": delivered, "count": 2 * count, "unsent": pending, "serial": rates[1],
            "ours": rates[settings.outbox_concurrency], "concurrency": settings.outbox_concurrency,
            "baseline": count / baseline}


# Part 2 ------------------------------------------------------------------------------------------

def bare_server(stack: ExitStack, token: str) -> str:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.channels:bare_app", "--factory", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env={**os.environ, "BENCH_TWILIO_TOKEN": token})
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(base + "/webhooks/twilio/sms", timeout=1)
            return base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the bare baseline server did not start")


def webhook_latencies(base: str, token: str, count: int, account_sid: str, to: str) -> list[float]:
    timings: list[float] = []
    with httpx.Client(timeout=15) as http:
        for index in range(count + 20):
            sender = phone(600_000 + index) if index % 4 == 0 else phone(500_000 + index % 50)  # a quarter new
            params = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": account_sid, "From": sender, "To": to,
                      "Body": f"Message {index}", "NumMedia": "0", "ApiVersion": "2010-04-01"}
            url = base + "/webhooks/twilio/sms"
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": signature(token, url, params)}
            started = time.perf_counter()
            response = http.post(url, content=urlencode(params), headers=headers)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")
            if index >= 20:  # warm-up
                timings.append(elapsed)
    return timings


def webhook_latency(url: str, stack: ExitStack, tmp: Path, count: int) -> dict[str, list[float]]:
    fake = FakeTwilio(callbacks=()).start()
    stack.callback(fake.stop)
    database = fresh_schema(stack, url, "twilio_hook")
    env = {"DATABASE_URL": url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": encode_kek(generate_kek()),
           "COMMHUB_LOG_LEVEL": "warning", **fake.env()}
    data_dir = tmp / "server"
    data_dir.mkdir()
    server = start_server(data_dir, env, "--demo", timeout=120)
    stack.callback(stop_server, server)
    login = json.loads((data_dir / "demo-login.json").read_text())
    token = httpx.post(f"{server.url}/api/v1/auth/login", json={"workspace": login["workspace_slug"],
                       "email": login["email"], "password": login["password"]}).json()["token"]
    httpx.post(f"{server.url}/api/v1/sms/numbers", json={"number": TWILIO_NUMBER},
               headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    ours = webhook_latencies(server.url, fake.auth_token, count, fake.account_sid, TWILIO_NUMBER)
    bare = bare_server(stack, fake.auth_token)
    baseline = webhook_latencies(bare, fake.auth_token, count, fake.account_sid, TWILIO_NUMBER)
    return {"ours": ours, "baseline": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and webhooks")
    args = parser.parse_args()
    messages, hooks = (200, 200) if args.quick else (1000, 1000)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        url, where = server_url(stack, Path(tmp))
        console.log(f"PostgreSQL {server_version(url)}: {where}")
        console.log(f"outbox: {messages} replies through the Twilio channel")
        outbox = outbox_throughput(url, stack, Path(tmp), messages)
        console.log(f"webhooks: {hooks} signed inbound SMS")
        latency = webhook_latency(url, stack, Path(tmp), hooks)

    table = Table(title="Outbox throughput (messages/s accepted by the fake Twilio)")
    for column in ("path", "messages/s", "ratio to baseline"):
        table.add_column(column)
    table.add_row(f"outbox worker ({outbox['concurrency']} sends at a time) → twilio client → fake",
                  f"{outbox['ours']:.0f}", ratio(outbox["ours"], outbox["baseline"]))
    table.add_row("outbox worker (one at a time) → twilio client → fake", f"{outbox['serial']:.0f}",
                  ratio(outbox["serial"], outbox["baseline"]))
    table.add_row("baseline: twilio client → fake in a loop", f"{outbox['baseline']:.0f}", "1.00")
    console.print(table)
    console.print(f"the fake accepted {outbox['delivered']} requests for {outbox['count']} queued replies; "
                  f"outbox rows not sent: {outbox['unsent']}")

    table = Table(title="Inbound SMS webhook latency (signed, sequential, kept-alive connection)")
    for column in ("endpoint", "p50", "p95", "p99", "p99 ratio"):
        table.add_column(column)
    labels = (("ours", "commhub /webhooks/twilio/sms (stored)"), ("baseline", "bare FastAPI: verify + TwiML"))
    for name, label in labels:
        values = latency[name]
        table.add_row(label, ms(percentile(values, 50)), ms(percentile(values, 95)), ms(percentile(values, 99)),
                      ratio(percentile(values, 99), percentile(latency["baseline"], 99)))
    console.print(table)

    findings = Findings("channels")
    findings.figure(f"outbox → Twilio, {outbox['concurrency']} sends at a time", outbox["ours"], outbox["baseline"],
                    "messages/s", baseline_name="twilio client → fake in a loop")
    findings.figure("outbox → Twilio, one at a time", outbox["serial"], outbox["baseline"], "messages/s",
                    baseline_name="twilio client → fake in a loop")
    for p in (50, 99):
        findings.figure(f"signed SMS webhook p{p}", percentile(latency["ours"], p) * 1000,
                        percentile(latency["baseline"], p) * 1000, "ms", better="lower",
                        baseline_name="bare FastAPI: verify + TwiML")
    findings.latencies("SMS webhook (commhub)", latency["ours"])
    findings.latencies("SMS webhook (bare FastAPI baseline)", latency["baseline"])
    findings.write()


if __name__ == "__main__":
    main()
