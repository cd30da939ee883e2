from django.conf import settings
from django.db import models

from webhooks.secrets import secret_generate
from webhooks.validators import URL_MAX_LENGTH, webhook_url_validator


class ScopeObjects(models.TextChoices):
    """Which kinds of object a webhook receives (the names are changes.kinds' kind names)."""

    ALL = "all", "institutes and trainings"
    INSTITUTES = "institute", "institutes only"
    TRAININGS = "training", "trainings only"


# The kinds each choice receives, as the partner API names them.
SCOPE_OBJECT_KINDS: dict[str, tuple[str, ...]] = {
    ScopeObjects.ALL: ("institute", "training"),
    ScopeObjects.INSTITUTES: ("institute",),
    ScopeObjects.TRAININGS: ("training",),
}


class Webhook(models.Model):
    """A partner's endpoint: where Springhook POSTs batches of changes, and how."""

    # No admin lookup may touch these (adminpolicy): a filter would tell them bit by bit.
    sensitive_fields = ("secret", "previous_secret")

    name = models.CharField(max_length=200)
    url = models.CharField(
        "URL",
        max_length=URL_MAX_LENGTH,
        validators=[webhook_url_validator],
        help_text="http:// or https:// address that receives the POSTed batches.",
    )
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="A paused webhook keeps collecting changes and sends them when resumed.",
    )
    secret = models.CharField(max_length=128, default=secret_generate, editable=False)
    # The secret before the last rotation keeps signing next to the new one until then,
    # so that partners can switch without rejecting a request.
    previous_secret = models.CharField(max_length=128, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    bundle_delay = models.FloatField(
        null=True,
        blank=True,
        help_text="Seconds a batch waits to bundle more changes; empty uses the default.",
    )
    # Why it is paused, as partners read it (the partner API, the portal): never a name.
    paused_reason = models.CharField(max_length=255, blank=True, default="", editable=False)
    # The staff member who paused it, for staff only (empty when Springhook or the partner
    # paused it, or it runs). The database default keeps inserts that name no such column
    # working (code older than the column, during an upgrade).
    paused_by = models.CharField(
        max_length=150, blank=True, default="", db_default="", editable=False
    )
    # Start of the current run of failed attempts (cleared by an accepted delivery).
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    # When staff were told about the current failing run; null while nobody was told.
    failure_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the partner last had the whole catalogue queued for this webhook (a resync): it
    # may ask for one at most once per WEBHOOK_RESYNC_INTERVAL. Staff's resyncs leave it.
    last_resync_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the partner last asked for a test event for this webhook: at most one per
    # WEBHOOK_TEST_INTERVAL. Staff's test events leave it.
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The part of the catalogue the webhook receives: the institutes (each with its
    # trainings) by id, or null for the whole catalogue; and which kinds of object. Plain
    # ids, not a relation: this app knows no catalogue model, and an institute deleted
    # stays in the scope until the scope is changed, so that its destroy still reaches
    # the webhook. Changed with deliveries.services.webhook_scope_change, which sends the
    # partner what entered and what left.
    scope_institutes = models.JSONField(
        "institutes", null=True, blank=True, default=None,
        help_text="Ids of the institutes sent; empty sends the whole catalogue.",
    )
    scope_objects = models.CharField(
        "objects", max_length=16, choices=ScopeObjects.choices, default=ScopeObjects.ALL,
        # Also the database's default: rows written without the field (raw SQL, an older
        # schema's code during an upgrade) receive everything, as before scopes.
        db_default=ScopeObjects.ALL,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        permissions = [
            ("view_webhook_secret", "Can view webhook secrets"),
            ("operate_webhook", "Can retry, pause and resume webhooks"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(bundle_delay__isnull=True) | models.Q(bundle_delay__gte=0),
                name="webhook_bundle_delay_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(scope_objects__in=ScopeObjects.values),
                name="webhook_scope_objects_known",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def paused_reason_for_staff(self) -> str:
        """Why it is paused, as staff read it: the partners' reason, and who paused it."""
        if not self.paused_by:
            return self.paused_reason
        return f"{self.paused_reason.removesuffix('.')} ({self.paused_by})."

    @property
    def scope_object_kinds(self) -> tuple[str, ...]:
        """The kinds of object this webhook receives ("institute", "training")."""
        return SCOPE_OBJECT_KINDS[self.scope_objects]

    @property
    def is_scoped(self) -> bool:
        """Whether the webhook receives less than every change of the whole catalogue."""
        return self.scope_institutes is not None or self.scope_objects != ScopeObjects.ALL


class WebhookAction(models.Model):
    """What someone did to a webhook, for staff: who (a staff user or a partner's API key),
    through what (the admin, the partner portal, the partner API), what, and when.

    The key is kept as its id and its label (name and prefix) at the time, so that the
    record still says who it was after the key is renamed, revoked or deleted (this app
    knows no API keys: they live above it).
    """

    class Channel(models.TextChoices):
        ADMIN = "admin", "admin"
        PORTAL = "portal", "partner portal"
        API = "api", "partner API"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="actions")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # What was asked for, as a stable code: "retry", "pause", "rotate_secret", "change_url"…
    action = models.CharField(max_length=32)
    # What it did, in the words the actor was told.
    outcome = models.TextField()
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    api_key_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(
        max_length=255, help_text="Who, in words: the staff user or the partner key's label."
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["webhook", "-at"], name="webhook_action_history")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} via {self.channel}: {self.action}"
