"""Benchmark: outbound emails/s to a loopback SMTP relay, and inbound webhook latency.

Run it with ``uv run python bench/mail.py [--outbound N] [--inbound N]``. It uses the PostgreSQL
server in ``DATABASE_URL`` when set, otherwise an embedded one; every part gets a fresh schema,
dropped at the end. All traffic is to 127.0.0.1 (and the database server).

Part 1 — outbound. A real aiosmtpd relay on loopback (the tests' ``Relay``). N replies are queued
in N email conversations (one contact each), the projections catch up, then the real outbox worker
(``OutboxWorker.run_once`` with ``SmtpEmailSender``) delivers them all; emails/s = N / wall time,
every message checked at the relay. Baselines in the same run: the same number of already built
messages sent with bare ``aiosmtplib.send`` (one connection per message, as our sender does), and
``SmtpEmailSender.send`` alone (composition and SMTP, without the outbox's claim and outcome events).

Part 2 — inbound. A ``commhub serve`` process (started as the end-to-end tests start it) with
``COMMHUB_EMAIL_INBOUND_SECRET``; N signed raw MIME messages (multipart/alternative, unique
Message-ID, 1 sender per 5 messages) are posted one at a time to ``/webhooks/email/inbound``
(answer = stored and read models updated). p50/p95/p99 next to ``GET /healthz`` and a wrongly
signed POST of the same body (HTTP + reading the body + the HMAC check) on the same connection.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project root first

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from email.message import EmailMessage  # noqa: E402

import aiosmtplib  # noqa: E402
import httpx  # noqa: E402

from adapters.channels import OutboundMessage  # noqa: E402
from adapters.kek import encode_kek, generate_kek  # noqa: E402
from adapters.outbox_worker import OutboxWorker  # noqa: E402
from adapters.smtp_email import SmtpEmailSender, SmtpRelay  # noqa: E402
from api.bootstrap import bootstrap  # noqa: E402
from api.routes.email import signature_for  # noqa: E402
from api.settings import Settings  # noqa: E402
from bench._common import Findings, console, fresh_schema, ms, percentile, ratio, server_url  # noqa: E402
from tests.e2e.conftest import start_server, stop_server  # noqa: E402
from tests.smtp_relay import Relay  # noqa: E402

FROM = "clinic@harbour.example"


def outbound(stack: ExitStack, url: str, tmp: Path, count: int, findings: Findings) -> None:
    relay = stack.enter_context(Relay(tmp))
    database = fresh_schema(stack, url, "email_out")
    settings = Settings(database_url=url, db_schema=database.schema, data_dir=tmp, kek=encode_kek(generate_kek()))
    hub = stack.enter_context(bootstrap(settings, database=database))
    now = datetime.now(timezone.utc)
    workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name="Harbour Physio",
                                            slug=f"bench-{uuid.uuid4().hex[:8]}", time_zone="Europe/London", now=now)
    messages = []
    for i in range(count):
        contact_id = hub.app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name=f"Patient {i}",
                                            email=f"patient{i}.{uuid.uuid4().hex[:6]}@example.org", now=now)
        conversation_id = hub.app.start_conversation(workspace_id, contact_id, "email", now)
        message_id, _ = hub.app.reply(workspace_id, conversation_id, body=f"Your appointment {i} is confirmed.",
                                      author_id=None, now=now)
        messages.append(OutboundMessage(message_id, workspace_id, conversation_id, contact_id, "email",
                                        f"Your appointment {i} is confirmed.", 1))
    hub.projections.catch_up()
    email = hub.extras["email"]
    sender = SmtpEmailSender(SmtpRelay(host="127.0.0.1", port=relay.port, security="none", from_address=FROM),
                             hub.app, hub.database, email.files, email.links)
    worker = OutboxWorker(hub.app, hub.database, {"email": sender})

    started = time.perf_counter()
    while worker.run_once(limit=100):
        pass
    ours = time.perf_counter() - started
    assert len(relay.received) == count, f"relay got {len(relay.received)} of {count}"

    started = time.perf_counter()
    for message in messages:
        assert sender.send(message).status == "sent"
    sender_only = time.perf_counter() - started

    built = [relay.received[i].message for i in range(count)]
    started = time.perf_counter()
    for message in built:
        del message["Bcc"]
        asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=relay.port, start_tls=False))
    raw = time.perf_counter() - started

    console.print(f"[bold]Outbound[/] ({count} emails to an aiosmtpd relay on loopback)")
    console.print(f"  outbox worker + SmtpEmailSender : {count / ours:8.1f} emails/s")
    console.print(f"  SmtpEmailSender.send alone      : {count / sender_only:8.1f} emails/s")
    console.print(f"  bare aiosmtplib.send (baseline) : {count / raw:8.1f} emails/s")
    console.print(f"  ratio ours/baseline: {ratio(count / ours, count / raw)} (outbox), "
                  f"{ratio(count / sender_only, count / raw)} (sender alone)")
    findings.figure("outbound email, outbox + sender", count / ours, count / raw, "emails/s",
                    baseline_name="bare aiosmtplib.send")


def mime(i: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Patient {i // 5} <patient{i // 5}@example.org>"
    message["To"] = "help@harbour.example"
    message["Subject"] = f"Question {i}"
    message["Message-ID"] = f"<bench-{uuid.uuid4().hex}@example.org>"
    message.set_content(f"Hello, question number {i} about my appointment.")
    message.add_alternative(f"<p>Hello, question number <b>{i}</b> about my appointment.</p>", subtype="html")
    return bytes(message)


def inbound(stack: ExitStack, url: str, tmp: Path, count: int, findings: Findings) -> None:
    database = fresh_schema(stack, url, "email_in")
    secret = uuid.uuid4().hex
    env = {"DATABASE_URL": url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": encode_kek(generate_kek()),
           "COMMHUB_EMAIL_INBOUND_SECRET": secret, "COMMHUB_LOG_LEVEL": "warning"}
    server = start_server(tmp, env, "--demo")
    stack.callback(stop_server, server)
    login = json.loads((tmp / "demo-login.json").read_text())
    client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
    token = client.post("/api/v1/auth/login", json={"workspace": login["workspace_slug"], "email": login["email"],
                                                    "password": login["password"]}).json()["token"]
    client.post("/api/v1/email/inbound-addresses", json={"address": "help@harbour.example"},
                headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    bodies = [mime(i) for i in range(count)]
    ours, health, refused = [], [], []
    for body in bodies:
        started = time.perf_counter()
        response = client.post("/webhooks/email/inbound", content=body,
                               headers={"X-Commhub-Signature": signature_for(secret, body)})
        ours.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json()["results"][0]["outcome"] == "stored", response.text
        started = time.perf_counter()
        client.get("/healthz")
        health.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert client.post("/webhooks/email/inbound", content=body,
                           headers={"X-Commhub-Signature": "sha256=00"}).status_code == 403
        refused.append(time.perf_counter() - started)

    console.print(f"\n[bold]Inbound webhook[/] ({count} signed raw MIME messages, one at a time)")
    console.print(f"  {'':28} {'p50':>10} {'p95':>10} {'p99':>10}")
    for name, values in (("POST /webhooks/email/inbound", ours), ("wrong signature (baseline)", refused),
                         ("GET /healthz (baseline)", health)):
        console.print(f"  {name:28} {ms(percentile(values, 50)):>10} {ms(percentile(values, 95)):>10} "
                      f"{ms(percentile(values, 99)):>10}")
    console.print(f"  stored messages/s one at a time: {count / sum(ours):.1f}; "
                  f"p95 ratio ours/healthz: {ratio(percentile(ours, 95), percentile(health, 95))}")
    for p in (50, 99):
        findings.figure(f"inbound email webhook p{p}", percentile(ours, p) * 1000, percentile(health, p) * 1000,
                        "ms", better="lower", baseline_name="GET /healthz")
    findings.latencies("inbound email webhook", ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outbound", type=int, default=300)
    parser.add_argument("--inbound", type=int, default=300)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        url, description = server_url(stack, tmp)
        console.print(f"PostgreSQL: {description}")
        (tmp / "out").mkdir()
        (tmp / "in").mkdir()
        findings = Findings("mail")
        outbound(stack, url, tmp / "out", args.outbound, findings)
        inbound(stack, url, tmp / "in", args.inbound, findings)
        findings.write()


if __name__ == "__main__":
    main()
