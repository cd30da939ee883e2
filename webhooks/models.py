from django.db import models

from webhooks.secrets import secret_generate
from webhooks.validators import URL_MAX_LENGTH, webhook_url_validator


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
    # When the whole catalogue was last queued for this webhook (a resync): a partner may
    # ask for one at most once per WEBHOOK_RESYNC_INTERVAL.
    last_resync_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the partner last asked for a test event for this webhook: at most one per
    # WEBHOOK_TEST_INTERVAL. Staff's test events leave it.
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
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
        ]

    def __str__(self) -> str:
        return self.name

    def paused_reason_for_staff(self) -> str:
        """Why it is paused, as staff read it: the partners' reason, and who paused it."""
        if not self.paused_by:
            return self.paused_reason
        return f"{self.paused_reason.removesuffix('.')} ({self.paused_by})."
