"""The composition root: builds the database, key vault, application, projections and workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from adapters.calendar_feeds import CalendarFeeds
from adapters.caldav_store import CaldavStore
from adapters.caldav_worker import CaldavWorker
from adapters.channels import ChannelSender, SandboxChannel
from adapters.codec import MsgspecTranscoder
from adapters.embedded_postgres import EmbeddedPostgres
from adapters.fhir_integrations import FhirIntegrations
from adapters.fhir_writeback import FhirWriteBackWorker
from adapters.handles import SCHEMA_SQL as HANDLES_SQL
from adapters.handles import HandleIndex
from adapters.kek import load_keyring
from adapters.key_vault import KeyVault
from adapters.meta_profiles import MetaProfileWorker
from adapters.outbox_worker import OutboxWorker
from adapters.postgres import Database, installation_lock
from adapters.reminder_worker import ReminderWorker
from adapters.sealing import SealingMapper
from adapters.tokens import TokenStore
from adapters.webchat import WebchatChannel
from adapters.webhook_delivery import WebhookWorker
from adapters.widget_visitors import SCHEMA_SQL as WIDGET_SQL
from adapters.widget_visitors import VisitorStore
from api.email_setup import wire_email
from api.meta_setup import wire_meta
from api.privacy_parts import Privacy, privacy_views
from api.twilio_setup import twilio_channel
from api.settings import Settings
from domain.application import CommHub
from domain.identifiers import Channel
from projections.api_keys import ApiKeys, ApiKeyStore
from projections.appointments import Appointments
from projections.caldav_pushes import CaldavPushes
from projections.consents import Consents
from projections.directory import Directory
from projections.fhir_writebacks import FhirWriteBacks
from projections.handles import Handles
from projections.inbox import Inbox
from projections.messages import Messages
from projections.outbox import Outbox
from projections.reminders import Reminders
from projections.runner import ProjectionRunner, Reached
from projections.staff import Staff
from projections.timeline import Timeline
from projections.webhooks import Webhooks
from projections.widget_visitors import WidgetVisitors

log = logging.getLogger(__name__)

STARTUP_LOCK = 7261003  # with the schema: installation_lock(STARTUP_LOCK, schema)


@dataclass
class Hub:
    """A running commhub: what every entry point (server, CLI, worker, test) works with."""

    settings: Settings
    database: Database
    vault: KeyVault
    app: CommHub
    handles: HandleIndex
    tokens: TokenStore
    projections: ProjectionRunner
    outbox: OutboxWorker
    embedded: EmbeddedPostgres | None = None
    reminders: ReminderWorker | None = None
    privacy: Privacy | None = None
    writeback: FhirWriteBackWorker | None = None
    webhooks: WebhookWorker | None = None
    api_keys: ApiKeyStore | None = None
    caldav: CaldavWorker | None = None
    meta_profiles: MetaProfileWorker | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    running: bool = False
    follower: Reached | None = None  # another process's projections, as this process's live feed sees them

    def _reached(self) -> Reached | None:
        """Where every read model's position is known: this process's runner, or the live feed."""
        if self.running:
            return self.projections.reached
        return self.follower

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every read model includes ``position`` (read-your-writes), whether the
        projections run here or in a separate ``commhub worker``."""
        reached = self._reached()
        return reached is not None and reached.wait_for(position, timeout)

    async def settled(self, position: int, timeout: float) -> bool:
        """``wait_for`` on the event loop, without holding a worker thread."""
        reached = self._reached()
        return reached is not None and await reached.reached(position, timeout)

    def start_workers(self) -> Hub:
        """Run projections and the outbox in this process (the default for ``commhub serve``)."""
        self.projections.start()
        self.outbox.start()
        if self.reminders is not None:
            self.reminders.start()
        if self.privacy is not None:
            self.privacy.worker.start()
        if self.writeback is not None:
            self.writeback.start()
        if self.webhooks is not None:
            self.webhooks.start()
        if self.caldav is not None:
            self.caldav.start()
        if self.meta_profiles is not None:
            self.meta_profiles.start()
        self.running = True
        return self

    def close(self) -> None:
        if self.running:
            if self.reminders is not None:
                self.reminders.stop()
            if self.privacy is not None:
                self.privacy.worker.stop()
            if self.writeback is not None:
                self.writeback.stop()
            if self.webhooks is not None:
                self.webhooks.stop()
            if self.caldav is not None:
                self.caldav.stop()
            if self.meta_profiles is not None:
                self.meta_profiles.stop()
            self.outbox.stop()
            self.projections.stop()
        self.app.close()
        self.vault.close()
        self.database.close()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_database(settings: Settings) -> tuple[Database, EmbeddedPostgres | None]:
    """The configured PostgreSQL, or an embedded one in the data directory when none is given."""
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = embedded.start()
    database = Database(url, settings.db_schema, pool_size=2 * settings.pool_size)
    database.ensure_schema()
    return database, embedded


