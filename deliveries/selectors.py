"""Reads for operators: webhook health, hourly charts, a change's fate, and /metrics.

Every function here answers with a fixed number of queries whatever the number of
webhooks or deliveries, aggregating in the database over windows that indexes serve:
attempts by `started_at` (a covering index on PostgreSQL), open deliveries by their partial
index, pending entries by (webhook, first_change_at), the change stream by seq once per
distinct cursor (the backlog's statements are in deliveries.stream).
"""

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import (
    Aggregate,
    BooleanField,
    Count,
    Expression,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from changes.kinds import OBJECT_KINDS
from deliveries.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryBody,
    DispatcherHeartbeat,
)
from deliveries.stream import Backlog, backlog_annotations, webhooks_backlog
from webhooks.models import Webhook

ErrorKind = DeliveryAttempt.ErrorKind
# Attempts whose worker has not answered yet: neither accepted nor failed so far.
_FINISHED = ~Q(error_kind=ErrorKind.IN_PROGRESS)


class Percentile95(Aggregate):
    """PostgreSQL's nearest-rank 95th percentile (NULLs ignored)."""

    function = "percentile_disc"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass
class AttemptStats:
    attempts: int = 0
    accepted: int = 0
    p95_duration: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.accepted / self.attempts if self.attempts else None


@dataclass
class WebhookHealth:
    webhook: Webhook
    pending_entries: int = 0
    oldest_pending_at: datetime | None = None
    open_delivery: Delivery | None = None
    last_day: AttemptStats = field(default_factory=AttemptStats)

    @property
    def state(self) -> str:
        if not self.webhook.is_active:
            return "paused"
        return "failing" if self.webhook.failing_since else "healthy"

    def oldest_pending_age(self, now: datetime) -> timedelta | None:
        return now - self.oldest_pending_at if self.oldest_pending_at else None

    # The lag: everything not accepted yet, the open batch's entries included. A batch
    # does not keep its entries' change times, so those count from when it was made (the
    # age is at most one bundle delay short for them).
    @property
    def unaccepted_entries(self) -> int:
        in_open = self.open_delivery.entry_count if self.open_delivery else 0
        return self.pending_entries + in_open

    @property
    def oldest_unaccepted_at(self) -> datetime | None:
        times = [self.oldest_pending_at]
        if self.open_delivery is not None and self.open_delivery.entry_count:
            times.append(self.open_delivery.created_at)
        return min((time for time in times if time is not None), default=None)

    def lag(self, now: datetime) -> timedelta | None:
        """The age of the oldest entry not accepted yet (None when all were)."""
        oldest = self.oldest_unaccepted_at
        return max(timedelta(0), now - oldest) if oldest else None


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    accepted: int
    failed: int


def _attempts_since(since: datetime, until: datetime, webhook_id: int | None) -> QuerySet:
    attempts = DeliveryAttempt.objects.filter(started_at__gte=since, started_at__lt=until)
    if webhook_id is not None:
        attempts = attempts.filter(webhook_id=webhook_id)
    return attempts.filter(_FINISHED)


def attempt_stats_by_webhook(
    *, since: datetime, until: datetime, webhook_id: int | None = None
) -> dict[int, AttemptStats]:
    """Finished attempts in [since, until) per webhook: count, accepted, p95 duration
    (nearest rank). One query on PostgreSQL, two on SQLite (which has no percentile)."""
    rows = (
        _attempts_since(since, until, webhook_id)
        .values("webhook_id")
        .order_by()
        .annotate(
            attempts=Count("started_at"),
            accepted_count=Count("started_at", filter=Q(accepted=True)),
        )
    )
    if connection.vendor == "postgresql":
        rows = rows.annotate(p95=Percentile95("duration"))
    stats = {
        row["webhook_id"]: AttemptStats(
            row["attempts"], row["accepted_count"] or 0, row.get("p95")
        )
        for row in rows
    }
    if connection.vendor != "postgresql" and stats:
        durations: dict[int, list[float]] = {}
        for hook_id, duration in (
            _attempts_since(since, until, webhook_id)
            .filter(duration__isnull=False)
            .order_by("duration")
            .values_list("webhook_id", "duration")
        ):
            durations.setdefault(hook_id, []).append(duration)
        for hook_id, values in durations.items():
            stats[hook_id].p95_duration = values[max(0, math.ceil(0.95 * len(values)) - 1)]
    return stats


