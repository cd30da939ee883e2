from django.core.validators import MinValueValidator
from django.db import models

from changes.models import AtomicSaveModel


class Institute(AtomicSaveModel):
    """An organisation that offers trainings; its trainings can be replaced by an import."""

    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Training(AtomicSaveModel):
    """A training of one institute, identified within it by the institute's own reference."""

    institute = models.ForeignKey(Institute, on_delete=models.CASCADE, related_name="trainings")
    reference = models.CharField(
        max_length=255, help_text="The institute's own identifier; imports match on it."
    )
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["institute_id", "reference"]
        constraints = [
            models.UniqueConstraint(
                fields=["institute", "reference"], name="training_reference_unique_per_institute"
            ),
            models.CheckConstraint(
                condition=models.Q(price__isnull=True) | models.Q(price__gte=0),
                name="training_price_not_negative",
            ),
        ]
        indexes = [
            # The API lists an institute's trainings in id order, a page at a time: with
            # this index a page is read in order instead of sorting all of them each time.
            models.Index(fields=["institute", "id"], name="training_institute_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.reference})"


class ApiKey(models.Model):
    """A key that lets one client read the Trainings API; only its hash is stored.

    The raw key is shown once, when it is created (catalog.services.api_key_create). The
    prefix (its first characters) stays visible so that staff can tell keys apart and
    match a key a partner quotes to its row.
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
    created_at = models.DateTimeField(auto_now_add=True)
    # Updated at most once a minute (see api_key_check), so it is accurate to the minute.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
