"""The webhook admin for configuration: name, URL, bundle delay, and the signing secret
for staff allowed to see it.

The admin site shows a subclass of it: deliveries.admin.WebhookOperationsAdmin adds the
operators' health pages, actions and buttons, which call delivery services, and registers
itself in this one's place (this app imports no other app, so that part lives there).
"""

from django.contrib import admin

from adminpolicy import LookupPolicyAdmin
from webhooks.models import Webhook


@admin.register(Webhook)
class WebhookAdmin(LookupPolicyAdmin):
    list_display = ["name", "url", "is_active", "health", "last_success_at", "created_at"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["name", "url", "description"]
    readonly_fields = ["signing_secret", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "url", "description", "is_active"]}),
        ("Delivery", {"fields": ["bundle_delay"]}),
        ("Signing", {"fields": ["signing_secret"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        # The secret exists only once saved, and only staff allowed to see it get the field
        # at all (it is never in a list view).
        if obj is None or not request.user.has_perm("webhooks.view_webhook_secret"):
            return [fieldset for fieldset in fieldsets if fieldset[0] != "Signing"]
        return fieldsets

    @admin.display(description="health")
    def health(self, webhook: Webhook) -> str:
        if not webhook.is_active:
            return f"paused{': ' + webhook.paused_reason if webhook.paused_reason else ''}"
        if webhook.failing_since:
            return f"failing since {webhook.failing_since:%Y-%m-%d %H:%M} UTC"
        return "healthy"

    @admin.display(description="scope")
    def scope(self, webhook: Webhook) -> str:
        institutes = webhook.scope_institutes
        where = "whole catalogue" if institutes is None else (
            f"{len(institutes)} institute{'' if len(institutes) == 1 else 's'}"
        )
        return f"{where}, {webhook.get_scope_objects_display()}"

    @admin.display(description="signing secret")
    def signing_secret(self, webhook: Webhook) -> str:
        return webhook.secret
