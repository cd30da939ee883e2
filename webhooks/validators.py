from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from webhooks.addresses import (
    MAX_URL_LENGTH,
    AddressRefused,
    HostUnresolvable,
    InvalidWebhookURL,
    host_resolve,
    url_validate,
)

URL_MAX_LENGTH = MAX_URL_LENGTH


def webhook_url_validator(value: str) -> None:
    """Refuse a webhook URL that is malformed or points into a private network.

    The spelling is checked without DNS first; then the host is resolved once and every
    address checked, so a name that points at 127.0.0.1 is refused when saved. The sender
    checks again at every attempt (DNS answers change).
    """
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_URLS
    try:
        url_validate(value, allow_private=allow_private)
        if not allow_private:
            parts = urlsplit(value)
            host_resolve(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                allow_private=False,
            )
    except HostUnresolvable as error:
        raise ValidationError(
            f"{_sentence(error)} Check the host name.", code="unresolvable"
        ) from None
    except AddressRefused as error:
        raise ValidationError(
            f"{_sentence(error)} Webhooks may only point at public addresses.", code="refused"
        ) from None
    except InvalidWebhookURL as error:
        raise ValidationError(_sentence(error), code="invalid") from None


def _sentence(error: Exception) -> str:
    text = str(error)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
