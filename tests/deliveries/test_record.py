"""Recording (deliveries/services/record.py) whatever a partner answers: every answer is
stored as text that both databases hold, an odd Retry-After is ignored, and a result that
still cannot be written never takes the others of its flush down with it.

The partners are raw sockets (tests/support/raw_partner.py), and the engine that
production runs (deliveries/engine.py) claims, sends and records."""

import contextlib
import gzip
import logging
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.engine import Engine
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import deliveries_claim, deliveries_record_and_claim
from deliveries.services.record import RETRY_AFTER_CAP, retry_after_seconds
from deliveries.services.send import delivery_send
from tests.deliveries.helpers import collect, record
from tests.support.raw_partner import RawAnswer, RawPartner
from webhooks.models import Webhook

# The first step of the retry schedule (10 s), with its ±10 % jitter.
FIRST_RETRY = (9.0, 11.0)

HOSTILE = {
    # name: (the answer, what the attempt keeps of it)
    "gzip": (
        RawAnswer("length-keepalive", body=gzip.compress(b'{"ok": true}' * 50),
                  headers=("Content-Type: application/json", "Content-Encoding: gzip")),
        {"accepted": True, "response_body": "", "response_encoding": "gzip",
         "response_bytes_replaced": False},
    ),
    "nul": (
        RawAnswer("length-keepalive", body=b'{"ok":\x00true}'),
        {"accepted": True, "response_body": '{"ok":\ufffdtrue}', "response_encoding": "",
         "response_bytes_replaced": True},
    ),
    "invalid-utf-8": (
        RawAnswer("chunked", body=b"caf\xe9 \xff\xfe ok"),
        {"accepted": True, "response_body": "caf\ufffd \ufffd\ufffd ok",
         "response_encoding": "", "response_bytes_replaced": True},
    ),
    "retry-after-superscript": (
        RawAnswer("length-close", status="503 Service Unavailable", body=b"busy",
                  headers=("Retry-After: \u00b2",)),
        {"accepted": False, "response_body": "busy", "status_code": 503,
         "error_kind": "http_status"},
    ),
    "retry-after-absurd-offset": (
        RawAnswer("length-keepalive", status="429 Too Many Requests", body=b"slow down",
                  headers=("Retry-After: Fri, 04 Dec 2026 14:00:00 +99999999999999",)),
        {"accepted": False, "response_body": "slow down", "status_code": 429,
         "error_kind": "http_status"},
    ),
}


@pytest.fixture
def raw_partners():
    started: list[RawPartner] = []

    def start(answer: RawAnswer) -> RawPartner:
        started.append(RawPartner(answer).start())
        return started[-1]

    yield start
    for partner in started:
        partner.stop()


def webhooks_for(partners: list[RawPartner]) -> list[Webhook]:
    webhooks = [
        Webhook.objects.create(name=f"P{n}", url=partner.url)
        for n, partner in enumerate(partners)
    ]
    record("update", "training", 1)
    collect()
    return webhooks


def engine_run(webhooks: list[Webhook], *, together: list[RawPartner] | None = None) -> int:
    """The production engine over these webhooks until none of them has anything due.

    `together`: its database thread ticks before each flush, and the tick waits until
    each of these partners has answered, so that all their results share the first flush.
    """
    tick = None
    if together:
        def tick() -> None:
            deadline = time.monotonic() + 10
            while any(p.requests == 0 for p in together) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # the send threads hand their results over
    engine = Engine(sends_in_flight=len(webhooks), webhook_ids=[w.pk for w in webhooks],
                    tick=tick, tick_seconds=0)
    return engine.run(until_idle=True, time_budget=30)


def assert_first_retry(delivery: Delivery) -> None:
    """The delivery waits the schedule's first step (10 s ± 10 %), counted from its
    record, which came after the claim and before now."""
    after_claim = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    after_now = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert after_claim >= FIRST_RETRY[0] and after_now <= FIRST_RETRY[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_hostile_answer_is_recorded(fast_delivery, raw_partners, case):
    answer, kept = HOSTILE[case]
    partner = raw_partners(answer)
    (webhook,) = webhooks_for([partner])

    assert engine_run([webhook]) == 1

    assert partner.requests == 1, "recorded at once, not sent again after its lease"
    assert b"\r\naccept-encoding: identity\r\n" in partner.last_head.lower()
    attempt = DeliveryAttempt.objects.get()
    assert {field: getattr(attempt, field) for field in kept} == kept
    delivery = Delivery.objects.get()
    assert not delivery.lease_token and delivery.lease_expires_at is None
    if kept["accepted"]:
        assert delivery.state == "delivered"
    else:
        # The odd Retry-After is ignored: the schedule's first step, not an exception.
        assert delivery.state == "failing"
        assert_first_retry(delivery)


@pytest.mark.django_db(transaction=True)
def test_hostile_answers_sharing_a_flush_are_all_recorded(fast_delivery, raw_partners, caplog):
    """The reported case: a gzip partner, a NUL one, two odd Retry-Afters and a plain 204
    in one flush. Each gets its batch once, and each attempt is recorded."""
    answers = [answer for answer, _ in HOSTILE.values()]
    answers.append(RawAnswer("length-keepalive", status="204 No Content", body=b""))
    partners = [raw_partners(answer) for answer in answers]
    webhooks = webhooks_for(partners)

    with caplog.at_level(logging.INFO, logger="springhook"):
        assert engine_run(webhooks, together=partners) == len(webhooks)

    assert [partner.requests for partner in partners] == [1] * len(partners)
    assert DeliveryAttempt.objects.filter(error_kind="in_progress").count() == 0
    assert Delivery.objects.filter(state="delivered").count() == 4
    assert Delivery.objects.filter(state="failing").count() == 2
    assert "giving up" not in caplog.text and "failed" not in caplog.text


@pytest.fixture
def poison_trigger(transactional_db):
    """Make the database refuse to store any attempt whose answer holds the word
    'poison': a result that cannot be written, whatever the cause (a constraint, a type
    the database refuses), as a real refusal by the database."""
    table = DeliveryAttempt._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION poison_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.response_body LIKE '%poison%' THEN "
                "RAISE EXCEPTION 'poisoned answer refused'; END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER poison_refuse BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION poison_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER poison_refuse BEFORE UPDATE ON {table} "
                "WHEN NEW.response_body LIKE '%poison%' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned answer refused'); END"
            )
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER poison_refuse ON {table}")
            cursor.execute("DROP FUNCTION poison_refuse()")
        else:
            cursor.execute("DROP TRIGGER poison_refuse")


