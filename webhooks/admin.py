"""The webhook admin for configuration: name, URL, bundle delay, and the signing secret
for staff allowed to see it.

The admin site shows a subclass of it: deliveries.admin.WebhookOperationsAdmin adds the
operators' health pages, actions and buttons, which call delivery services, and registers
itself in this one's place (this app imports no other app, so that part lives there).
"""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from adminpolicy import LookupPolicyAdmin
from webhooks.models import Webhook, WebhookAction

# Actions shown on a webhook's page, newest first; older ones stay in the table.
RECENT_ACTIONS = 20


@admin.register(Webhook)
class WebhookAdmin(LookupPolicyAdmin):
    list_display = ["name", "url", "is_active", "health", "last_success_at", "created_at"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["name", "url", "description"]
    readonly_fields = ["signing_secret", "created_at", "updated_at", "recent_actions"]
    fieldsets = [
        (None, {"fields": ["name", "url", "description", "is_active"]}),
        ("Delivery", {"fields": ["bundle_delay"]}),
        ("Signing", {"fields": ["signing_secret"]}),
        ("Who did what", {"fields": ["recent_actions"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        # The secret exists only once saved, and only staff allowed to see it get the field
        # at all (it is never in a list view).
        if obj is None:
            return [fieldset for fieldset in fieldsets
                    if fieldset[0] not in ("Signing", "Who did what")]
        if not request.user.has_perm("webhooks.view_webhook_secret"):
            return [fieldset for fieldset in fieldsets if fieldset[0] != "Signing"]
        return fieldsets

    @admin.display(description="health")
    def health(self, webhook: Webhook) -> str:
        if not webhook.is_active:
            reason = webhook.paused_reason_for_staff()
            return f"paused{': ' + reason if reason else ''}"
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

    @admin.display(description="recent actions")
    def recent_actions(self, webhook: Webhook) -> str:
        """The last actions of staff and of the partner (portal, API): who, how, what, when."""
        actions = WebhookAction.objects.filter(webhook=webhook)[:RECENT_ACTIONS]
        if not actions:
            return "None yet."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{action.at:%Y-%m-%d %H:%M:%S} UTC", action.actor,
                 action.get_channel_display(), action.action, action.outcome)
                for action in actions
            ),
        )
        return format_html(
            '<table id="webhook-actions"><thead><tr><th>When</th><th>Who</th><th>Through</th>'
            "<th>Action</th><th>What it did</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


@admin.register(WebhookAction)
class WebhookActionAdmin(LookupPolicyAdmin):
    """Every webhook's actions, for staff who look across webhooks: what a partner (by
    key) or a staff user did, through what, when. Written by the services, never here."""

    list_display = ["at", "webhook", "actor", "channel", "action", "outcome"]
    list_filter = ["channel", "action", "at"]
    search_fields = ["webhook__name", "actor", "action"]
    list_select_related = ["webhook"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
