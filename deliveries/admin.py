"""The operators' admin: delivery history (read-only, each attempt inline, searchable by
the object a batch carried), and on the webhook admin the health dashboard and the
actions retry now, send test event, send the whole catalogue, pause, resume and rotate
secret."""

import json

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince
from django.utils.translation import ngettext

from adminpolicy import LookupPolicyAdmin
from deliveries.charts import hourly_chart_svg
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import (
    attempts_per_day,
    attempts_per_hour,
    deliveries_carrying,
    dispatcher_last_tick,
    lag_annotations,
    object_query_parse,
    webhook_lag,
    webhooks_health,
)
from deliveries.services import (
    DeliveryError,
    delivery_test_send,
    delivery_tests_drop,
    webhook_resync,
    webhook_retry_now,
    webhook_scope_change,
)
from deliveries.templatetags.delivery_format import duration
from webhooks.admin import WebhookAdmin
from webhooks.models import ScopeObjects, Webhook, WebhookAction
from webhooks.services import (
    Actor,
    WebhookError,
    webhook_action_record,
    webhook_pause,
    webhook_resume,
    webhook_secret_rotate,
)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = [
        "number", "started_at", "duration_text", "accepted", "status_code", "error_kind",
        "error_message", "response_body", "response_bytes_replaced", "response_encoding",
    ]
    readonly_fields = fields
    ordering = ["number"]

    @admin.display(description="duration")
    def duration_text(self, attempt: DeliveryAttempt) -> str:
        return duration(attempt.duration)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LastErrorKindFilter(admin.SimpleListFilter):
    """The error kinds as the model defines them: Django's default filter would find the
    values with a SELECT DISTINCT over every delivery, slow on a large history."""

    title = "last error kind"
    parameter_name = "last_error_kind"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label in DeliveryAttempt.ErrorKind.choices if value]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(last_error_kind=self.value())
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(LookupPolicyAdmin):
    list_display = [
        "message_id", "webhook", "created_at", "state", "entry_count", "attempt_count",
        "last_status_code", "last_error_kind", "next_attempt_at", "is_test",
    ]
    # Dates as a filter rather than date_hierarchy, which lists the months and days with a
    # SELECT DISTINCT over the whole history on every page.
    list_filter = ["state", "webhook", LastErrorKindFilter, "is_test", "created_at"]
    list_select_related = ["webhook"]
    search_fields = ["=message_id", "webhook__name"]
    search_help_text = (
        'A message id, a webhook name, or an object and its id ("training 345345") to list '
        "every batch that carried it, to which webhook, and how it ended."
    )
    inlines = [DeliveryAttemptInline]
    fields = [
        "webhook", "message_id", "state", "is_test", "entry_count", "attempt_count",
        "created_at",
        "last_attempt_at", "next_attempt_at", "delivered_at", "lease_expires_at",
        "last_status_code", "last_error_kind", "payload_pretty",
    ]
    readonly_fields = fields
    show_full_result_count = False  # COUNT(*) over a million rows on every page is slow

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("webhook")
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            return queryset  # the body (heavy, and not shown in the list) stays unread
        return queryset.select_related("body")

    def get_search_results(self, request, queryset, search_term):
        wanted = object_query_parse(search_term)
        if wanted is None:
            return super().get_search_results(request, queryset, search_term)
        object_kind, object_id = wanted
        return deliveries_carrying(
            object_kind=object_kind, object_id=object_id, deliveries=queryset
        ), False

    @admin.display(description="payload")
    def payload_pretty(self, delivery: Delivery) -> str:
        pretty = json.dumps(json.loads(delivery.payload), indent=2, ensure_ascii=False)
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", pretty)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- Operators: the webhook admin with health, actions and buttons ----------------------
# `webhooks` imports none of the other apps, so the operator surface that calls delivery
# services extends its admin here and is registered in its place at the end of this module
# (the way projects extend django.contrib.auth's UserAdmin).

OPERATIONS = {
    # url segment: (label, permission needed)
    "retry": ("Retry now", "operate"),
    "send-test": ("Send test event", "operate"),
    "resync": ("Send the whole catalogue", "operate"),
    "pause": ("Pause", "operate"),
    "resume": ("Resume", "operate"),
    "rotate-secret": ("Rotate secret", "rotate"),
}


def _institutes(count: int) -> str:
    return ngettext("%(count)d institute", "%(count)d institutes", count) % {"count": count}


def _institute_model():
    # Looked up by name, not imported: the catalogue lies above this app. The institutes'
    # admin serves the autocomplete (by name or id), through the training's institute
    # field, a relation to them that the admin's autocomplete view accepts.
    return apps.get_model("catalog", "Institute")


