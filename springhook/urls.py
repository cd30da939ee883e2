from django.contrib import admin
from django.urls import include, path

from apikeys import views as apikeys_views
from portal import api as portal_api
from springhook import views

urlpatterns = [
    path("admin/", admin.site.urls),
    # The partner portal: web pages for the people of one partner (its own templates).
    path("portal/", include("portal.urls")),
    path("portal-links", portal_api.portal_link_create_view, name="portal-link-create"),
    # A partner's own API key: replace it, or revoke it.
    path("api-key/rotate", apikeys_views.api_key_rotate_view, name="api-key-rotate"),
    path("api-key/revoke", apikeys_views.api_key_revoke_view, name="api-key-revoke"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    # The description of the Trainings API and the webhook (OpenAPI 3.1).
    path("openapi.json", views.openapi_json, name="openapi"),
    # The Trainings API at the site root: /trainings/<id>, /institutes/<id>[/trainings].
    path("", include("catalog.urls")),
    # The partners' own webhooks, deliveries, resync and test event: /webhooks[/<id>/...].
    path("", include("deliveries.urls")),
]
# Django's own error answers (400, 404, 500) stay the defaults: outside the admin,
# springhook.middleware.JsonErrorsMiddleware turns them into the API's JSON errors.
