from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from adminpolicy import LookupPolicyAdmin
from portal.api import portal_link_url
from portal.models import PortalLink
from portal.services import PortalLinkError, portal_link_check, portal_link_create


class PortalLinkForm(forms.ModelForm):
    def clean_api_key(self):
        api_key = self.cleaned_data["api_key"]
        try:
            portal_link_check(api_key_id=api_key.pk)
        except PortalLinkError as error:
            raise ValidationError(str(error)) from None
        return api_key


@admin.register(PortalLink)
class PortalLinkAdmin(LookupPolicyAdmin):
    """Sign-in links to the partner portal: staff make one for a key (the link is shown
    once, on the page that answers the add form) and see which were used."""

    form = PortalLinkForm
    list_display = ["api_key", "can_act", "created_by", "created_at", "expires_at", "used_at"]
    list_filter = ["can_act", "created_at", "used_at"]
    search_fields = ["api_key__name", "api_key__prefix", "created_by"]
    readonly_fields = ["created_by", "created_at", "expires_at", "used_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["api_key", "can_act"]
        return ["api_key", "can_act", *self.readonly_fields]

    def has_change_permission(self, request, obj=None) -> bool:
        # A link is used or not; nothing about it changes after it was made.
        return False

    def save_model(self, request, obj: PortalLink, form, change: bool) -> None:
        link, raw_token = portal_link_create(
            api_key_id=obj.api_key_id, can_act=obj.can_act,
            created_by=f"staff: {request.user.get_username()}",
        )
        for field in PortalLink._meta.concrete_fields:
            setattr(obj, field.attname, getattr(link, field.attname))
        obj._state.adding = False
        obj._state.db = link._state.db
        # Only on this object until response_add shows it: never in a message or the log.
        obj.raw_token = raw_token

    def response_add(self, request, obj: PortalLink, post_url_continue=None):
        raw_token = vars(obj).pop("raw_token", None)
        if raw_token is None:
            return super().response_add(request, obj, post_url_continue)
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, "admin/portal/portallink/link_created.html", {
            **self.admin_site.each_context(request),
            "title": "New portal sign-in link",
            "opts": self.opts,
            "link": obj,
            "url": portal_link_url(raw_token),
        })
        add_never_cache_headers(response)
        return response
