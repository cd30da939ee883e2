"""The Trainings API's URLs, at the site root. Each answers with and without `.json`."""

from django.urls import URLPattern, path

from catalog import api
from changes.kinds import INSTITUTE, TRAINING


def _with_json_suffix(route: str, view, name: str) -> list[URLPattern]:
    # The suffix is accepted for partners whose clients add it; it names no other format,
    # and the URLs the API itself hands out never carry it.
    return [path(route, view, name=name), path(f"{route}.json", view, name=f"{name}-json")]


# "trainings", "institutes": the API paths of the object kinds, which change URLs point to.
TRAININGS = TRAINING.api_path.lstrip("/")
INSTITUTES = INSTITUTE.api_path.lstrip("/")

urlpatterns = [
    *_with_json_suffix(TRAININGS, api.training_list, "training-list"),
    *_with_json_suffix(f"{TRAININGS}/<int:training_id>", api.training_detail, "training-detail"),
    *_with_json_suffix(INSTITUTES, api.institute_list, "institute-list"),
    *_with_json_suffix(
        f"{INSTITUTES}/<int:institute_id>", api.institute_detail, "institute-detail"
    ),
    *_with_json_suffix(
        f"{INSTITUTES}/<int:institute_id>/{TRAININGS}",
        api.institute_trainings,
        "institute-trainings",
    ),
    # The digest of what a webhook's partner should hold (the other webhook endpoints are
    # deliveries.urls); no .json twin, like them.
    path("webhooks/<int:webhook_id>/digest", api.webhook_digest, name="partner-webhook-digest"),
]