def attempts_per_hour(
    *, now: datetime, hours: int = 48, webhook_id: int | None = None
) -> list[HourBucket]:
    """Accepted and failed attempts per hour over the last `hours` hours, oldest first,
    with empty hours included (one query)."""
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=hours - 1)
    counted = {
        row["hour"]: row
        for row in _attempts_since(first_hour, now + timedelta(seconds=1), webhook_id)
        .annotate(hour=TruncHour("started_at"))
        .values("hour")
        .order_by()
        .annotate(
            accepted_count=Count("started_at", filter=Q(accepted=True)),
            failed_count=Count("started_at", filter=Q(accepted=False)),
        )
    }
    buckets = []
    for offset in range(hours):
        start = first_hour + timedelta(hours=offset)
        row = counted.get(start, {})
        buckets.append(
            HourBucket(start, row.get("accepted_count") or 0, row.get("failed_count") or 0)
        )
    return buckets


def attempts_per_day(*, now: datetime, days: int, webhook_id: int) -> list[dict]:
    """One webhook's finished attempts per day over the last `days` days, newest first:
    `day`, `attempts`, `accepted`, `success_rate` (one query)."""
    first_day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    rows = (
        _attempts_since(first_day, now + timedelta(seconds=1), webhook_id)
        .annotate(day=TruncDay("started_at"))
        .values("day")
        .order_by("-day")
        .annotate(
            attempts=Count("started_at"),
            accepted=Count("started_at", filter=Q(accepted=True)),
        )
    )
    return [
        {**row, "success_rate": row["accepted"] / row["attempts"] if row["attempts"] else None}
        for row in rows
    ]


def lag_annotations() -> dict[str, Expression]:
    """Expressions for a Webhook queryset, computed in the list's one query: what
    webhook_lag needs (the backlog: deliveries.stream.backlog_annotations; the open
    batch's entries and when it was made). A webhook with a scope is counted over every
    stream row after its cursor: webhook_lag reads its own."""
    open_batch = (Delivery.objects.open().filter(webhook=OuterRef("pk"), entry_count__gt=0)
                  .order_by("created_at"))
    return {
        **backlog_annotations(),
        "open_entry_count": Subquery(open_batch.values("entry_count")[:1]),
        "open_created_at": Subquery(open_batch.values("created_at")[:1]),
    }


def webhook_lag(webhook: Webhook) -> WebhookHealth:
    """The webhook's backlog and open batch (for WebhookHealth.lag and
    unaccepted_entries), from lag_annotations when the queryset had them and the webhook
    has no scope; otherwise read for it alone (a fixed number of queries)."""
    if webhook.is_scoped or not hasattr(webhook, "open_created_at"):
        return webhooks_health(webhook_id=webhook.pk, last_day=False)[0]
    times = [webhook.oldest_pending_change_at, webhook.oldest_stream_change_at]
    open_batch = None
    if webhook.open_created_at is not None:
        # Only what lag and unaccepted_entries read of the open batch.
        open_batch = Delivery(webhook=webhook, entry_count=webhook.open_entry_count,
                              created_at=webhook.open_created_at)
    return WebhookHealth(
        webhook=webhook,
        pending_entries=webhook.pending_count,
        oldest_pending_at=min((time for time in times if time is not None), default=None),
        open_delivery=open_batch,
    )


def webhooks_health(
    *, now: datetime | None = None, webhook_id: int | None = None, last_day: bool = True
) -> list[WebhookHealth]:
    """Every webhook (or one) with its pending backlog, open batch and last 24 hours
    (unless not `last_day`), in a fixed number of queries."""
    now = now or timezone.now()
    webhooks = Webhook.objects.order_by("name", "id")
    open_deliveries = Delivery.objects.open()
    if webhook_id is not None:
        webhooks = webhooks.filter(pk=webhook_id)
        open_deliveries = open_deliveries.filter(webhook_id=webhook_id)
    pending_by_webhook = webhooks_backlog(webhook_id=webhook_id)
    open_by_webhook = {delivery.webhook_id: delivery for delivery in open_deliveries}
    stats = attempt_stats_by_webhook(
        since=now - timedelta(hours=24), until=now + timedelta(seconds=1), webhook_id=webhook_id
    ) if last_day else {}
    rows = []
    for webhook in webhooks:
        backlog = pending_by_webhook.get(webhook.pk, Backlog())
        rows.append(
            WebhookHealth(
                webhook=webhook,
                pending_entries=backlog.count,
                oldest_pending_at=backlog.oldest,
                open_delivery=open_by_webhook.get(webhook.pk),
                last_day=stats.get(webhook.pk, AttemptStats()),
            )
        )
    return rows


