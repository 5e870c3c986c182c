"""The ``commhub`` command: run the hub, and manage its keys."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Callable
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import Progress

from adapters.kek import encode_kek, generate_kek, load_keyring, previous_key_file, write_key_file
from adapters.key_vault import KeyVault, Tombstone, rotation_lock
from api import logs
from api.bootstrap import bootstrap, start_database
from api.privacy_cli import register as register_privacy
from api.replay_command import replay
from api.runtime import freeze_start_up_heap
from api.worker_process import parent_gone
from api.settings import WORKER_MODES, Settings
from domain.errors import ContactNotFoundError

WS_MAX_BYTES = 64 * 1024  # websocket frames: the widget's messages are short; larger frames close the socket (1009)

app = typer.Typer(help="commhub: a self-hosted communications hub.", no_args_is_help=True)
keys = typer.Typer(help="Key encryption keys, data keys and tombstones.", no_args_is_help=True)
app.add_typer(keys, name="keys")
projections = typer.Typer(help="Read models built from the events.", no_args_is_help=True)
app.add_typer(projections, name="projections")
app.command()(replay)
register_privacy(app)
console = Console()


@app.command()
def serve(
    demo: bool = typer.Option(False, "--demo", help="Seed a demo workspace and print its login."),
    host: str = typer.Option(None, help="Interface to listen on (default COMMHUB_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to listen on (default COMMHUB_PORT or 8000)."),
    workers: str = typer.Option(None, "--workers", help="process: projections and background workers in a child "
                                "`commhub worker`; on: in this process; off: none (default COMMHUB_WORKERS, process)."),
    no_workers: bool = typer.Option(False, "--no-workers", help="The same as --workers off."),
) -> None:
    """Run the hub: API, workers and, without DATABASE_URL, an embedded PostgreSQL.

    On SIGTERM it stops accepting connections, closes websockets with code 1012 (clients
    reconnect and resume), waits for requests in flight, then lets the delivery in flight finish.
    """
    import uvicorn

    from api.app import create_app

    settings = Settings.from_env()
    if workers is not None and workers not in WORKER_MODES:
        raise typer.BadParameter(f"--workers must be one of {', '.join(WORKER_MODES)}")
    settings = replace(settings, host=host or settings.host, port=port or settings.port,
                       workers="off" if no_workers else workers or settings.workers)
    logs.configure(settings.log_level, settings.log_format)

    def announce(login: object) -> None:
        url = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold green]commhub[/] is running at {url}  (API docs: {url}/docs)")
        if login is not None:
            console.print(f"Demo workspace '{login.workspace_slug}': sign in as {login.email} / {login.password}")

    uvicorn.run(create_app(settings, demo=demo, on_ready=announce, long_running=True), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False, log_config=None,
                timeout_graceful_shutdown=int(settings.shutdown_seconds) or None,
                ws_max_size=WS_MAX_BYTES,
                ws_per_message_deflate=False)  # updates are small; compressing each one for every socket cost CPU per agent


@projections.command("status")
def projections_status() -> None:
    """How many events each projection still has to apply."""
    with bootstrap(Settings.from_env()) as hub:
        for name, lag in sorted(hub.projections.lag().items()):
            console.print(f"{name:<10} {'up to date' if lag == 0 else f'{lag} events behind'}")
        for name, position, error in hub.projections.failures():
            console.print(f"[red]{name} skipped event {position}: {error}[/] (fix the cause, then rebuild {name})")


@projections.command("rebuild")
def projections_rebuild(name: str = typer.Argument(..., help="Projection name, or 'all'.")) -> None:
    """Empty a projection and rebuild it from every stored event."""
    logs.configure("warning")
    with bootstrap(Settings.from_env()) as hub:
        names = sorted(hub.projections.projections) if name == "all" else [name]
        unknown = [n for n in names if n not in hub.projections.projections]
        if unknown:
            console.print(f"[red]unknown projection {unknown[0]!r}[/]; known: {', '.join(sorted(hub.projections.projections))}")
            raise typer.Exit(2)
        total = hub.app.recorder.max_notification_id() or 0
        with Progress(console=console) as progress:
            for each in names:
                task = progress.add_task(f"rebuilding {each}", total=total or 1)
                hub.projections.rebuild(each, progress=lambda n, t=task: progress.advance(t, n))
                progress.update(task, completed=total or 1)
    console.print(f"rebuilt {', '.join(names)} from {total} events")


@app.command()
def worker() -> None:
    """Run projections and the outbox without the API, e.g. as a separate process or container."""
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with bootstrap(settings) as hub:
        if not hub.vault.usable():  # else every sealed event would be recorded as unreadable and skipped
            console.print("[red]The KEK does not open the stored data keys[/]: give this worker the same "
                          "COMMHUB_KEK (or key file) as the server.")
            raise typer.Exit(2)
        hub.start_workers()
        freeze_start_up_heap()
        console.print("commhub worker running: projections and outbox")
        try:
            while not stop.wait(1.0):
                if parent_gone(settings.parent_pid):
                    break  # started by `commhub serve`, which has gone without stopping it
        except KeyboardInterrupt:
            pass


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random KEK (URL-safe base64) for COMMHUB_KEK or a secret manager."""
    print(encode_kek(generate_kek()))


