from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from adminpolicy import LookupPolicyAdmin
from apikeys.models import ApiKey
from apikeys.services import api_key_create


@admin.register(ApiKey)
class ApiKeyAdmin(LookupPolicyAdmin):
    """API keys: the raw key is shown once, on the page that answers the add form; the hash
    never."""

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
        # The raw key lives only on this object until response_add shows it; it is never
        # put in a message (the messages cookie is signed, not encrypted, and the session
        # is stored server side), so it exists nowhere once that page is sent.
        obj.raw_key = raw_key

    def response_add(self, request, obj: ApiKey, post_url_continue=None):
        """The page that answers the add form shows the new key, once, in its own body."""
        raw_key = vars(obj).pop("raw_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        request.current_app = self.admin_site.name
        response = TemplateResponse(
            request,
            "admin/apikeys/apikey/key_created.html",
            {
                **self.admin_site.each_context(request),
                "title": "New API key",
                "opts": self.opts,
                "api_key": obj,
                "raw_key": raw_key,
            },
        )
        # Nobody on the way (a proxy, the browser's cache or back button) keeps the page.
        add_never_cache_headers(response)
        return response
