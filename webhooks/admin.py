from django.contrib import admin
from django.db.models import Count

from webhooks.models import Webhook


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = [
        "name", "url", "is_active", "health", "pending_changes", "last_success_at",
        "created_at",
    ]
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

    def get_queryset(self, request):
        # Counted by the database in the list's one query: no query per row.
        return super().get_queryset(request).annotate(pending_count=Count("pending_entries"))

    @admin.display(description="pending", ordering="pending_count")
    def pending_changes(self, webhook: Webhook) -> int:
        return webhook.pending_count

    @admin.display(description="health")
    def health(self, webhook: Webhook) -> str:
        if not webhook.is_active:
            return f"paused{': ' + webhook.paused_reason if webhook.paused_reason else ''}"
        if webhook.failing_since:
            return f"failing since {webhook.failing_since:%Y-%m-%d %H:%M} UTC"
        return "healthy"

    @admin.display(description="signing secret")
    def signing_secret(self, webhook: Webhook) -> str:
        return webhook.secret
