"""What the project's admins share: which changelist lookups a request may use, and
which values they may compare.

Django's changelist turns every query parameter it does not know into a queryset filter,
and its default `ModelAdmin.lookup_allowed` accepts any lookup on the model's own fields.
A filter answers "does this row appear?", so a regex or a prefix on a field that a page
never shows (a signing secret, a key hash) tells its value one question at a time. The
admins here accept only the parameters their own list filters make (`webhook__id__exact`,
`created_at__gte`, not `webhook__id__regex`), and never one whose path reaches a field
that a model declares sensitive: both answer Django's 400 before a query runs.

A value from the query string is data: one that no database can compare (a NUL, which
PostgreSQL refuses; a time that core.timestamps refuses) gets the admin's usual answer to
a bad filter, a redirect to the unfiltered list with `?e=1`, never a 500.
"""

from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.filters import FieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP

from core.timestamps import TimestampError, timestamp_parse

# A search longer than this, or of more words, finds nothing: a person never types one,
# and the database would refuse the query it makes (SQLite caps a LIKE pattern and the depth
# of a condition; one OR group per word).
SEARCH_MAX_CHARACTERS = 200
SEARCH_MAX_WORDS = 10

# Fields of models outside the project that hold secrets (the project's own models say so
# in their `sensitive_fields`).
_SENSITIVE_ELSEWHERE = {("auth", "user"): frozenset({"password"})}


def sensitive_fields(model) -> frozenset[str]:
    """The names of the model's fields no lookup may touch."""
    declared = getattr(model, "sensitive_fields", ())
    return frozenset(declared) | _SENSITIVE_ELSEWHERE.get(
        (model._meta.app_label, model._meta.model_name), frozenset()
    )


def lookup_field_path(model, lookup: str) -> tuple[list[str], bool] | None:
    """The fields a lookup walks through, and whether any of them is sensitive.

    None when the lookup does not start with a field of the model (an annotation, `pk`, a
    typo): such a lookup names nothing a list filter offers.
    """
    path: list[str] = []
    touches_sensitive = False
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            break  # a transform or a lookup type (`regex`, `in`, `0`...)
        if part in sensitive_fields(model) or field.name in sensitive_fields(model):
            touches_sensitive = True
        path.append(field.name)
        if not field.is_relation or not getattr(field, "path_infos", None):
            break  # what follows applies to this field's value
        model = field.path_infos[-1].to_opts.model
    if not path:
        return None
    return path, touches_sensitive


class PolicyChangeList(ChangeList):
    """A changelist that applies only the parameters its list filters made, and only
    values every database can compare."""

    def get_filters(self, request):
        asked = self.get_filters_params()
        specs, has_filters, remaining, duplicates, active = super().get_filters(request)
        # Each list filter took its own parameters out; what is left, it did not make.
        # (date_hierarchy's own bounds are added to what is left, and were not asked.)
        unmade = sorted(set(remaining) & set(asked))
        if unmade:
            raise DisallowedModelAdminLookup(f"Filtering by {unmade[0]} not allowed")
        for key, values in asked.items():
            for value in values:
                refusal = _value_refusal(specs, key, value)
                if refusal is not None:
                    raise IncorrectLookupParameters(f"{key}: {refusal}")
        return specs, has_filters, remaining, duplicates, active


def _value_refusal(specs, key: str, value: str) -> str | None:
    """Why no database can compare `value` for the parameter `key`, or None."""
    if "\x00" in value:
        return "a NUL character"  # PostgreSQL cannot hold one in a query parameter
    for spec in specs:
        if (
            isinstance(spec, FieldListFilter)
            and isinstance(spec.field, models.DateTimeField)
            and key in spec.expected_parameters()
            and not key.endswith(f"{LOOKUP_SEP}isnull")
        ):
            try:
                timestamp_parse(value)
            except TimestampError as error:
                return str(error)
    return None


class LookupPolicyAdmin(admin.ModelAdmin):
    """A ModelAdmin whose changelist accepts only the parameters of its own list filters.

    A list filter on a relation ("webhook") makes `webhook__id__exact` and
    `webhook__isnull`; a date filter makes `created_at__gte` and `created_at__lt`; a
    SimpleListFilter its `parameter_name`. Anything else, any other lookup type on any
    field, directly or through a relation, is refused with Django's 400 before a query
    runs, so the answer never depends on a value the page does not show; a lookup whose
    path reaches a sensitive field is refused before the filters are even built.
    """

    def get_changelist(self, request, **kwargs):
        return PolicyChangeList

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # Which parameters the filters make is for PolicyChangeList, which sees them built.
        walked = lookup_field_path(self.model, lookup)
        return walked is None or not walked[1]

    def get_search_results(self, request, queryset, search_term):
        refusal = search_refusal(search_term)
        if refusal is not None:
            self.message_user(request, refusal, messages.WARNING)
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


def search_refusal(search_term: str) -> str | None:
    """Why the search cannot run (it then finds nothing), or None when it can."""
    if "\x00" in search_term:
        # PostgreSQL cannot hold a NUL character in a query parameter.
        return "The search contains a NUL character; nothing can match it."
    if len(search_term) > SEARCH_MAX_CHARACTERS or len(search_term.split()) > SEARCH_MAX_WORDS:
        return (
            f"Search for at most {SEARCH_MAX_CHARACTERS} characters and {SEARCH_MAX_WORDS} "
            "words."
        )
    return None

