import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import connections, models
from django.db.models import Q

from webhooks.models import Webhook

# An open delivery: not accepted yet, whether pending or failing (Delivery.State). The
# one-open-per-webhook constraint, the partial index of due deliveries and
# `Delivery.objects.open()` all use this one condition.
OPEN_DELIVERY = ~Q(state="delivered")


class StreamEntry(models.Model):
    """One object's latest changes (in one institute), coalesced, shared by every webhook:
    the change stream.

    The collector (deliveries.services.collect) writes one row per object and stamps it
    with `seq`, the next number of the stream, in its own transaction: only one collector
    runs at a time and it reads only committed changes, so seqs become visible in order
    and a webhook's cursor over them skips nothing. When the object changes again, its
    row merges the new changes and is stamped anew, so each object appears once, at its
    latest change. A webhook has received every row at or below its cursor
    (WebhookCursor); rows every cursor has passed are deleted.
    """

    object_kind = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    parent_id = models.BigIntegerField(null=True, blank=True)
    # The institute the row belongs to: an institute's own id, a training's institute (0
    # when unknown). A training that moved has a row in each institute it was in (a
    # destroy in those it left), so that a webhook whose scope holds some institutes
    # reads just their rows (deliveries.stream; which ones: deliveries.services.scope).
    institute_id = models.BigIntegerField(default=0)
    action = models.CharField(max_length=16)
    # Kept when the row is stamped anew: the bundle delay counts from here, so an object
    # edited without pause still goes out (no starvation).
    first_change_at = models.DateTimeField()
    last_change_at = models.DateTimeField()
    seq = models.BigIntegerField(unique=True)

    class Meta:
        verbose_name_plural = "stream entries"
        constraints = [
            models.UniqueConstraint(
                fields=["object_kind", "object_id", "institute_id"],
                name="stream_entry_one_per_object_institute",
            ),
        ]
        indexes = [
            # A scoped webhook reads its institutes' rows after its cursor, in seq order.
            models.Index(fields=["institute_id", "seq"], name="stream_entry_institute_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.seq}: {self.action} {self.object_kind} {self.object_id}"


class StreamHead(models.Model):
    """The last seq the collector stamped (one row, made by the migration)."""

    seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"stream head at {self.seq}"


class WebhookCursor(models.Model):
    """How far one webhook has taken the stream: every StreamEntry with `seq` at or below
    this went into one of its deliveries. The collector creates it at the stream's head
    when the webhook first sees changes, so a webhook receives the changes recorded after
    it was created; a paused webhook's cursor stays where it is and its backlog waits."""

    webhook = models.OneToOneField(
        Webhook, on_delete=models.CASCADE, primary_key=True, related_name="stream_cursor"
    )
    seq = models.BigIntegerField()

    def __str__(self) -> str:
        return f"webhook {self.webhook_id} at {self.seq}"


class PendingEntry(models.Model):
    """One object's undelivered change meant for one webhook alone, already coalesced.

    Changes recorded for one webhook (`Change.webhook`: a resync, a partner's request) wait
    here instead of in the shared stream, merged per object as the stream merges them
    (see deliveries.services.collect), so such a backlog too is bounded by the number of
    distinct objects. A webhook's batch merges these with its stream entries in seq order.
    An entry is removed in the transaction that puts it into a Delivery.
    """

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="pending_entries")
    object_kind = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    parent_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=16)
    # The oldest change folded into this entry: the bundle delay counts from here.
    first_change_at = models.DateTimeField()
    last_change_at = models.DateTimeField()
    # The seq the collector stamped on its latest change, from the stream's numbering
    # (StreamEntry.seq): entries go out ordered by it, merged with the stream's rows.
    seq = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "pending entries"
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "object_kind", "object_id"], name="pending_entry_one_per_object"
            ),
        ]
        indexes = [
            models.Index(fields=["webhook", "seq"], name="pending_entry_batch_order"),
            models.Index(fields=["webhook", "first_change_at"], name="pending_entry_oldest"),
            models.Index(fields=["webhook", "parent_id"], name="pending_entry_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_kind} {self.object_id} for {self.webhook_id}"


def payload_digest(payload: str) -> str:
    """The SHA-256 (hex) of the exact bytes sent: the key of the payload's DeliveryBody."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class DeliveryBodyManager(models.Manager):
    def store(self, payloads: Iterable[str]) -> dict[str, "DeliveryBody"]:
        """Each distinct payload's body, inserted unless it is stored already: one
        statement, whatever the number of payloads. Keyed by payload.

        On PostgreSQL the bodies already stored are locked (`ON CONFLICT DO UPDATE ...
        WHERE false` locks without writing), so retention cannot delete one between this
        statement and the commit of the deliveries that reference it; locked in digest
        order, so two claims never wait for each other in a circle.
        """
        bodies = {payload: self.model(digest=payload_digest(payload), payload=payload)
                  for payload in payloads}
        rows = sorted(bodies.values(), key=lambda body: body.digest)
        if not rows:
            return bodies
        connection = connections[self.db]
        if connection.vendor != "postgresql":
            self.bulk_create(rows, ignore_conflicts=True)  # SQLite: one writer at a time
            return bodies
        table = self.model._meta.db_table
        values = ", ".join(["(%s, %s)"] * len(rows))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (digest, payload) VALUES {values} "
                "ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest WHERE false",
                [value for body in rows for value in (body.digest, body.payload)],
            )
        return bodies


class DeliveryBody(models.Model):
    """One body as sent, stored once however many deliveries carry it.

    In a fan-out every webhook at the same cursor gets the same batch: its deliveries all
    reference one row. Rows are inserted, keyed by the digest of their bytes, and never
    change but for `indexed`; retention (deliveries.services.retention) deletes those no
    delivery references any more.
    """

    digest = models.CharField(max_length=64, primary_key=True, help_text="SHA-256, hex.")
    payload = models.TextField(help_text="The exact JSON body sent (compact UTF-8).")
    # In PostgreSQL's search index yet. A claim stores a body unindexed: parsing 48 KB of
    # JSON and inserting its 2,000 keys cost the claim about 1 ms a batch (and at times a
    # 230 ms merge of the index's pending list). The periodic job `index`
    # (deliveries.services.bodies.bodies_index) sets it, once, soon after.
    indexed = models.BooleanField(
        default=False, db_default=False,
        help_text="In PostgreSQL's search index (filled after the fact).",
    )

    objects = DeliveryBodyManager()

    class Meta:
        verbose_name_plural = "delivery bodies"
        # On PostgreSQL a GIN index on `(payload::jsonb -> 'changes') WHERE indexed` and a
        # btree on `digest WHERE NOT indexed` serve "which batches carried training 345345"
        # (deliveries.selectors.deliveries_carrying): the indexed bodies through the GIN
        # index, the few not indexed yet read one by one. Made by migration 0011 with raw
        # SQL, because SQLite has no such index (it searches the text). Apart from
        # `indexed`, bodies are never updated.

    def __str__(self) -> str:
        return self.digest[:12]


# The delivery state machine, in SQL (DeliveryQuerySet) and in Python (Delivery.is_*),
# held equal by tests/deliveries/test_models.py over random rows:
#   open  not accepted yet (OPEN_DELIVERY);
#   held  open and leased by a worker whose lease has not expired (an attempt in flight);
#   due   open, not held, and its attempt time reached (none set: at once): a claim takes it.
# The transitions (Delivery.lease, accept, fail, make_due) are the only writers of the
# state and lease columns.


def _held_q(now: datetime) -> Q:
    return Q(lease_expires_at__gt=now)


def _due_q(now: datetime) -> Q:
    return Q(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
    )


class DeliveryQuerySet(models.QuerySet):
    def open(self) -> "DeliveryQuerySet":
        """Deliveries not accepted yet (at most one per webhook): pending or failing."""
        return self.filter(OPEN_DELIVERY)

    def held(self, now: datetime) -> "DeliveryQuerySet":
        """Open deliveries whose attempt is in flight: leased, the lease not expired."""
        return self.filter(OPEN_DELIVERY, _held_q(now))

    def due(self, now: datetime) -> "DeliveryQuerySet":
        """Open deliveries a claim may take now: not held, their attempt time reached."""
        return self.filter(OPEN_DELIVERY, _due_q(now))

    def bulk_create(self, objs, *args, **kwargs) -> list["Delivery"]:
        # Deliveries made with `payload=` store their bodies first, each distinct one once
        # (see Delivery.save).
        objs = list(objs)
        unsaved = [delivery for delivery in objs if getattr(delivery, "_body_unsaved", False)]
        if unsaved:
            stored = DeliveryBody.objects.store(delivery.body.payload for delivery in unsaved)
            for delivery in unsaved:
                delivery.body = stored[delivery.body.payload]
                delivery._body_unsaved = False
        return super().bulk_create(objs, *args, **kwargs)


class Delivery(models.Model):
    """One batch for one webhook: the exact body, sent (and re-sent) until accepted."""

    # No admin lookup may touch these (adminpolicy): the lease is the holder's proof.
    sensitive_fields = ("lease_token",)

    class State(models.TextChoices):
        PENDING = "pending", "pending"  # not attempted yet
        FAILING = "failing", "failing"  # attempted and failed; retried at next_attempt_at
        DELIVERED = "delivered", "delivered"  # a 2xx answer was received

    # Indexed by delivery_webhook_history (webhook, newest first), which serves every
    # lookup by webhook: a second index of its own would only be written, never read.
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Sent as `webhook-id`, the same on every retry: partners de-duplicate on it.
    # Unique (delivery_message_id_unique): by a constraint rather than unique=True, whose
    # second, pattern-matching index (for LIKE) no query uses and every insert wrote.
    message_id = models.CharField(max_length=64)
    # Shared with every delivery that carries the same bytes (read it with
    # deliveries.selectors.delivery_payloads, or `delivery.payload` for one).
    # Indexed by delivery_body (retention asks whether a body is still referenced), a
    # plain index: the field's own would add a pattern-matching one for LIKE on digests.
    body = models.ForeignKey(
        DeliveryBody, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    entry_count = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Who holds the delivery while an attempt is in flight, and until when. A worker that
    # dies mid-send leaves its lease to expire; then another one takes the delivery over.
    lease_token = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error_kind = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # An operator's "send test event": `{"changes": []}`, signed and recorded like any batch.
    is_test = models.BooleanField("test", default=False)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one batch per webhook is open at a time: a later batch is only built
            # once the earlier one was accepted, which keeps the partner's order.
            models.UniqueConstraint(
                fields=["webhook"],
                condition=OPEN_DELIVERY,
                name="delivery_one_open_per_webhook",
            ),
            models.UniqueConstraint(fields=["message_id"], name="delivery_message_id_unique"),
        ]
        # Each index is written by every insert and by every state change (a claim's
        # lease, an acceptance): none that another one already serves.
        indexes = [
            models.Index(fields=["body"], name="delivery_body"),
            models.Index(
                fields=["next_attempt_at"],
                condition=OPEN_DELIVERY,
                name="delivery_open_due",
            ),
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_history"),
            models.Index(fields=["state", "created_at"], name="delivery_state_created"),
            # The delivery list's order (newest first) without sorting the whole history.
            models.Index(fields=["-created_at", "-id"], name="delivery_newest_first"),
            # Retention finds old accepted deliveries without reading the recent ones.
            models.Index(
                fields=["delivered_at"],
                condition=Q(state="delivered"),
                name="delivery_delivered_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.state})"

    def save(self, *args, **kwargs) -> None:
        if getattr(self, "_body_unsaved", False):
            self.body = DeliveryBody.objects.store([self.body.payload])[self.body.payload]
            self._body_unsaved = False
        super().save(*args, **kwargs)

    # The state machine on one row (see DeliveryQuerySet for the same rules in SQL).

    @property
    def is_open(self) -> bool:
        return self.state != self.State.DELIVERED

    def is_held(self, now: datetime) -> bool:
        return (self.is_open and self.lease_expires_at is not None
                and self.lease_expires_at > now)

    def is_due(self, now: datetime) -> bool:
        return (self.is_open and not self.is_held(now)
                and (self.next_attempt_at is None or self.next_attempt_at <= now))

    # The columns each transition writes (for bulk_update and save(update_fields=...)).
    LEASE_FIELDS = ("attempt_count", "lease_token", "lease_expires_at", "last_attempt_at")
    MAKE_DUE_FIELDS = ("next_attempt_at",)

    def lease(self, *, now: datetime, until: datetime) -> None:
        """Take the delivery for one more attempt, held until `until` under a new token."""
        self.attempt_count += 1
        self.lease_token = uuid.uuid4().hex
        self.lease_expires_at = until
        self.last_attempt_at = now

    def accept(self, *, now: datetime) -> None:
        """The partner accepted it: closed, the lease released."""
        self.state = self.State.DELIVERED
        self.delivered_at = now
        self.next_attempt_at = None
        self._release()

    def fail(self, *, retry_at: datetime) -> None:
        """An attempt failed: retried at `retry_at`, the lease released."""
        self.state = self.State.FAILING
        self.next_attempt_at = retry_at
        self._release()

    def make_due(self, *, now: datetime) -> None:
        """Retry at the next tick instead of at the backoff time (callers check is_held)."""
        self.next_attempt_at = now

    def _release(self) -> None:
        self.lease_token = ""
        self.lease_expires_at = None

    @property
    def payload(self) -> str:
        """The exact body sent (its DeliveryBody's text)."""
        return self.body.payload

    @payload.setter
    def payload(self, payload: str) -> None:
        # `Delivery(payload=...)`, as a one-off delivery (a test event, "retry now") is
        # made: save() stores the body (once) before the delivery. Claims store their
        # bodies in bulk (DeliveryBody.objects.store) and set `body` themselves.
        self.body = DeliveryBody(digest=payload_digest(payload), payload=payload)
        self._body_unsaved = True


class DeliveryAttempt(models.Model):
    """One try at sending a Delivery: when, how long, and what the partner answered."""

    class ErrorKind(models.TextChoices):
        NONE = "", "none (the partner answered)"
        IN_PROGRESS = "in_progress", "in progress"
        HTTP_STATUS = "http_status", "HTTP status"
        REDIRECT = "redirect", "redirect (not followed)"
        TIMEOUT = "timeout", "timeout"
        CONNECTION = "connection", "connection error"
        TLS = "tls", "TLS error"
        DNS = "dns", "DNS error"
        REFUSED_ADDRESS = "refused_address", "refused address"
        LEASE_EXPIRED = "lease_expired", "worker lost (lease expired)"
        # Ours, not the partner's: the outcome could not be stored as it came, so the
        # attempt counts as failed and its batch is retried on the schedule.
        RECORD_FAILED = "record_failed", "not recorded (our failure)"

    # Indexed by attempt_number_unique (delivery, number), which serves lookups by delivery.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    # The delivery's webhook, copied so that the dashboard aggregates a day of attempts per
    # webhook from one index, without joining a million deliveries.
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="+", null=True, blank=True,
        db_index=False,
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    accepted = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, choices=ErrorKind.choices, blank=True)
    error_message = models.TextField(blank=True, default="")
    response_body = models.TextField(
        blank=True, default="",
        help_text="The first 2 KiB of the answer, as text (see response_bytes_replaced).",
    )
    # What the excerpt does not show as it came. Every database stores the excerpt, so
    # NUL bytes and invalid UTF-8 are replaced; a compressed body (we ask for none) is not
    # kept at all.
    # Database defaults too: the previous release, still running during an upgrade, writes
    # attempts without these columns.
    response_bytes_replaced = models.BooleanField(
        default=False, db_default=False,
        help_text="NUL bytes or invalid UTF-8 in the kept answer were replaced with U+FFFD.",
    )
    response_encoding = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="The answer's Content-Encoding when it came compressed although we asked "
        "for none (its body is not kept).",
    )

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique"),
        ]
        indexes = [
            # The dashboard's windows: attempts of the last 24/48 hours per webhook, read from
            # the index alone (PostgreSQL) without visiting the table.
            models.Index(
                fields=["started_at"],
                include=["webhook", "accepted", "duration", "error_kind"],
                name="attempt_started_covering",
            ),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number}: {self.outcome}"

    def save(self, *args, **kwargs) -> None:
        if self.webhook_id is None and self.delivery_id is not None:
            self.webhook_id = self.delivery.webhook_id
        super().save(*args, **kwargs)

    @property
    def outcome(self) -> str:
        """What happened, for people: "accepted (HTTP 204)", "HTTP 503", "timeout"."""
        if self.accepted:
            return f"accepted (HTTP {self.status_code})" if self.status_code else "accepted"
        if self.error_kind == self.ErrorKind.HTTP_STATUS and self.status_code:
            return f"HTTP {self.status_code}"
        if self.error_kind:
            return self.get_error_kind_display()
        return "failed"


class DispatcherHeartbeat(models.Model):
    """The time of the dispatcher's last tick (one row), for /healthz: a dispatcher that
    stopped ticking means nothing is delivered, whatever else looks fine."""

    ticked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"last dispatcher tick at {self.ticked_at:%Y-%m-%d %H:%M:%S}"