# "training 345345", "Training #345345", "institute:12"
# ASCII digits only, at most 19 of them: ids are 64-bit integers, and a longer number (or
# one in other scripts' digits) is no id at all, so the search falls back to the others.
_OBJECT_QUERY = re.compile(
    rf"^\s*({'|'.join(map(re.escape, OBJECT_KINDS))})\s*[#:]?\s*([0-9]{{1,19}})\s*$",
    re.IGNORECASE | re.ASCII,
)
_ID_MAX = 2**63 - 1


def object_query_parse(text: str) -> tuple[str, int] | None:
    """("training", 345345) for a search like "training 345345"; None otherwise (also for a
    number that cannot be an id)."""
    match = _OBJECT_QUERY.match(text)
    if match is None or int(match.group(2)) > _ID_MAX:
        return None
    return match.group(1).lower(), int(match.group(2))


def deliveries_carrying(
    *, object_kind: str, object_id: int, deliveries: QuerySet | None = None
) -> QuerySet:
    """The batches (of `deliveries`, by default all retained) whose body carried this
    object.

    The bodies that carried it are found first, then the deliveries that reference them
    (by the index on `Delivery.body`). PostgreSQL finds the indexed bodies with the GIN
    index on `(payload::jsonb -> 'changes') WHERE indexed`, and reads the few stored since
    the last `index` job (deliveries.services.bodies) one by one (migration deliveries
    0011); SQLite matches the compact JSON text, whose key order payload_render fixes
    (`"object":"training","id":345345` followed by `,` or `}`).
    """
    if deliveries is None:
        deliveries = Delivery.objects.all()
    if connection.vendor == "postgresql":
        probe = json.dumps([{"object": object_kind, "id": object_id}])
        bodies = DeliveryBody.objects.filter(
            # Unqualified: the condition runs inside the deliveries' subquery, where the
            # body table has an alias; only bodies have `payload` and `indexed` columns.
            # Two arms, each matching one partial index, so the planner ORs two scans.
            RawSQL(
                "(indexed AND ((payload)::jsonb -> 'changes') @> %s::jsonb) OR "
                "(NOT indexed AND ((payload)::jsonb -> 'changes') @> %s::jsonb)",
                [probe, probe],
                output_field=BooleanField(),
            )
        )
    else:
        key = f'"object":{json.dumps(object_kind)},"id":{object_id}'
        bodies = DeliveryBody.objects.filter(
            Q(payload__contains=key + ",") | Q(payload__contains=key + "}")
        )
    return deliveries.filter(body__in=bodies.values("digest"))


def delivery_payloads(*, delivery_ids: Iterable[int]) -> dict[int, str]:
    """The exact bodies sent, by delivery id (one query; each distinct body read once).

    The one way to read many deliveries' bodies; for a single delivery already loaded,
    `delivery.payload` reads its body.
    """
    rows = list(
        Delivery.objects.filter(pk__in=list(delivery_ids)).values_list("pk", "body_id")
    )
    texts = dict(
        DeliveryBody.objects.filter(digest__in={digest for _, digest in rows}).values_list(
            "digest", "payload"
        )
    )
    return {delivery_id: texts[digest] for delivery_id, digest in rows}


def dispatcher_last_tick() -> datetime | None:
    return DispatcherHeartbeat.objects.filter(pk=1).values_list("ticked_at", flat=True).first()


def deliveries_open_by_state() -> dict[str, int]:
    """Open deliveries (at most one per webhook) per state: pending, failing."""
    counts = {Delivery.State.PENDING: 0, Delivery.State.FAILING: 0}
    for row in (
        Delivery.objects.open()
        .order_by().values("state").annotate(count=Count("pk"))
    ):
        counts[row["state"]] = row["count"]
    return counts


def deliveries_accepted_since(*, since: datetime) -> int:
    """Deliveries accepted since `since` (from the partial index on delivered_at)."""
    return Delivery.objects.filter(
        state=Delivery.State.DELIVERED, delivered_at__gte=since
    ).count()


def attempt_durations_histogram(
    *, since: datetime, buckets: list[float]
) -> tuple[list[int], int, float]:
    """Finished attempts started since `since`: cumulative counts per upper bound in
    `buckets` (then +Inf), the count, and the sum of durations (one query)."""
    aggregates = {
        f"le_{index}": Count("started_at", filter=Q(duration__lte=bound))
        for index, bound in enumerate(buckets)
    }
    row = (
        DeliveryAttempt.objects.filter(started_at__gte=since, duration__isnull=False)
        .filter(_FINISHED)
        .aggregate(count=Count("started_at"), total=Sum("duration"), **aggregates)
    )
    counts = [row[f"le_{index}"] or 0 for index in range(len(buckets))]
    return counts, row["count"] or 0, row["total"] or 0.0


