from django.contrib import admin, messages
from django.utils.html import format_html

from adminpolicy import LookupPolicyAdmin
from apikeys.models import ApiKey
from apikeys.services import api_key_create


@admin.register(ApiKey)
class ApiKeyAdmin(LookupPolicyAdmin):
    """API keys: the raw key is shown once, right after it is created; the hash never."""

    list_display = ["name", "prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active", "created_at", "last_used_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    autocomplete_fields = ["webhooks"]
    # key_hash is in no field list, so no admin page ever renders it.
    fields = ["name", "is_active", "webhooks", "prefix", "created_at", "last_used_at"]

    def get_fields(self, request, obj=None):
        # A new key gets a name and its webhooks: the service makes the key material.
        return ["name", "webhooks"] if obj is None else super().get_fields(request, obj)

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            name=obj.name, webhook_ids=[webhook.pk for webhook in form.cleaned_data["webhooks"]]
        )
        # The admin goes on with `obj` (history entry, its webhooks, redirect): make it the
        # saved key.
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
