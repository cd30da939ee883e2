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
        indexes = [
            # GET /institutes pages in (updated_at, id) order from a position, and
            # `updated_since` starts a range of it: both read this index in order.
            models.Index(fields=["updated_at", "id"], name="institute_updated_id_idx"),
        ]

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
            # GET /trainings, in (updated_at, id) order, like GET /institutes.
            models.Index(fields=["updated_at", "id"], name="training_updated_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.reference})"

    @classmethod
    def from_db(cls, db, field_names, values):
        training = super().from_db(db, field_names, values)
        # The institute the stored row has: a save that changes it is a move, which the
        # change capture records as a leave of this institute (catalog.signals).
        training.stored_institute_id = training.__dict__.get("institute_id")
        return training