@dataclass(frozen=True)
class DeliveriesPage:
    count: int
    deliveries: list[Delivery]
    last_page: int


def webhook_deliveries_page(
    *, webhook_id: int, state: str | None, page: int, page_size: int,
    created_from: datetime | None = None, created_before: datetime | None = None,
) -> DeliveriesPage:
    """One page of a webhook's deliveries (retained ones), newest first, optionally in one
    state and made in [created_from, created_before); without their payloads. Two queries
    over the (webhook, -created_at) index: the count and the page."""
    deliveries = Delivery.objects.filter(webhook_id=webhook_id)
    if state is not None:
        deliveries = deliveries.filter(state=state)
    if created_from is not None:
        deliveries = deliveries.filter(created_at__gte=created_from)
    if created_before is not None:
        deliveries = deliveries.filter(created_at__lt=created_before)
    count = deliveries.count()
    offset = (page - 1) * page_size
    rows = list(
        deliveries.order_by("-created_at", "-id")[offset : offset + page_size]
    )
    return DeliveriesPage(count, rows, max(1, -(-count // page_size)))


def webhook_delivery_get(*, webhook_id: int, message_id: str) -> Delivery | None:
    """The webhook's delivery with this message id, its attempts prefetched (two queries)."""
    return (
        Delivery.objects.filter(webhook_id=webhook_id, message_id=message_id)
        .prefetch_related("attempts")
        .first()
    )


def webhook_last_accepted(*, webhook_id: int) -> Delivery | None:
    """The webhook's last accepted delivery, without its payload (one query).

    A webhook's batches are accepted in the order they were made (the next one is built
    only after the last was accepted), so the newest accepted one by creation is the last
    accepted: the (webhook, -created_at) index finds it.
    """
    return (
        Delivery.objects.filter(webhook_id=webhook_id, state=Delivery.State.DELIVERED)
        .order_by("-created_at", "-id")
        .first()
    )


# --- What was sent to a webhook, in order ---------------------------------------------------
# A batch's position is its Delivery id: a webhook's batches are made one after the other
# (the next only once the last was accepted), so their ids rise in the order they were
# sent. Retention deletes a webhook's accepted batches oldest first, so what is retained
# of a webhook is always everything after some position.


def delivery_body(delivery: Delivery) -> str:
    """The exact body a batch carried (compact JSON): the one place bodies are read for
    the ordered feed and replays."""
    return delivery.payload


def delivery_changes(delivery: Delivery) -> list[dict]:
    """The entries of a batch, as the partner received them."""
    return json.loads(delivery_body(delivery))["changes"]


@dataclass(frozen=True)
class WebhookPositions:
    """Where a webhook's retained history starts and ends (None: no batch retained)."""

    oldest: int | None
    latest: int | None


def webhook_positions(*, webhook_id: int) -> WebhookPositions:
    """The first and last retained positions of the webhook's batches (one query)."""
    row = Delivery.objects.filter(webhook_id=webhook_id).aggregate(
        oldest=Min("id"), latest=Max("id")
    )
    return WebhookPositions(row["oldest"], row["latest"])


def webhook_position_of(*, webhook_id: int, position: int | None = None,
                        message_id: str | None = None) -> int | None:
    """The position of one of the webhook's retained batches, given by position or by
    message id; None when the webhook has no such batch retained."""
    batches = Delivery.objects.filter(webhook_id=webhook_id)
    if message_id is not None:
        batches = batches.filter(message_id=message_id)
    else:
        batches = batches.filter(id=position)
    return batches.values_list("id", flat=True).first()


def webhook_batches_after(*, webhook_id: int, after: int, limit: int) -> list[Delivery]:
    """The webhook's batches after position `after`, in the order sent, at most `limit`,
    test events left out (they carry no entry); bodies included."""
    return list(
        Delivery.objects.filter(webhook_id=webhook_id, id__gt=after, is_test=False)
        .select_related("body")  # each batch's body in the same query (delivery_body)
        .order_by("id")[:limit]
    )


def webhook_batches_since(*, webhook_id: int, since: datetime) -> Iterator[Delivery]:
    """The webhook's batches made at or after `since`, in the order sent, test events
    left out; read 100 at a time."""
    return (
        Delivery.objects.filter(webhook_id=webhook_id, created_at__gte=since, is_test=False)
        .select_related("body")  # each batch's body in the same query (delivery_body)
        .order_by("id")
        .iterator(chunk_size=100)
    )
