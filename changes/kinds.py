"""The kinds of object whose changes are recorded and sent: each kind's name, where the
Trainings API serves it, and which kind owns it, defined here once.

A kind's name is what `Change.object_kind` stores and what a change entry's `object` says;
its API path is where the entry's `url` points; its parent is the kind whose `import`
stands for all its objects (a training update folds into its institute's import). Plain
strings, so that `changes` knows the kinds without importing the catalogue.
"""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ObjectKind:
    name: str
    # The collection in the Trainings API; one object is at `<api_path>/<id>`.
    api_path: str
    # The kind that owns objects of this one (stored as the change's parent_id), if any.
    parent: str | None = None

    def path(self, object_id: int) -> str:
        return f"{self.api_path}/{object_id}"

    def url(self, object_id: int) -> str:
        """Where the Trainings API serves the object: API_BASE_URL + its path, with no format
        extension and no API key (partners add their own)."""
        return settings.API_BASE_URL + self.path(object_id)


INSTITUTE = ObjectKind(name="institute", api_path="/institutes")
TRAINING = ObjectKind(name="training", api_path="/trainings", parent=INSTITUTE.name)

OBJECT_KINDS: dict[str, ObjectKind] = {kind.name: kind for kind in (TRAINING, INSTITUTE)}


def object_kind_get(name: str) -> ObjectKind:
    """The kind called `name`; ValueError naming the known kinds for any other name."""
    try:
        return OBJECT_KINDS[name]
    except KeyError:
        raise ValueError(
            f"unknown object kind {name!r}; expected one of {sorted(OBJECT_KINDS)}"
        ) from None

