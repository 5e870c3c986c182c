"""Errors of the social channels (Meta); mapped to problem+json like every ``DomainError``."""

from __future__ import annotations

from domain.errors import DomainError, NotFoundError


class MetaAccountInvalidError(DomainError):
    """The platform or account id is not valid."""

    status = 422


class MetaAccountTakenError(DomainError):
    """Another workspace already connected this account."""

    status = 409


class MetaAccountNotConnectedError(NotFoundError):
    """This workspace has not connected this account."""


class SocialThreadInvalidError(DomainError):
    """This conversation is not a social conversation that can take this message."""

    status = 422


class SocialTemplateInvalidError(DomainError):
    """The template name, language or parameters are not valid."""

    status = 422
