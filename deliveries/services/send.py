"""Sending: sign one attempt anew with its own timestamp and POST it."""

import time

from core import __version__
from deliveries.http import SendResult, send_loop, webhook_post_async
from deliveries.services.claim import Claim
from deliveries.signing import signature_header

USER_AGENT = f"Springhook/{__version__}"


async def delivery_send_async(claim: Claim) -> SendResult:
    """Make the attempt on the send loop: sign it anew with this attempt's own timestamp,
    and POST it."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": claim.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets=list(claim.secrets),
            message_id=claim.message_id,
            timestamp=timestamp,
            body=claim.body,
        ),
    }
    return await webhook_post_async(url=claim.url, body=claim.body, headers=headers)


def delivery_send(claim: Claim) -> SendResult:
    """The same attempt for a caller that waits for it (scripts, tests)."""
    return send_loop().run(delivery_send_async(claim))
