"""``commhub replay --as-of T``: timelines and the inbox as they were known at a past moment, rebuilt
from the events with a progress bar, printed as tables or written as JSON."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from api import logs
from api.bootstrap import bootstrap
from api.present import plain
from api.settings import Settings
from projections.replay import Replay, Replayer, ReplayTimeInvalidError

console = Console()


class RateColumn(ProgressColumn):
    """Events per second, averaged by rich over the last moments."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or (task.completed / task.elapsed if task.elapsed else 0)
        return Text(f"{speed:,.0f} events/s", style="progress.data.speed")


def replay(
    as_of: str = typer.Option(..., "--as-of", help="The moment, with a time zone: 2026-11-01T09:00:00Z."),
    contact: UUID = typer.Option(None, "--contact", help="Replay one contact: its timeline and conversations."),
    workspace: UUID = typer.Option(None, "--workspace", help="Replay one workspace: its inbox and timelines."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the result as JSON to this file."),
) -> None:
    """Rebuild timelines and the inbox as they were known at a past moment, from the events.

    Without --contact or --workspace every workspace is replayed (a summary is printed). Subjects
    erased since then show as erased: their personal data cannot be read at any moment.
    """
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        console.print("[red]--as-of is not a date and time[/]; use e.g. 2026-11-01T09:00:00Z")
        raise typer.Exit(2) from None
    if moment.utcoffset() is None:
        console.print("[red]--as-of needs a time zone[/]; use e.g. 2026-11-01T09:00:00Z")
        raise typer.Exit(2)
    if contact is not None and workspace is not None:
        console.print("[red]give --contact or --workspace, not both[/]")
        raise typer.Exit(2)
    logs.configure("warning")
    with bootstrap(Settings.from_env()) as hub:
        replayer = Replayer(hub.app, hub.database)
        if contact is not None and contact not in hub.app.repository:
            console.print("[red]no such contact[/]")
            raise typer.Exit(1)
        head = hub.app.recorder.max_notification_id() or 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("replaying events", total=head or 1)
                result = replayer.run(moment, workspace_id=workspace, contact_id=contact,
                                      progress=lambda n, _position: progress.advance(task, n))
                progress.update(task, total=max(result.stats.events_read, 1), completed=max(result.stats.events_read, 1))
        except ReplayTimeInvalidError as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from None
    stats = result.stats
    console.print(f"replayed {stats.events_read:,} events ({stats.events_applied:,} applied) as of "
                  f"{moment.isoformat()} in {stats.seconds:.2f}s: {stats.events_per_second:,.0f} events/s")
    if stats.unreadable:
        console.print(f"[yellow]{stats.unreadable} events could not be read and were skipped[/]")
    if output is not None:
        output.write_text(json.dumps(as_json(result), indent=1))
        console.print(f"written to {output}")
    else:
        show(result)


def as_json(result: Replay) -> dict[str, Any]:
    body: dict[str, Any] = {
        "as_of": result.as_of, "workspace_id": result.workspace_id, "contact_id": result.contact_id,
        "events_read": result.stats.events_read, "events_applied": result.stats.events_applied,
        "last_position": result.stats.last_position, "inbox": result.inbox, "timeline": result.timeline,
    }
    if result.contact_id is not None:
        body["contact"] = result.contact
    else:
        body["contacts"] = result.contacts
    return plain(body)


def show(result: Replay) -> None:
    if result.contact_id is not None:
        contact = result.contact or {}
        state = "erased" if contact.get("erased") else contact.get("status", "did not exist yet")
        console.print(f"contact {result.contact_id}: {state}")
        table = Table("position", "at", "kind", "detail", title="timeline")
        for row in result.timeline:
            table.add_row(str(row["position"]), row["at"].isoformat(), row["kind"], _detail(row["detail"]))
        console.print(table)
    elif result.workspace_id is None:
        console.print(f"every workspace: {len(result.contacts)} contacts, {len(result.inbox)} conversations, "
                      f"{len(result.timeline)} timeline entries (use --workspace or --output for the rows)")
        return
    table = Table("conversation", "contact", "channel", "status", "unread", "last activity", "preview",
                  title="conversations" if result.contact_id is not None else "inbox")
    for row in result.inbox:
        name = "(erased)" if row.get("contact_erased") else (row["contact_name"] or "")
        table.add_row(str(row["conversation_id"])[:8], name, row["channel"], row["status"], str(row["unread"]),
                      row["last_activity"].isoformat(), row["preview"] or "")
    console.print(table)


def _detail(detail: Any) -> str:
    if detail is None:
        return ""
    return ", ".join(f"{k}={'(erased)' if v is None else v}" for k, v in detail.items())
