"""Sign-in links to the partner portal: created with the link shown once, stored as a hash,
exchanged once for a session."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.selectors import api_key_webhooks
from core.logfmt import logfmt
from portal.models import PortalLink

logger = logging.getLogger("springhook.portal")

TOKEN_PREFIX = "pl_"
TOKEN_BYTES = 32
# Longer than any token we issue (3 + 43 characters): anything longer is refused unhashed.
_TOKEN_MAX_LENGTH = 100


class PortalLinkError(Exception):
    """A link cannot be made for this key (revoked, or it belongs to no webhook)."""


class PortalLinkRefused(Exception):
    """The link does not open the portal: `reason` is unknown, used, expired or revoked."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PortalGrant:
    """What a redeemed link lets its session do."""

    api_key_id: int
    can_act: bool
    link_id: int


def portal_token_hash(raw_token: str) -> str:
    """SHA-256, hex: a token of 32 random bytes needs no slow hash (see api_key_hash)."""
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def portal_link_check(*, api_key_id: int) -> ApiKey:
    """The key a link may be made for; PortalLinkError for a key that does not exist, is
    revoked, or belongs to no webhook (its portal would be empty)."""
    api_key = ApiKey.objects.filter(pk=api_key_id).first()
    if api_key is None or not api_key.is_active:
        raise PortalLinkError(f"API key {api_key_id} does not exist or was revoked.")
    if not api_key_webhooks(api_key=api_key).exists():
        raise PortalLinkError(
            f"{api_key} belongs to no webhook: its portal would show nothing. Give it the "
            "partner's webhooks first."
        )
    return api_key


def portal_link_create(
    *, api_key_id: int, can_act: bool, created_by: str
) -> tuple[PortalLink, str]:
    """A new sign-in link for the key's webhooks; returns it with its raw token, which
    exists only here (put it in the URL, portal.views.sign_in's path, and show it once).

    It expires after PORTAL_LINK_LIFETIME seconds. Raises PortalLinkError for a key that
    does not exist, is revoked, or belongs to no webhook (its portal would be empty)."""
    api_key = portal_link_check(api_key_id=api_key_id)
    raw_token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    link = PortalLink.objects.create(
        api_key=api_key,
        token_hash=portal_token_hash(raw_token),
        can_act=can_act,
        expires_at=timezone.now() + timedelta(seconds=settings.PORTAL_LINK_LIFETIME),
        created_by=created_by[:255],
    )
    # Which link, never its token.
    logger.info(logfmt("portal_link_created", link=link.pk, api_key=api_key.pk,
                       can_act=can_act, by=created_by))
    return link, raw_token


def portal_link_redeem(*, raw_token: str) -> PortalGrant:
    """Use the link once: mark it used and return what its session may do. Raises
    PortalLinkRefused when the token is unknown, used, expired or its key revoked; a
    link found in any of these states stays unusable."""
    if not raw_token or len(raw_token) > _TOKEN_MAX_LENGTH:
        raise PortalLinkRefused("unknown")
    now = timezone.now()
    with transaction.atomic():
        link = (
            PortalLink.objects.select_for_update()
            .select_related("api_key")
            .filter(token_hash=portal_token_hash(raw_token))
            .first()
        )
        if link is None:
            reason = "unknown"
        elif link.used_at is not None:
            reason = "used"
        elif link.expires_at <= now:
            reason = "expired"
        elif not link.api_key.is_active:
            reason = "revoked"
        else:
            reason = ""
            link.used_at = now
            link.save(update_fields=["used_at"])
    if reason:
        logger.info(logfmt("portal_link_refused", link=link.pk if link else None,
                           reason=reason))
        raise PortalLinkRefused(reason)
    logger.info(logfmt("portal_signed_in", link=link.pk, api_key=link.api_key_id,
                       can_act=link.can_act))
    return PortalGrant(api_key_id=link.api_key_id, can_act=link.can_act, link_id=link.pk)
