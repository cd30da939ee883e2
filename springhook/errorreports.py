"""What an error report may show: Django's technical 500 page (DEBUG) and any error mail
someone wires up, with every secret of the settings and of the request masked.

Springhook mails no error reports itself (springhook/logs.py): an error is one log line.
This filter is the second line of defence, for the DEBUG page and for a deployment that
adds Django's `AdminEmailHandler` again.
"""

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import HttpRequest, QueryDict
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = SafeExceptionReporterFilter.cleansed_substitute
# Names of settings, META keys, cookies and parameters whose value is a secret: Django's
# own list, plus the credentials of a connection (CELERY_BROKER_URL, DATABASE_URL, an
# Authorization or X-API-Key header, the api_key parameter).
SECRET_NAMES = re.compile(
    r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|SESSION|CSRF|CREDENTIAL|BROKER"
    r"|DATABASE_URL|_URL$|^HTTP_X_API",
    flags=re.IGNORECASE,
)
# user:password@ in any URL, wherever it appears in a value.
URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@",
                          flags=re.IGNORECASE)


# A secret-named query parameter (`?api_key=…`, `&token=…`) wherever a URL appears in a
# value: the request's RAW_URI or REQUEST_URI, a Referer, a local variable.
QUERY_SECRET = re.compile(
    r"(?P<name>[?&;][^=&;#\s]*(?:API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE)[^=&;#\s]*=)"
    r"[^&;#\s]*",
    flags=re.IGNORECASE,
)


def passwords_masked(text: str) -> str:
    """`text` with the password of every URL in it, and the value of every secret-named
    query parameter, replaced by the mask."""
    text = URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:{MASK}@", text)
    return QUERY_SECRET.sub(lambda match: f"{match['name']}{MASK}", text)


def query_masked(query: str) -> str:
    """A query string with the value of every secret-named parameter masked."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(name, MASK if SECRET_NAMES.search(name) else value)
                      for name, value in pairs], safe="*")


class SecretsFilter(SafeExceptionReporterFilter):
    """Masks secret-named settings, META keys and GET/POST parameters, every URL's
    password in any value, and the query of the request's own URL; active with DEBUG on
    too (a DEBUG page shared in a ticket is still a leak)."""

    hidden_settings = SECRET_NAMES

    def is_active(self, request: HttpRequest | None) -> bool:
        return True

    def cleanse_setting(self, key, value):
        if key == "QUERY_STRING" and isinstance(value, str):
            return query_masked(value)
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return passwords_masked(cleansed)
        return cleansed

    def get_post_parameters(self, request: HttpRequest | None):
        if request is None:
            return {}
        return self.multivaluedict_masked(super().get_post_parameters(request))

    def get_cleansed_multivaluedict(self, request, multivaluedict):
        return self.multivaluedict_masked(
            super().get_cleansed_multivaluedict(request, multivaluedict))

    def cleanse_special_types(self, request, value):
        if isinstance(value, HttpRequest):
            # Its repr names the full path, query included.
            return f"<{type(value).__name__}: {value.method} {value.path!r}>"
        value = super().cleanse_special_types(request, value)
        if isinstance(value, str):
            return passwords_masked(value)
        return value

    @staticmethod
    def multivaluedict_masked(values):
        secret = [name for name in values if SECRET_NAMES.search(str(name))]
        if not secret:
            return values
        values = values.copy()
        for name in secret:
            values[name] = MASK
        return values


class SecretsReporter(ExceptionReporter):
    """Django's report, with the request's GET parameters and URL masked like the rest
    (Django shows both as they came)."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if self.request is not None:
            data["request_GET_items"] = self.filter.multivaluedict_masked(
                self.request.GET.copy() if isinstance(self.request.GET, QueryDict)
                else self.request.GET
            ).items()
            parts = urlsplit(data["request_insecure_uri"])
            data["request_insecure_uri"] = urlunsplit(
                parts._replace(query=query_masked(parts.query)))
        return data