def channel_senders(settings: Settings, app: CommHub | None = None) -> dict[str, ChannelSender]:
    """Without provider credentials every channel is the sandbox: outbound is captured, not sent."""
    sandbox = SandboxChannel()
    senders: dict[str, ChannelSender] = {channel.value: sandbox for channel in Channel}
    senders[Channel.WEBCHAT.value] = WebchatChannel()
    if settings.twilio_enabled and app is not None:
        senders[Channel.SMS.value] = twilio_channel(settings, app)
    return senders


def startup_lock(schema: str) -> int:
    """The advisory lock key an installation's processes hold while building the event store."""
    return installation_lock(STARTUP_LOCK, schema)


def bootstrap(settings: Settings, *, database: Database | None = None) -> Hub:
    embedded = None
    if database is None:
        database, embedded = start_database(settings)
    keyring = load_keyring(settings.kek, settings.resolved_kek_file, settings.previous_keks)
    vault = KeyVault(database, keyring, cache_seconds=settings.key_cache_seconds,
                     pool_size=settings.pool_size).start()
    handles = HandleIndex(vault)
    handles.setup()
    tokens = TokenStore(database)
    # Processes of one installation starting together would race on CREATE TABLE; other
    # installations (schemas) on the same database have tables of their own and need not wait.
    starting = startup_lock(database.schema)
    with database.connect(autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (starting,))
        try:
            app = CommHub(
                database.eventsourcing_env(pool_size=settings.pool_size),
                mapper_factory=lambda _: SealingMapper(MsgspecTranscoder(), vault),
                shredder=vault,
                handles=handles,
            )
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (starting,))
    email = wire_email(settings, app, database, vault)
    meta = wire_meta(settings, app, handles, database)
    outbox_view, reminders_view, writebacks_view, caldav_view, webhooks_view = (
        Outbox(), Reminders(), FhirWriteBacks(), CaldavPushes(), Webhooks())
    views = [Staff(), Directory(), Consents(), Inbox(), Messages(), Timeline(), outbox_view,
             Handles(handles.digest, HANDLES_SQL), Appointments(), reminders_view, email.view, *privacy_views(),
             WidgetVisitors(WIDGET_SQL), writebacks_view, caldav_view, meta.view, ApiKeys(), webhooks_view,
             meta.profiles_view]
    runner = ProjectionRunner(app, database, views)
    runner.setup()
    tokens.setup()
    outbox = OutboxWorker(app, database, {**channel_senders(settings, app), **email.senders, **meta.senders},
                          max_attempts=settings.outbox_max_attempts, base_delay=settings.outbox_base_delay,
                          concurrency=settings.outbox_concurrency, lease_seconds=settings.outbox_lease_seconds)
    reminders = ReminderWorker(app, database, poll_seconds=settings.reminder_poll_seconds)
    integrations = FhirIntegrations(vault)
    integrations.setup()
    writeback = FhirWriteBackWorker(app, database, integrations, poll_seconds=settings.reminder_poll_seconds,
                                    allow_private=settings.fhir_allow_private)
    webhooks = WebhookWorker(app, database, vault, allow_private=settings.webhook_allow_private,
                             timeout=settings.webhook_timeout, max_attempts=settings.webhook_max_attempts,
                             base_delay=settings.webhook_base_delay, max_delay=settings.webhook_max_delay,
                             poll_seconds=settings.reminder_poll_seconds, keep_days=settings.webhook_keep_days)
    calendars = CaldavStore(vault)
    calendars.setup()
    caldav = CaldavWorker(app, database, calendars, max_attempts=settings.caldav.max_attempts,
                          base_delay=settings.caldav.base_delay, timeout=settings.caldav.timeout,
                          poll_seconds=settings.reminder_poll_seconds, allow_private=settings.caldav.allow_private)

    # Each worker's rows are written by one projection: a batch of events that projection ignores
    # gave it nothing to do, so it is not woken (under inbound load, five idle claims per batch), nor
    # is it after a batch in which its view says it queued nothing (``View.quiet``: e.g. messages
    # with no webhook subscriber and no reminder awaiting an answer).
    interests = [(outbox, outbox_view), (reminders, reminders_view), (writeback, writebacks_view),
                 (webhooks, webhooks_view), (caldav, caldav_view)]
    if meta.profiles is not None:
        interests.append((meta.profiles, meta.profiles_view))

    def advanced(position: int, kinds: frozenset[type]) -> None:
        for worker, view in interests:
            if not kinds.isdisjoint(view.handlers) and not view.quiet:
                worker.wake(position)

    runner.on_advance = advanced
    feeds = CalendarFeeds(database)
    feeds.setup()
    privacy = Privacy.build(app, database, vault, runner, erasure_wait_seconds=settings.erasure_wait_seconds,
                            retention_interval_seconds=settings.retention_interval_seconds)
    return Hub(settings=settings, database=database, vault=vault, app=app, handles=handles, tokens=tokens,
               projections=runner, outbox=outbox, embedded=embedded, reminders=reminders,
               extras={"calendar_feeds": feeds, "email": email, "visitors": VisitorStore(vault),
                       "fhir_integrations": integrations, "caldav": calendars, "meta": meta},
               privacy=privacy, writeback=writeback,
               caldav=caldav, webhooks=webhooks, api_keys=ApiKeyStore(database), meta_profiles=meta.profiles)
