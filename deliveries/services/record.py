"""Recording: store finished attempts' outcomes and schedule what follows, many at once.

The engine hands over every result that finished since its last flush: one transaction
records them all, releasing their leases, and claims the next attempts in that same
transaction (deliveries_record_and_claim): one commit per turn of the cycle, and a
webhook's next batch is claimed only once its last one is recorded as accepted.

What a partner sent is data, never a reason for the flush to fail: its text is made
storable at this edge, an odd Retry-After is ignored, and a result that still cannot be
written is isolated from the others and recorded as a failure of ours (`record_failed`),
retried on the schedule.
"""

import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from core.logfmt import logfmt
from core.text import text_storable
from deliveries.http import SendResult
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services.claim import Claim, deliveries_claim
from deliveries.services.notify import recovered_message, staff_tell_on_commit
from webhooks.models import Webhook
from webhooks.services import webhook_pause

logger = logging.getLogger("springhook.deliveries")
# Retry-After is honoured up to this: a partner cannot park us for days.
RETRY_AFTER_CAP = 3600.0
# Spread of the backoff, so that many webhooks failing together do not retry in step.
JITTER = 0.1
# Longer than any HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT` is 29 characters).
_RETRY_AFTER_LONGEST = 64
ErrorKind = DeliveryAttempt.ErrorKind


def retry_delay(*, failed_attempts: int, retry_after: str | None = None) -> float:
    """Seconds until the next attempt after `failed_attempts` failures: the steps of
    WEBHOOK_RETRY_SCHEDULE, then its last step forever, with jitter."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    base = schedule[min(failed_attempts, len(schedule)) - 1]
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)
    requested = retry_after_seconds(retry_after)
    if requested is not None:
        delay = max(delay, requested)
    return delay


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's wait in seconds, between 0 and RETRY_AFTER_CAP; None for
    anything but ASCII digits or an HTTP date with a time zone (ignored: the schedule
    applies). Never raises, whatever the partner sent."""
    value = (value or "").strip()
    if not value or len(value) > _RETRY_AFTER_LONGEST:
        return None
    if value.isdigit():
        if not value.isascii():
            return None  # '²' and '١' are digits to str.isdigit(), not to float()
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        seconds = (when - timezone.now()).total_seconds()
    except (TypeError, ValueError, OverflowError, IndexError):
        # Not a date, or one beyond what datetime holds (an offset of a million years).
        return None
    return min(max(0.0, seconds), RETRY_AFTER_CAP)


def delivery_record(claim: Claim, result: SendResult) -> bool:
    """Store one attempt's outcome (see deliveries_record). Returns True if accepted."""
    return deliveries_record([(claim, result)])[0]


def deliveries_record(results: Sequence[tuple[Claim, SendResult]]) -> list[bool]:
    """Store the attempts' outcomes and schedule what follows, in one transaction; for each
    result, whether its batch was accepted.

    An accepted batch is done. A failed one is retried on the schedule (Retry-After on 429
    and 503 honoured, up to an hour); a 410 Gone pauses the webhook, keeping everything.
    If the lease was lost meanwhile (the attempt outlived it), the attempt is still
    recorded, and an acceptance still completes the delivery.

    Every result is recorded, whatever its partner sent: should the one transaction fail
    for anything but the database itself, the results are written apart (halves, then
    halves of the half that failed), and a result that cannot be written at all is
    recorded as `record_failed` without the partner's answer, and retried on the schedule.
    Raises only when the database is unavailable (OperationalError, InterfaceError), or
    when even that plain record fails; the caller then tries the whole flush again.
    """
    if not results:
        return []
    written = _results_write_isolating([(claim, _result_storable(result))
                                        for claim, result in results])
    return _attempts_log(results, written)


