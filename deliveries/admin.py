"""Delivery history for operators: read-only, filtered, with each attempt inline."""

import json

from django.contrib import admin
from django.utils.html import format_html

from deliveries.models import Delivery, DeliveryAttempt


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = [
        "number", "started_at", "duration", "accepted", "status_code", "error_kind",
        "error_message", "response_body",
    ]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "message_id", "webhook", "created_at", "state", "entry_count", "attempt_count",
        "last_status_code", "last_error_kind", "next_attempt_at",
    ]
    list_filter = ["state", "webhook", "last_error_kind"]
    list_select_related = ["webhook"]
    search_fields = ["=message_id", "webhook__name"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    fields = [
        "webhook", "message_id", "state", "entry_count", "attempt_count", "created_at",
        "last_attempt_at", "next_attempt_at", "delivered_at", "lease_expires_at",
        "last_status_code", "last_error_kind", "payload_pretty",
    ]
    readonly_fields = fields
    show_full_result_count = False  # COUNT(*) over a million rows on every page is slow

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("webhook")
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            return queryset.defer("payload")  # heavy, and not shown in the list
        return queryset

    @admin.display(description="payload")
    def payload_pretty(self, delivery: Delivery) -> str:
        pretty = json.dumps(json.loads(delivery.payload), indent=2, ensure_ascii=False)
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", pretty)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