@keys.command("status")
def keys_status() -> None:
    """How many data keys are wrapped by the current KEK and how many by older ones."""
    with _vault(Settings.from_env()) as vault:
        current, older = vault.count_keys()
        console.print(f"KEK {vault.keyring.current_id}: {current} data keys; under older KEKs: {older}; "
                      f"tombstones: {len(vault.tombstones())}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every data key under a new KEK. Events are not touched.

    With a key file (the default), stop servers and workers first (the command refuses otherwise):
    a new KEK is generated and the old one kept beside it until every data key is re-wrapped, so an
    interrupted rotation resumes when run again. With COMMHUB_KEK, set the new key there and the old one in
    COMMHUB_PREVIOUS_KEKS, then run this to re-wrap.
    """
    settings = Settings.from_env()
    key_file = settings.resolved_kek_file
    from_file = settings.kek is None
    with _vault(settings, exclusive=from_file, prepare_keys=(lambda: _next_key_file(key_file)) if from_file else None) as vault:
        _, pending = vault.count_keys()
        with Progress(console=console) as progress:
            task = progress.add_task("re-wrapping data keys", total=pending or 1)
            done = vault.rewrap(progress=lambda n: progress.advance(task, n))
            progress.update(task, completed=pending or 1)
        _, left = vault.count_keys()
        keyring = vault.keyring
    if left:
        console.print(f"[red]{left} data keys are still wrapped by a KEK that is not configured[/]")
        raise typer.Exit(1)
    if settings.kek is None:
        previous_key_file(key_file).unlink(missing_ok=True)
    console.print(f"re-wrapped {done} data keys under KEK {keyring.current_id}")


@keys.command("export-tombstones")
def keys_export_tombstones(path: Path) -> None:
    """Write every erasure tombstone to PATH, to keep apart from database backups."""
    with _vault(Settings.from_env()) as vault:
        stones = vault.tombstones()
    path.write_text(json.dumps([{k: str(v) for k, v in asdict(s).items()} for s in stones], indent=1))
    console.print(f"{len(stones)} tombstones written")


@keys.command("reapply-tombstones")
def keys_reapply_tombstones(path: Path) -> None:
    """After restoring a backup: shred again the keys of everyone erased since it was taken, record
    their erasure again, and purge their rows from the read models (the restored ones hold them)."""
    stones = [
        Tombstone(UUID(s["subject_id"]), UUID(s["workspace_id"]), UUID(s["request_id"]), datetime.fromisoformat(s["erased_at"]))
        for s in json.loads(path.read_text())
    ]
    with bootstrap(Settings.from_env()) as hub:
        shredded = hub.vault.reapply(stones)
        recorded = 0
        for stone in stones:
            try:
                contact = hub.app.get_contact(stone.workspace_id, stone.subject_id)
            except ContactNotFoundError:
                continue  # a staff member, or a contact created after the backup
            if not contact.erased:
                hub.app.erase_contact(stone.workspace_id, stone.subject_id, request_id=stone.request_id,
                                      actor_id=None, now=stone.erased_at)
                recorded += 1
        hub.projections.catch_up()
    console.print(f"{len(stones)} tombstones applied; {shredded} restored keys shredded again; "
                  f"{recorded} erasures recorded again")


def _next_key_file(key_file: Path) -> None:
    """Keep the current KEK as ``.previous`` and write a new one; resumes an interrupted rotation."""
    old_file = previous_key_file(key_file)
    if old_file.exists() and old_file.read_text() != key_file.read_text():
        return  # a rotation was interrupted after the new key was written: finish it
    write_key_file(old_file, load_keyring(None, key_file).current)
    write_key_file(key_file, generate_kek())


class _vault:
    """A started key vault (and embedded database, if any) for one command.

    ``exclusive`` first takes the rotation lock, which every running vault holds shared: a key
    file rotation refuses to run while a server or worker could still wrap keys with the old KEK.
    """

    def __init__(self, settings: Settings, *, exclusive: bool = False,
                 prepare_keys: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.exclusive = exclusive
        self.prepare_keys = prepare_keys
        self.lock = None

    def __enter__(self) -> KeyVault:
        self.database, self.embedded = start_database(self.settings)
        try:
            if self.exclusive:
                self.lock = self.database.connect(autocommit=True)
                if not self.lock.execute("SELECT pg_try_advisory_lock(%s)", (rotation_lock(self.database),)).fetchone()[0]:
                    console.print("[red]a commhub server or worker is running on this database; stop it first[/]")
                    raise typer.Exit(1)
            if self.prepare_keys is not None:
                self.prepare_keys()
            keyring = load_keyring(self.settings.kek, self.settings.resolved_kek_file, self.settings.previous_keks)
            self.vault = KeyVault(self.database, keyring).start()
        except BaseException:
            self._release()
            raise
        return self.vault

    def __exit__(self, *exc: object) -> None:
        self.vault.close()
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.close()
        if self.embedded is not None:
            self.embedded.stop()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
