from django.db import models

from apikeys.models import ApiKey


class PortalLink(models.Model):
    """A single-use sign-in link to the partner portal for one API key's webhooks.

    Only the SHA-256 of the link's token is stored (portal.services.portal_link_create
    shows the link once). It works once, until `expires_at`; a read-only link opens a
    session that sees, an acting one a session that may also act.
    """

    # No admin lookup may touch the hash (adminpolicy): a filter would tell it bit by bit.
    sensitive_fields = ("token_hash",)

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="portal_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    can_act = models.BooleanField(
        "may act", default=False,
        help_text="Besides seeing: resend, test events, pause and resume, rotate the "
        "secret, change the URL.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # Who asked for it, in words: a staff user's name, or "the partner API".
    created_by = models.CharField(max_length=255)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        kind = "acting" if self.can_act else "read-only"
        return f"{kind} portal link for {self.api_key} ({self.created_at:%Y-%m-%d %H:%M})"