def deliveries_record_and_claim(
    *,
    results: Sequence[tuple[Claim, SendResult]],
    limit: int,
    webhook_ids: Collection[int] | None = None,
) -> tuple[list[bool], list[Claim]]:
    """Record `results` (as deliveries_record) and claim up to `limit` next attempts (as
    deliveries_claim, among `webhook_ids` or every webhook with an attempt due), in one
    transaction: one commit for both, and a recorded webhook whose batch was accepted can
    have its next batch claimed at once. For each result whether it was accepted, and the
    claims, which may be sent once this returns (the transaction has committed).

    Locks: the recorded webhooks' rows by id, then their deliveries (waiting, as every
    transaction does); then the claim's webhook rows, skipping any held elsewhere, so that
    this never waits for a webhook row while holding a delivery; then the deliveries of
    those webhooks, which nobody else holds without holding their webhook.

    Should the one transaction fail for anything but the database itself, results are
    recorded apart (deliveries_record isolates what cannot be written) and the claim is
    made on its own; if that fails too, the results stay recorded and nothing is claimed.
    """
    storable = [(claim, _result_storable(result)) for claim, result in results]
    try:
        with transaction.atomic():
            written, idle = (
                _results_write(storable, savepoint=False) if storable else ([], [])
            )
            # The webhooks whose open batch was just accepted have none open now, and this
            # transaction holds their rows: the claim takes them as they are.
            claims = _claims_take(limit=limit, webhook_ids=webhook_ids, idle_locked=idle)
    except _DATABASE_UNAVAILABLE:
        raise
    except Exception:
        logger.exception(logfmt("record_and_claim_split", results=len(storable)))
        written = _results_write_isolating(storable) if storable else []
        try:
            claims = _claims_take(limit=limit, webhook_ids=webhook_ids)
        except Exception:
            # The results are recorded: that stands. What is due is claimed at the next
            # tick, or once nothing is in flight.
            logger.exception(logfmt("claim_failed", limit=limit))
            claims = []
    return _attempts_log(results, written), claims


def _claims_take(
    *, limit: int, webhook_ids: Collection[int] | None, idle_locked: Sequence[Webhook] = ()
) -> list[Claim]:
    if limit <= 0 or (webhook_ids is not None and not webhook_ids and not idle_locked):
        return []
    return deliveries_claim(limit=limit, webhook_ids=webhook_ids, idle_locked=idle_locked)


def _attempts_log(
    results: Sequence[tuple[Claim, SendResult]], written: list["Written"]
) -> list[bool]:
    """Log one line per attempt; whether each of `results` was accepted, in their order."""
    for claim, result, delivery in written:
        logger.info(
            logfmt(
                "attempt", webhook=claim.webhook_id, delivery=claim.message_id,
                attempt=claim.attempt_number,
                entries=delivery.entry_count if delivery is not None else "",
                status=result.status_code, error=result.error_kind,
                accepted=str(result.accepted).lower(), duration=result.duration,
            )
        )
    accepted = {claim.attempt_id: result.accepted for claim, result, _ in written}
    return [accepted[claim.attempt_id] for claim, _ in results]


# The database itself failed (restarting, unreachable, a deadlock): writing the results
# apart would fail the same way, so the flush as a whole is tried again later.
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
Written = tuple[Claim, SendResult, Delivery | None]


def _result_storable(result: SendResult) -> SendResult:
    """The result with its texts as every database stores them (deliveries.http makes the
    excerpt so already; the error messages carry what libraries say about the partner)."""
    return replace(
        result,
        error_message=text_storable(result.error_message),
        response_body=text_storable(result.response_body),
        response_encoding=text_storable(result.response_encoding)[:32],
    )


def _results_write_isolating(results: list[tuple[Claim, SendResult]]) -> list[Written]:
    try:
        return _results_write(results)[0]
    except _DATABASE_UNAVAILABLE:
        raise
    except Exception as error:
        if len(results) > 1:
            logger.warning(logfmt("record_split", results=len(results),
                                  error=type(error).__name__))
            half = len(results) // 2
            return [*_results_write_isolating(results[:half]),
                    *_results_write_isolating(results[half:])]
        ((claim, result),) = results
        logger.exception(logfmt("record_failed", webhook=claim.webhook_id,
                                delivery=claim.message_id, attempt=claim.attempt_number))
        return _results_write([(claim, _result_unrecordable(result, error))])[0]


def _result_unrecordable(result: SendResult, error: Exception) -> SendResult:
    """What is recorded of a result that could not be written: a failure of ours, with
    nothing of the partner's answer but its status."""
    message = text_storable(
        f"the answer could not be recorded ({type(error).__name__}: {error}"[:900]
        + "); the batch is sent again on the retry schedule"
    )
    return SendResult(result.status_code, ErrorKind.RECORD_FAILED, message, "", result.duration)


