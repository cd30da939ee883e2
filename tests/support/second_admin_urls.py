"""A URLconf with the project's admin at /admin/ and a second admin site at /ops/, both
with the webhook and delivery admins: links and redirects must stay within their site."""

from django.contrib import admin
from django.urls import include, path

from deliveries.admin import DeliveryAdmin, WebhookOperationsAdmin
from deliveries.models import Delivery
from webhooks.models import Webhook

ops_site = admin.AdminSite(name="ops")
ops_site.register(Webhook, WebhookOperationsAdmin)
ops_site.register(Delivery, DeliveryAdmin)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ops/", ops_site.urls),
    path("", include("catalog.urls")),
]
