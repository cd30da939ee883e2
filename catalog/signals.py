"""Change capture for the catalogue: receivers only record a Change, nothing else.

The models save inside one transaction with their signals (changes.models.AtomicSaveModel),
so every change recorded here commits or rolls back with the data it describes. Bulk paths
send no signals and record through changes.services.changes_record (see catalog.services).
"""

from django.db.models.signals import post_delete, post_save

from catalog.models import Institute, Training
from changes.kinds import INSTITUTE, TRAINING
from changes.models import Action
from changes.services import change_record


def institute_saved(sender, instance: Institute, **kwargs) -> None:
    change_record(object_kind=INSTITUTE.name, object_id=instance.pk, action=Action.UPDATE)


def institute_deleted(sender, instance: Institute, **kwargs) -> None:
    change_record(object_kind=INSTITUTE.name, object_id=instance.pk, action=Action.DESTROY)


def training_saved(sender, instance: Training, created: bool = False, **kwargs) -> None:
    left = getattr(instance, "stored_institute_id", None)
    if not created and left is not None and left != instance.institute_id:
        # A move: the training leaves its old institute (a destroy there, for webhooks
        # whose scope holds that institute and not the new one) before its update in the
        # new one. A webhook that receives both merges them into the update.
        change_record(
            object_kind=TRAINING.name, object_id=instance.pk, action=Action.DESTROY,
            parent_id=left,
        )
    instance.stored_institute_id = instance.institute_id
    change_record(
        object_kind=TRAINING.name,
        object_id=instance.pk,
        action=Action.UPDATE,
        parent_id=instance.institute_id,
    )


def training_deleted(sender, instance: Training, **kwargs) -> None:
    change_record(
        object_kind=TRAINING.name,
        object_id=instance.pk,
        action=Action.DESTROY,
        parent_id=instance.institute_id,
    )


def connect() -> None:
    post_save.connect(institute_saved, sender=Institute, dispatch_uid="catalog_institute_saved")
    post_delete.connect(
        institute_deleted, sender=Institute, dispatch_uid="catalog_institute_deleted"
    )
    post_save.connect(training_saved, sender=Training, dispatch_uid="catalog_training_saved")
    post_delete.connect(training_deleted, sender=Training, dispatch_uid="catalog_training_deleted")