def _results_write(
    results: Sequence[tuple[Claim, SendResult]], *, savepoint: bool = True
) -> tuple[list[Written], list[Webhook]]:
    """One transaction (or, inside one, a savepoint unless `savepoint` is False): the
    attempts, their deliveries and webhooks' health. What was written, and the webhooks
    (their locked rows) whose open delivery it accepted: they have none open now."""
    now = timezone.now()
    webhook_ids = sorted({claim.webhook_id for claim, _ in results})
    with transaction.atomic(savepoint=savepoint):
        # The webhook rows first (by id), then the deliveries (by id): the order every
        # claim locks them in. The other order deadlocked against a claim for the same
        # webhook, and PostgreSQL then rolled back the record of an accepted batch.
        webhooks = {
            webhook.pk: webhook
            for webhook in Webhook.objects.filter(pk__in=webhook_ids)
            .order_by("pk")
            .select_for_update(no_key=True)
        }
        deliveries = {
            delivery.pk: delivery
            for delivery in Delivery.objects.filter(
                pk__in=sorted({claim.delivery_id for claim, _ in results})
            )
            .order_by("pk")
            .select_for_update(no_key=True)
        }
        attempts = [
            DeliveryAttempt(
                pk=claim.attempt_id,
                duration=result.duration,
                accepted=result.accepted,
                status_code=result.status_code,
                error_kind=result.error_kind,
                error_message=result.error_message,
                response_body=result.response_body,
                response_bytes_replaced=result.response_bytes_replaced,
                response_encoding=result.response_encoding,
            )
            for claim, result in results
        ]
        changed: dict[int, Delivery] = {}
        idle: dict[int, Webhook] = {}
        for claim, result in results:
            delivery = deliveries.get(claim.delivery_id)
            if delivery is None or not delivery.is_open:
                continue  # pruned, or accepted by an attempt that outlived its lease
            delivery.last_status_code = result.status_code
            delivery.last_error_kind = result.error_kind
            if result.accepted:
                if delivery.webhook_id in webhooks:
                    idle[delivery.webhook_id] = webhooks[delivery.webhook_id]
                delivery.accept(now=now)
            elif delivery.lease_token == claim.lease_token:
                retry_after = result.retry_after if result.status_code in (429, 503) else None
                delay = retry_delay(failed_attempts=delivery.attempt_count,
                                    retry_after=retry_after)
                delivery.fail(retry_at=now + timedelta(seconds=delay))
            changed[delivery.pk] = delivery
        # Each webhook's health follows its last result in this flush.
        last = {claim.webhook_id: result for claim, result in results}
        healthy = _webhooks_health_record(webhooks, last, now)
        _records_write(attempts, list(changed.values()), healthy, now)
    written = [(claim, result, deliveries.get(claim.delivery_id)) for claim, result in results]
    return written, [idle[webhook_id] for webhook_id in sorted(idle)]


_ATTEMPT_FIELDS = ["duration", "accepted", "status_code", "error_kind", "error_message",
                   "response_body", "response_bytes_replaced", "response_encoding"]
_DELIVERY_FIELDS = ["last_status_code", "last_error_kind", "state", "delivered_at",
                    "next_attempt_at", "lease_token", "lease_expires_at"]


def _records_write(
    attempts: list[DeliveryAttempt], deliveries: list[Delivery], healthy: list[int],
    now: datetime,
) -> None:
    """The flush's writes: its attempts, their deliveries, and `last_success_at` of the
    webhooks that stay healthy. On PostgreSQL one statement (the first two as
    data-modifying WITH clauses): one round trip, whatever the number of results. The
    rows are all locked by this transaction already."""
    if connection.vendor != "postgresql":
        rows_update(DeliveryAttempt, attempts, _ATTEMPT_FIELDS)
        rows_update(Delivery, deliveries, _DELIVERY_FIELDS)
        if healthy:
            Webhook.objects.filter(pk__in=healthy).update(last_success_at=now, updated_at=now)
        return
    statements = [_rows_update_sql(DeliveryAttempt, attempts, _ATTEMPT_FIELDS)]
    if deliveries:
        statements.append(_rows_update_sql(Delivery, deliveries, _DELIVERY_FIELDS))
    if healthy:
        table = connection.ops.quote_name(Webhook._meta.db_table)
        statements.append((
            f'UPDATE {table} SET "last_success_at" = %s, "updated_at" = %s '
            f'WHERE "id" = ANY(%s)',
            [now, now, healthy],
        ))
    *clauses, (last_sql, last_params) = statements
    sql = ("WITH " + ", ".join(f"written_{n} AS ({clause} RETURNING 1)"
                               for n, (clause, _) in enumerate(clauses)) + " "
           if clauses else "") + last_sql
    params = [param for _, clause_params in clauses for param in clause_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *last_params])


