"""Sending: sign one attempt anew with its own timestamp and POST it."""

import time

from core import __version__
from deliveries.http import SendResult, webhook_post
from deliveries.services.claim import Claim
from deliveries.signing import signature_header

USER_AGENT = f"Springhook/{__version__}"


def delivery_send(claim: Claim) -> SendResult:
    """Make the attempt: sign it anew with this attempt's own timestamp, and POST it."""
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
    return webhook_post(url=claim.url, body=claim.body, headers=headers)
