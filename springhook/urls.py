from django.contrib import admin
from django.urls import include, path

from springhook import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    # The description of the Trainings API and the webhook (OpenAPI 3.1).
    path("openapi.json", views.openapi_json, name="openapi"),
    # The Trainings API at the site root: /trainings/<id>, /institutes/<id>[/trainings].
    path("", include("catalog.urls")),
]

# JSON for the API's paths, Django's usual pages for everything else.
handler400 = "catalog.api.bad_request_handler"
handler404 = "catalog.api.not_found_handler"
handler500 = "catalog.api.server_error_handler"
