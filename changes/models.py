from django.db import models, router, transaction


class Action(models.TextChoices):
    UPDATE = "update", "update"
    DESTROY = "destroy", "destroy"
    IMPORT = "import", "import"


class Change(models.Model):
    """One recorded change of one object: the transactional outbox.

    A row is written in the same transaction as the data it describes and is removed only
    when the dispatcher has copied it into every webhook's pending entries, in that
    dispatcher's own transaction. `object_kind` is the name of one of changes.kinds (a plain
    string such as "training"), so that this app never imports the catalogue.
    """

    object_kind = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    # The object that owns this one (a training's institute): lets a training update fold
    # into its institute's import.
    parent_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    # Not indexed: the collector claims by id, and every index is paid by every save.
    created_at = models.DateTimeField()
    # Set for a change meant for one webhook only (a resync sends that webhook the whole
    # catalogue); empty for a change every webhook receives. No database constraint nor
    # index: writers never pay for them, and the collector skips a webhook that is gone.
    webhook = models.ForeignKey(
        "webhooks.Webhook", on_delete=models.DO_NOTHING, null=True, blank=True,
        db_constraint=False, db_index=False, related_name="+",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        target = f" for webhook {self.webhook_id}" if self.webhook_id else ""
        return f"{self.action} {self.object_kind} {self.object_id}{target}"


class AtomicSaveModel(models.Model):
    """A model whose save() and delete() run, with their signals, in one transaction.

    Django saves a plain model in autocommit and sends post_save after that statement has
    committed, so a receiver that records a Change would run outside the save's
    transaction: a crash between the two loses the change. Wrapping both in one
    atomic block makes the data and its Change commit or roll back together. Inside an
    outer transaction this adds no savepoint (savepoint=False): it just joins it.
    """

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            super().save(*args, **kwargs)

    save.alters_data = True

    def delete(self, *args, **kwargs):
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            return super().delete(*args, **kwargs)

    delete.alters_data = True
