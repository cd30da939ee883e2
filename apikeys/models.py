from django.db import models

from webhooks.models import Webhook


class ApiKey(models.Model):
    """A key that lets one client read the Trainings API; only its hash is stored.

    The raw key is shown once, when it is created (apikeys.services.api_key_create). The
    prefix (its first characters) stays visible so that staff can tell keys apart and
    match a key a partner quotes to its row. A key may belong to a partner's webhooks:
    with it the partner reads their deliveries and asks for a resync or a test event,
    and sees no other webhook.
    """

    # No admin lookup may touch the hash (adminpolicy): a filter would tell it bit by bit.
    sensitive_fields = ("key_hash",)

    name = models.CharField(max_length=200, help_text="Who uses this key, e.g. the partner.")
    prefix = models.CharField(max_length=8, editable=False)
    # SHA-256 hex digest of the whole raw key; unique, so it doubles as the lookup index.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(
        "active", default=True, help_text="An inactive key is refused (401) at once."
    )
    webhooks = models.ManyToManyField(
        Webhook,
        blank=True,
        related_name="api_keys",
        help_text="The partner's webhooks this key may read and operate "
        "(GET /webhooks, resync, test event). None: the key reads the catalogue only.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Updated at most once a minute (see api_key_check), so it is accurate to the minute.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the key last had the whole catalogue queued, or a test event, for any of its
    # webhooks: a key asks for one of each per WEBHOOK_RESYNC_INTERVAL and
    # WEBHOOK_TEST_INTERVAL however many webhooks it has (deliveries.services.operations).
    last_resync_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
