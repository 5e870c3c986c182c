"""Wiring of the Meta channels for the composition root: the account token store, the social
handle index and its projection, the Graph API sender (sandbox without an app secret), and the
profile lookups that name Messenger and Instagram contacts (their queue, and the worker when on)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.channels import ChannelSender
from adapters.handles import HandleIndex
from adapters.meta_accounts import MetaAccounts
from adapters.meta_graph import MetaChannel
from adapters.meta_profiles import MetaProfileWorker
from adapters.postgres import Database
from adapters.social_handles import SCHEMA_SQL as SOCIAL_HANDLES_SQL
from adapters.social_handles import SocialHandleIndex
from api.settings import Settings
from domain.application import CommHub
from domain.social import SOCIAL
from projections.meta_profiles import MetaProfiles
from projections.social_handles import SocialHandles


@dataclass
class MetaWiring:
    accounts: MetaAccounts
    handles: SocialHandleIndex
    view: SocialHandles
    senders: dict[str, ChannelSender]
    profiles_view: MetaProfiles
    profiles: MetaProfileWorker | None  # None: sandbox, or COMMHUB_META_PROFILE_LOOKUP=off


def wire_meta(settings: Settings, app: CommHub, handles: HandleIndex, database: Database) -> MetaWiring:
    accounts = MetaAccounts(handles.vault)
    accounts.setup()
    social = SocialHandleIndex(handles)
    social.setup()
    app.social_handles = social
    senders: dict[str, ChannelSender] = {}
    profiles = None
    if settings.meta.enabled:
        senders[SOCIAL] = MetaChannel(app, accounts, graph_url=settings.meta.graph_url, timeout=settings.meta.timeout)
        if settings.meta.profile_lookup:
            profiles = MetaProfileWorker(app, database, accounts, graph_url=settings.meta.graph_url,
                                         timeout=settings.meta.timeout, poll_seconds=settings.reminder_poll_seconds)
    return MetaWiring(accounts, social, SocialHandles(social.digest, SOCIAL_HANDLES_SQL), senders, MetaProfiles(),
                      profiles)
