from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from adminpolicy import LookupPolicyAdmin
from catalog.models import ApiKey, Institute, Training
from catalog.services import api_key_create


@admin.register(Institute)
class InstituteAdmin(LookupPolicyAdmin):
    list_display = ["name", "id", "training_count", "updated_at"]
    search_fields = ["name", "=id"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(training_count=Count("trainings"))

    @admin.display(description="trainings", ordering="training_count")
    def training_count(self, institute: Institute) -> int:
        return institute.training_count


@admin.register(Training)
class TrainingAdmin(LookupPolicyAdmin):
    list_display = ["name", "reference", "institute", "price", "updated_at"]
    list_filter = ["institute", "updated_at"]
    list_select_related = ["institute"]
    search_fields = ["name", "reference", "=id", "institute__name"]
    autocomplete_fields = ["institute"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["institute", "reference", "name"]}),
        ("Details", {"fields": ["description", "price"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]


@admin.register(ApiKey)
class ApiKeyAdmin(LookupPolicyAdmin):
    """API keys: the raw key is shown once, right after it is created; the hash never."""

    list_display = ["name", "prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active", "created_at", "last_used_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    # key_hash is in no field list, so no admin page ever renders it.
    fields = ["name", "is_active", "prefix", "created_at", "last_used_at"]

    def get_fields(self, request, obj=None):
        # A new key gets a name and nothing else: the service makes the key material.
        return ["name"] if obj is None else super().get_fields(request, obj)

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(name=obj.name)
        # The admin goes on with `obj` (history entry, redirect): make it the saved key.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        obj._state.db = api_key._state.db
        # The message is the one place the raw key appears: it rides to the next page in
        # the message storage (a signed cookie, or the session if too big) and is removed
        # as soon as that page has shown it.
        self.message_user(
            request,
            format_html(
                "The API key for “{}” is <code>{}</code>. Copy it now: it is not stored and "
                "will not be shown again.",
                api_key.name,
                raw_key,
            ),
            messages.WARNING,
        )
