"""The Trainings API's URLs, at the site root. Each answers with and without `.json`."""

from django.urls import URLPattern, path

from catalog import api


def _with_json_suffix(route: str, view, name: str) -> list[URLPattern]:
    # The suffix is accepted for partners whose clients add it; it names no other format,
    # and the URLs the API itself hands out never carry it.
    return [path(route, view, name=name), path(f"{route}.json", view, name=f"{name}-json")]


urlpatterns = [
    *_with_json_suffix("trainings", api.training_list, "training-list"),
    *_with_json_suffix("trainings/<int:training_id>", api.training_detail, "training-detail"),
    *_with_json_suffix("institutes", api.institute_list, "institute-list"),
    *_with_json_suffix("institutes/<int:institute_id>", api.institute_detail, "institute-detail"),
    *_with_json_suffix(
        "institutes/<int:institute_id>/trainings",
        api.institute_trainings,
        "institute-trainings",
    ),
]
