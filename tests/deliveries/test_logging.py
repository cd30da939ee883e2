"""One structured line per attempt and per webhook state change; never a secret."""

import logging
import re

from core.logfmt import logfmt
from deliveries.services import dispatch_tick, webhook_retry_now
from tests.deliveries.helpers import engine_run, record
from tests.support.partner import status
from webhooks.models import Webhook
from webhooks.services import webhook_pause, webhook_resume, webhook_secret_rotate

LINE = re.compile(r'^event=\w+( \w+=("([^"\\]|\\.)*"|\S+))*$')


def fields(message: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', message))


def test_logfmt_quotes_what_needs_quoting():
    assert logfmt("x", a=1, b="two words", c=None, d=0.5) == 'event=x a=1 b="two words" c=- d=0.500'


def test_a_full_send_and_rotation_log_structured_lines_without_secrets(
    db, fast_delivery, partner, caplog
):
    caplog.set_level(logging.INFO, logger="springhook")
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    secrets = {webhook.secret}
    partner.then(status(500))
    record("update", "training", 7, 1)
    record("update", "training", 8, 1)
    dispatch_tick()
    engine_run(webhook.pk)  # fails: webhook_failing
    webhook_retry_now(webhook_id=webhook.pk)
    engine_run(webhook.pk)  # accepted: webhook_recovered
    webhook_pause(webhook_id=webhook.pk)
    webhook_resume(webhook_id=webhook.pk)
    rotated = webhook_secret_rotate(webhook_id=webhook.pk)
    secrets.add(rotated.secret)
    record("update", "training", 9, 1)
    dispatch_tick()
    engine_run(webhook.pk)  # signed with both secrets

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("springhook")]
    for message in messages:
        for secret in secrets:
            assert secret not in message
            assert secret.removeprefix("whsec_") not in message
        assert "signature" not in message.lower()
    events = [fields(m) for m in messages if LINE.match(m)]
    attempts = [e for e in events if e["event"] == "attempt"]
    assert len(attempts) == 3
    assert attempts[0]["status"] == "500" and attempts[0]["accepted"] == "false"
    assert attempts[1]["status"] == "200" and attempts[1]["entries"] == "2"
    assert attempts[1]["webhook"] == str(webhook.pk)
    assert attempts[1]["delivery"].startswith("msg_")
    assert float(attempts[1]["duration"]) >= 0
    names = [e["event"] for e in events]
    for expected in ("webhook_failing", "webhook_recovered", "webhook_paused",
                     "webhook_resumed", "webhook_secret_rotated"):
        assert expected in names, names
    assert len(partner.received[-1].headers["webhook-signature"].split(" ")) == 2