class WebhookScopeForm(forms.ModelForm):
    """The webhook form with its scope. The scope is not written by the form: a change
    goes through webhook_scope_change, which sends the partner what entered and left."""

    scope_institute_choice = forms.ModelMultipleChoiceField(
        label="Institutes",
        queryset=_institute_model().objects.all(),
        required=False,
        help_text="The institutes whose changes this webhook receives, each with its "
        "trainings. Empty: the whole catalogue.",
        widget=AutocompleteSelectMultiple(
            apps.get_model("catalog", "Training")._meta.get_field("institute"), admin.site
        ),
    )
    scope_objects_choice = forms.ChoiceField(
        label="Objects", choices=ScopeObjects.choices, initial=ScopeObjects.ALL,
        required=False,
        help_text="Which kinds of object it receives (an institute's import and destroy "
        "go to both, as they stand for its trainings too).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["scope_institute_choice"].initial = self.instance.scope_institutes or []
            self.fields["scope_objects_choice"].initial = self.instance.scope_objects

    def scope(self) -> tuple[list[int] | None, str]:
        """The scope the form asks for: (institute ids or None, objects)."""
        chosen = self.cleaned_data.get("scope_institute_choice")
        institutes = sorted(institute.pk for institute in chosen) if chosen else None
        return institutes, self.cleaned_data.get("scope_objects_choice") or ScopeObjects.ALL


class WebhookAddForm(WebhookScopeForm):
    """The add form: a new webhook receives only changes made after it was created,
    unless it starts with the whole catalogue (what a new partner's mirror needs)."""

    send_catalogue = forms.BooleanField(
        label="Start with the whole catalogue",
        required=False,
        initial=True,
        help_text="Queue an import of every institute for this webhook alone, so that the "
        "partner's empty mirror fills up. Without it the webhook receives only changes "
        "made from now on.",
    )


class WebhookOperationsAdmin(WebhookAdmin):
    change_form_template = "admin/webhooks/webhook/change_form.html"
    form = WebhookScopeForm
    actions = [
        "retry_now", "send_test_event", "send_whole_catalogue", "pause", "resume",
        "rotate_secret",
    ]
    # The pending count is this app's data: webhooks' own admin knows nothing of it.
    list_display = [
        "name", "url", "is_active", "health", "scope", "pending_changes", "waiting", "lag",
        "last_success_at", "created_at",
    ]
    list_filter = [*WebhookAdmin.list_filter, "scope_objects"]

    def get_queryset(self, request):
        # Counted by the database in the list's one query: no query per row (but for a
        # scoped webhook, whose count reads just its scope's rows: see webhook_lag).
        return super().get_queryset(request).annotate(**lag_annotations())

    def _lag(self, webhook: Webhook):
        # Read once per row for the three columns (cached on the row, never on the admin,
        # which all requests share).
        if not hasattr(webhook, "_lag_health"):
            webhook._lag_health = webhook_lag(webhook)
        return webhook._lag_health

    @admin.display(description="pending", ordering="pending_count")
    def pending_changes(self, webhook: Webhook) -> int:
        return self._lag(webhook).pending_entries

    @admin.display(description="waiting")
    def waiting(self, webhook: Webhook) -> int:
        """Entries not accepted yet: pending ones and those of the open batch."""
        return self._lag(webhook).unaccepted_entries

    @admin.display(description="lag")
    def lag(self, webhook: Webhook) -> str:
        """The age of the oldest entry not accepted yet."""
        oldest = self._lag(webhook).oldest_unaccepted_at
        return timesince(oldest) if oldest else "–"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = WebhookAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            *super().get_fieldsets(request, obj),
            ("Scope", {"fields": ["scope_institute_choice", "scope_objects_choice"]}),
        ]
        if obj is None:
            return [*fieldsets, ("Start", {"fields": ["send_catalogue"]})]
        return fieldsets

    def save_model(self, request, obj: Webhook, form, change: bool) -> None:
        institutes, objects = form.scope()
        if not change:
            # A new webhook has nothing to correct: its scope is simply set.
            obj.scope_institutes, obj.scope_objects = institutes, objects
        super().save_model(request, obj, form, change)
        if change and (institutes, objects) != (obj.scope_institutes, obj.scope_objects):
            # In the change view's transaction: the scope and what it sends commit together.
            changed = webhook_scope_change(
                webhook_id=obj.pk, institute_ids=institutes, objects=objects
            )
            obj.refresh_from_db()
            self.message_user(
                request,
                f"Changed the scope of {obj}: queued an import of "
                f"{_institutes(changed.imported)} and a destroy of "
                f"{_institutes(changed.destroyed)}.",
                messages.SUCCESS,
            )
        if not change and form.cleaned_data.get("send_catalogue"):
            # In the add view's transaction: the webhook and its catalogue commit together.
            count = webhook_resync(webhook_id=obj.pk)
            self.message_user(
                request,
                f"Queued the whole catalogue for {obj}: {_institutes(count)}.",
                messages.SUCCESS,
            )
        if change and "url" in form.changed_data:
            # A test event asked for the old URL never goes to the new one, nor is an
            # answer from the new one shown as the old one's.
            dropped = delivery_tests_drop(webhook_id=obj.pk, reason="the URL changed")
            if dropped:
                self.message_user(
                    request,
                    f"The test event {', '.join(dropped)} waiting for the old URL was dropped: "
                    "send a new one to test the new URL.",
                    messages.WARNING,
                )

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.operate_webhook")

    def has_rotate_permission(self, request) -> bool:
        # A new secret is shown once to whoever rotates it: only to those who may read it.
        return request.user.has_perm("webhooks.change_webhook") and request.user.has_perm(
            "webhooks.view_webhook_secret"
        )

    def _url_name(self, view: str) -> str:
        # As ModelAdmin names its own views: admin:webhooks_webhook_change and the like.
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def _reverse(self, view: str, *args) -> str:
        return reverse(
            f"admin:{self._url_name(view)}", args=args, current_app=self.admin_site.name
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("health/", wrap(self.dashboard_view), name=self._url_name("dashboard")),
            path("<int:object_id>/health/", wrap(self.health_view),
                 name=self._url_name("health")),
            path("<int:object_id>/operate/<slug:operation>/", wrap(self.operate_view),
                 name=self._url_name("operate")),
            *super().get_urls(),
        ]

    # The five operations, each for a list action and a change-page button. ------------

    def _retry(self, request, webhook: Webhook) -> str:
        if webhook_retry_now(webhook_id=webhook.pk):
            return "Retry queued: the next attempt goes out at the dispatcher's next tick."
        return "Nothing to send: no open batch and no pending changes."

    def _send_test(self, request, webhook: Webhook) -> str:
        delivery_test_send(webhook_id=webhook.pk)
        return "Test event queued."

    def _resync(self, request, webhook: Webhook) -> str:
        count = webhook_resync(webhook_id=webhook.pk)
        return f"Queued the whole catalogue: {_institutes(count)}."

    def _pause(self, request, webhook: Webhook) -> str:
        webhook_pause(webhook_id=webhook.pk, paused_by=request.user.get_username())
        return "Paused: changes keep collecting and go out when resumed."

    def _resume(self, request, webhook: Webhook) -> str:
        webhook_resume(webhook_id=webhook.pk)
        return "Resumed: the backlog goes out now."

    def _operate(self, request, webhooks, operation: str) -> None:
        """Run the operation on each webhook, log it on each, and tell the user once per
        outcome: "Partner A: Paused: …" for one webhook, "3 webhooks: Paused: …" for more."""
        perform = {
            "retry": self._retry, "send-test": self._send_test, "resync": self._resync,
            "pause": self._pause, "resume": self._resume,
        }[operation]
        done: dict[str, list[Webhook]] = {}
        refused: list[str] = []
        for webhook in webhooks:
            try:
                outcome = perform(request, webhook)
            except (DeliveryError, WebhookError) as error:
                refused.append(f"{webhook}: {error}")
                continue
            self.log_change(request, webhook, f"{OPERATIONS[operation][0]}: {outcome}")
            webhook_action_record(webhook_id=webhook.pk, actor=_staff(request),
                                  action=operation.replace("-", "_"), outcome=outcome)
            done.setdefault(outcome, []).append(webhook)
        for outcome, webhooks_done in done.items():
            self.message_user(request, f"{_webhooks_text(webhooks_done)}: {outcome}",
                              messages.SUCCESS)
        if len(refused) == 1:
            self.message_user(request, refused[0], messages.WARNING)
        elif refused:
            self.message_user(
                request,
                ngettext("Refused for %(count)d webhook: %(reasons)s",
                         "Refused for %(count)d webhooks: %(reasons)s", len(refused))
                % {"count": len(refused), "reasons": "; ".join(refused)},
                messages.WARNING,
            )

    def _rotate(self, request, webhooks) -> TemplateResponse:
        rotated = []
        for webhook in webhooks:
            rotated.append(webhook_secret_rotate(webhook_id=webhook.pk))
            self.log_change(request, webhook, "Rotated the signing secret.")
            webhook_action_record(webhook_id=webhook.pk, actor=_staff(request),
                                  action="rotate_secret", outcome="Rotated the signing secret.")
        return self._page(
            request,
            "admin/webhooks/webhook/secret_rotated.html",
            {
                "title": "New signing secrets",
                "rotated": rotated,
            },
        )

    @admin.action(description="Retry now", permissions=["operate"])
    def retry_now(self, request, queryset):
        self._operate(request, queryset, "retry")

    @admin.action(description="Send a test event", permissions=["operate"])
    def send_test_event(self, request, queryset):
        self._operate(request, queryset, "send-test")

    @admin.action(description="Send the whole catalogue", permissions=["operate"])
    def send_whole_catalogue(self, request, queryset):
        self._operate(request, queryset, "resync")

    @admin.action(description="Pause", permissions=["operate"])
    def pause(self, request, queryset):
        self._operate(request, queryset, "pause")

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request, queryset):
        self._operate(request, queryset, "resume")

    @admin.action(description="Rotate the signing secret", permissions=["rotate"])
    def rotate_secret(self, request, queryset):
        return self._rotate(request, queryset)

    def operate_view(self, request, object_id: int, operation: str):
        """The change page's buttons: POST (with the CSRF token) only."""
        if operation not in OPERATIONS:
            raise Http404("no such operation")
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = (
            self.has_rotate_permission(request)
            if OPERATIONS[operation][1] == "rotate"
            else self.has_operate_permission(request)
        )
        webhook = self.get_object(request, str(object_id))
        if webhook is None:
            raise Http404("no such webhook")
        if not allowed or not self.has_view_permission(request, webhook):
            raise PermissionDenied
        if operation == "rotate-secret":
            return self._rotate(request, [webhook])
        self._operate(request, [webhook], operation)
        next_url = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = self._reverse("change", webhook.pk)
        return HttpResponseRedirect(next_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_operate": self.has_operate_permission(request),
            "can_rotate": self.has_rotate_permission(request),
            "operations": OPERATIONS,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # Health: the dashboard and one webhook over time. -----------------------------------

    def _page(self, request, template: str, context: dict) -> TemplateResponse:
        """An admin page of this site: its links resolve within this admin site."""
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "delivery_opts": Delivery._meta,
                **context,
            },
        )

    def _require_operate(self, request) -> None:
        if not self.has_operate_permission(request):
            raise PermissionDenied

    def dashboard_view(self, request):
        self._require_operate(request)
        now = timezone.now()
        rows = webhooks_health(now=now)
        return self._page(
            request,
            "admin/deliveries/dashboard.html",
            {
                "title": "Delivery health",
                "is_nav_sidebar_enabled": False,  # the table wants the page's width
                "now": now,
                "rows": [(row, row.oldest_pending_age(now)) for row in rows],
                "chart": hourly_chart_svg(attempts_per_hour(now=now, hours=48)),
                "last_tick": dispatcher_last_tick(),
            },
        )

    def health_view(self, request, object_id: int):
        self._require_operate(request)
        now = timezone.now()
        rows = webhooks_health(now=now, webhook_id=object_id)
        if not rows:
            raise Http404("no such webhook")
        row = rows[0]
        recent = list(
            Delivery.objects.filter(webhook_id=object_id)
            .order_by("-created_at", "-id")[:50]
        )
        return self._page(
            request,
            "admin/deliveries/webhook_health.html",
            {
                "original": row.webhook,
                "title": f"Delivery health: {row.webhook}",
                "is_nav_sidebar_enabled": False,
                "now": now,
                "row": row,
                "oldest_pending_age": row.oldest_pending_age(now),
                "scope": self.scope(row.webhook),
                "chart": hourly_chart_svg(
                    attempts_per_hour(now=now, hours=48, webhook_id=object_id)
                ),
                "days": attempts_per_day(now=now, days=7, webhook_id=object_id),
                "recent": recent,
                "can_operate": True,
                "operations": OPERATIONS,
            },
        )


def _staff(request) -> Actor:
    """The staff user behind an admin request, as webhook actions record them."""
    return Actor(channel=WebhookAction.Channel.ADMIN, label=request.user.get_username(),
                 staff_user_id=request.user.pk)


def _webhooks_text(webhooks: list[Webhook]) -> str:
    """"Partner A" for one webhook, "3 webhooks" for more."""
    if len(webhooks) == 1:
        return str(webhooks[0])
    return ngettext("%(count)d webhook", "%(count)d webhooks", len(webhooks)) % {
        "count": len(webhooks)
    }


admin.site.unregister(Webhook)
admin.site.register(Webhook, WebhookOperationsAdmin)
