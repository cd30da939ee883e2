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
    # What was sent, in order, and a replay of it (the digest is catalog.urls).
    path("webhooks/<int:webhook_id>/changes", api.webhook_changes,
         name="partner-webhook-changes"),
    path("webhooks/<int:webhook_id>/replay", api.webhook_replay_view,
         name="partner-webhook-replay"),
    # What a partner's people do in the portal, for the partner's code.
    path("webhooks/<int:webhook_id>/deliveries/<str:message_id>/retry",
         api.delivery_retry_view, name="partner-delivery-retry"),
    path("webhooks/<int:webhook_id>/pause", api.webhook_pause_view, name="partner-webhook-pause"),
    path("webhooks/<int:webhook_id>/resume", api.webhook_resume_view,
         name="partner-webhook-resume"),
    path("webhooks/<int:webhook_id>/rotate-secret", api.webhook_secret_rotate_view,
         name="partner-webhook-rotate-secret"),
    path("webhooks/<int:webhook_id>/url", api.webhook_url_change_view,
         name="partner-webhook-url"),
]
