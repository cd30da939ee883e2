"""A partner's rate limits: resyncs, replays, widened scopes and test events cost us (the
whole catalogue; a delivery kept for 30 days), so each is limited once per interval per
webhook and once per interval per API key, whichever of its webhooks it names. Staff are
not limited, and what they ask for starts no partner's interval."""

import math
from datetime import datetime, timedelta

from apikeys.models import ApiKey
from deliveries.services.errors import TooSoon
from webhooks.models import Webhook


def partner_limit_take(
    *, webhook: Webhook, api_key_id: int | None, field: str, min_interval: timedelta,
    now: datetime, what: str, too_soon: type[TooSoon],
) -> None:
    """Refuse with `too_soon` if the webhook, or the API key asking, had `what` within
    `min_interval`; otherwise note now in `field` (`last_resync_at`, `last_test_at`) on
    both. Inside the caller's transaction, with the webhook row locked; the key row is
    locked after it (the order every caller takes)."""
    holders: list[tuple[Webhook | ApiKey, str]] = [(webhook, str(webhook))]
    if api_key_id is not None:
        api_key = ApiKey.objects.select_for_update(no_key=True).filter(pk=api_key_id).first()
        if api_key is not None:
            holders.append((api_key, "this API key (for any of its webhooks)"))
    waits = []
    for holder, whose in holders:
        last = getattr(holder, field)
        if last is not None and last + min_interval > now:
            wait = max(1, math.ceil((last + min_interval - now).total_seconds()))
            waits.append((wait, f"{what} was queued for {whose} at {last:%Y-%m-%d %H:%M:%S} UTC"))
    if waits:
        wait, reason = max(waits, key=lambda waiting: waiting[0])  # the webhook's on a tie
        raise too_soon(f"{reason[0].upper()}{reason[1:]}; ask again in {wait} s.",
                       retry_after=wait)
    for holder, _ in holders:
        setattr(holder, field, now)
        holder.save(update_fields=[field])