@pytest.mark.django_db(transaction=True)
def test_a_result_that_cannot_be_written_takes_no_other_down(
    fast_delivery, raw_partners, poison_trigger, caplog
):
    good = [raw_partners(RawAnswer("length-keepalive", body=b"fine")) for _ in range(5)]
    poisoned = raw_partners(RawAnswer("length-keepalive", body=b"poison"))
    webhooks = webhooks_for([*good[:2], poisoned, *good[2:]])

    with caplog.at_level(logging.INFO, logger="springhook"):
        assert engine_run(webhooks, together=[*good, poisoned]) == 6

    assert "event=record_split results=6 " in caplog.text, "they shared a flush"
    assert "giving up" not in caplog.text
    assert [partner.requests for partner in [*good, poisoned]] == [1] * 6
    by_url = {d.webhook.url: d for d in Delivery.objects.select_related("webhook")}
    for partner in good:
        delivery = by_url[partner.url]
        assert delivery.state == "delivered"
        attempt = delivery.attempts.get()
        assert (attempt.accepted, attempt.response_body) == (True, "fine")
    delivery = by_url[poisoned.url]
    attempt = delivery.attempts.get()
    assert (attempt.accepted, attempt.status_code, attempt.error_kind) == (
        False, 200, "record_failed"
    )
    assert attempt.response_body == ""
    assert "could not be recorded" in attempt.error_message
    # A failure of ours, retried on the schedule like any failure: no lease-expiry loop.
    assert (delivery.state, delivery.last_error_kind) == ("failing", "record_failed")
    assert not delivery.lease_token and delivery.lease_expires_at is None
    assert_first_retry(delivery)
    poisoned_webhook = Webhook.objects.get(url=poisoned.url)
    assert poisoned_webhook.failing_since is not None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("99999999999999999999999999", RETRY_AFTER_CAP),
        ("\u00b2", None),  # a digit to str.isdigit(), not to float()
        ("\u0661\u0662", None),  # Arabic-Indic digits
        ("\uff11\uff12", None),  # full-width digits
        ("-5", None),
        ("1.5", None),
        ("1e3", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Fri, 04 Dec 2026 14:00:00 +99999999999999", None),
        ("Fri, 04 Dec 9999 23:59:59 -2359", RETRY_AFTER_CAP),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("Mon, 01 Jan 0001 00:00:00 -2359", 0.0),
        ("Fri, 04 Dec 2026 14:00:00", None),  # no zone: ambiguous
        ("x" * 10_000, None),
        ("\x00", None),
    ],
)
def test_retry_after_is_ascii_seconds_or_an_http_date_else_ignored(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    in_two_minutes = timezone.now() + timedelta(seconds=120)
    header = in_two_minutes.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 115 <= retry_after_seconds(header) <= 120


@contextlib.contextmanager
def new_deliveries_refused():
    """The database refuses every new delivery meanwhile: a claim that fails in the
    transaction that records, as a real refusal by the database."""
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION delivery_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'no new delivery'; END $$"
            )
            cursor.execute(f"CREATE TRIGGER delivery_refuse BEFORE INSERT ON {table} "
                           "FOR EACH ROW EXECUTE FUNCTION delivery_refuse()")
        else:
            cursor.execute(f"CREATE TRIGGER delivery_refuse BEFORE INSERT ON {table} "
                           "BEGIN SELECT RAISE(ABORT, 'no new delivery'); END")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER delivery_refuse ON {table}")
                cursor.execute("DROP FUNCTION delivery_refuse()")
            else:
                cursor.execute("DROP TRIGGER delivery_refuse")


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_fails_leaves_the_results_recorded(fast_delivery, raw_partners, caplog):
    """deliveries_record_and_claim: the claim fails in the transaction that records, and
    again on its own; the results are recorded all the same, and nothing is claimed."""
    partners = [raw_partners(RawAnswer("length-keepalive", body=b"fine")) for _ in range(2)]
    webhooks = webhooks_for(partners)
    claims = deliveries_claim(limit=10)
    results = [(claim, delivery_send(claim)) for claim in claims]
    record("update", "training", 2)  # the next batches wait
    collect()

    with new_deliveries_refused(), caplog.at_level(logging.INFO, logger="springhook"):
        outcome, next_claims = deliveries_record_and_claim(
            results=results, limit=10, webhook_ids=[w.pk for w in webhooks]
        )

    assert (outcome, next_claims) == ([True, True], [])
    assert "event=claim_failed" in caplog.text
    assert Delivery.objects.filter(state="delivered").count() == 2
    assert DeliveryAttempt.objects.filter(accepted=True).count() == 2
    # Claimed later, once the database takes deliveries again.
    assert len(deliveries_claim(limit=10)) == 2
