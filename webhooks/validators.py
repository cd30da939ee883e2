from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

URL_MAX_LENGTH = 2000


def webhook_url_validator(value: str) -> None:
    """Refuse a webhook URL that is not plain http(s) with a host, or is too long."""
    if len(value) > URL_MAX_LENGTH:
        raise ValidationError(
            f"The URL is {len(value)} characters long; at most {URL_MAX_LENGTH} are allowed."
        )
    if value != value.strip() or any(char.isspace() for char in value):
        raise ValidationError("The URL must not contain spaces or line breaks.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise ValidationError("The URL must name a host, like https://partner.example/hooks.")
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return
