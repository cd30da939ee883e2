"""The partners' webhook endpoints, at the site root next to the Trainings API."""

from django.urls import path

from deliveries import api

urlpatterns = [
    path("webhooks", api.webhook_list, name="partner-webhook-list"),
    path("webhooks/<int:webhook_id>", api.webhook_detail, name="partner-webhook-detail"),
    path("webhooks/<int:webhook_id>/deliveries", api.delivery_list,
         name="partner-delivery-list"),
    path("webhooks/<int:webhook_id>/deliveries/<str:message_id>", api.delivery_detail,
         name="partner-delivery-detail"),
    path("webhooks/<int:webhook_id>/resync", api.webhook_resync_view,
         name="partner-webhook-resync"),
    path("webhooks/<int:webhook_id>/scope", api.webhook_scope_view,
         name="partner-webhook-scope"),
    path("webhooks/<int:webhook_id>/test", api.webhook_test_view, name="partner-webhook-test"),
]