def rows_update(model: type[Model], objects: list[Model], fields: list[str]) -> None:
    """Write `fields` of each of `objects` (by primary key) in one statement.

    On PostgreSQL an `UPDATE … FROM (VALUES …)`: Django's bulk_update builds a CASE per
    field and row, which cost more Python time than the database spent on the statement.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objects, fields)
        return
    with connection.cursor() as cursor:
        cursor.execute(*_rows_update_sql(model, objects, fields))


def _rows_update_sql(
    model: type[Model], objects: list[Model], fields: list[str]
) -> tuple[str, list]:
    """rows_update's statement on PostgreSQL, and its parameters."""
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    row_sql = "(" + ", ".join("%s::" + column.db_type(connection) for column in columns) + ")"
    names = [column.column for column in columns]
    params = []
    for obj in objects:
        for column in columns:
            value = getattr(obj, column.attname)
            params.append(column.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(meta.db_table)
    quoted = [connection.ops.quote_name(name) for name in names]
    sql = (
        f"UPDATE {table} AS t SET "
        + ", ".join(f"{name} = v.{name}" for name in quoted[1:])
        + f" FROM (VALUES {', '.join([row_sql] * len(objects))}) AS v({', '.join(quoted)}) "
        f"WHERE t.{quoted[0]} = v.{quoted[0]}"
    )
    return sql, params


def _webhooks_health_record(
    webhooks: dict[int, Webhook], results: dict[int, SendResult], now: datetime
) -> list[int]:
    """Inside the record's transaction, with the webhook rows locked. Records what changes
    a webhook's health; returns the webhooks that stay healthy, whose `last_success_at`
    the caller writes (one statement for all of them, the common case)."""
    healthy = []
    for webhook_id, result in results.items():
        webhook = webhooks.get(webhook_id)
        if webhook is None:
            continue
        if (result.accepted and webhook.failing_since is None
                and webhook.failure_notified_at is None):
            healthy.append(webhook_id)
        else:
            _webhook_health_record(webhook, result, now)
    return healthy


def _webhook_health_record(webhook: Webhook, result: SendResult, now: datetime) -> None:
    webhook_id = webhook.pk
    if result.accepted:
        if webhook.failing_since is not None:
            logger.info(logfmt("webhook_recovered", webhook=webhook_id,
                               failing_since=webhook.failing_since.isoformat()))
        webhook.last_success_at = now
        webhook.failing_since = None
        fields = ["last_success_at", "failing_since"]
        if webhook.failure_notified_at is not None:
            webhook.failure_notified_at = None
            fields.append("failure_notified_at")
            staff_tell_on_commit(webhook, "recovered", recovered_message(webhook, now))
        webhook.save(update_fields=[*fields, "updated_at"])
        return
    fields = []
    if webhook.failing_since is None:
        webhook.failing_since = now
        fields.append("failing_since")
        logger.warning(logfmt("webhook_failing", webhook=webhook_id,
                              status=result.status_code, error=result.error_kind))
    if result.status_code == 410 and webhook.is_active:
        paused = webhook_pause(webhook_id=webhook_id, reason="The partner answered 410 Gone.")
        webhook.is_active, webhook.paused_reason = paused.is_active, paused.paused_reason
        # Staff are told now; the failing episode counts as reported, so the recovery after
        # a resume is reported too, and no second "failing" mail follows in this episode.
        webhook.failure_notified_at = now
        fields.append("failure_notified_at")
        staff_tell_on_commit(webhook, "paused: the partner answered 410 Gone", (
            f"The partner of webhook {webhook.name!r} ({webhook.url}) answered 410 Gone, so "
            "the webhook was paused. Its changes keep collecting and nothing is dropped; "
            "resume it in the admin once the partner is ready again."
        ))
    if fields:
        webhook.save(update_fields=[*fields, "updated_at"])
