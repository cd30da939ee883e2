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
    paused_reason = models.CharField(max_length=255, blank=True, default="", editable=False)
    # Start of the current run of failed attempts (cleared by an accepted delivery).
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    # When staff were told about the current failing run; null while nobody was told.
    failure_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the whole catalogue was last queued for this webhook (a resync): a partner may
    # ask for one at most once per WEBHOOK_RESYNC_INTERVAL.
    last_resync_at = models.DateTimeField(null=True, blank=True, editable=False)
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

    @property
    def scope_object_kinds(self) -> tuple[str, ...]:
        """The kinds of object this webhook receives ("institute", "training")."""
        return SCOPE_OBJECT_KINDS[self.scope_objects]

    @property
    def is_scoped(self) -> bool:
        """Whether the webhook receives less than every change of the whole catalogue."""
        return self.scope_institutes is not None or self.scope_objects != ScopeObjects.ALL
