"""What the project's admins share: which changelist lookups a request may use.

Django's changelist turns every query parameter it does not know into a queryset filter,
and its default `ModelAdmin.lookup_allowed` accepts any lookup on the model's own fields.
A filter answers "does this row appear?", so a regex or a prefix on a field that a page
never shows (a signing secret, a key hash) tells its value one question at a time. The
admins here accept only the lookups their own list filters make, and never one whose path
reaches a field that a model declares sensitive.
"""

from django.contrib import admin
from django.contrib.admin.filters import SimpleListFilter
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP

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


class LookupPolicyAdmin(admin.ModelAdmin):
    """A ModelAdmin whose changelist accepts only the lookups of its own list filters.

    A list filter on a relation ("webhook") makes lookups on the related row's key
    (`webhook__id__exact`, `webhook__isnull`); a filter on a field makes lookups on that
    field (`created_at__gte`). Anything else, any lookup type on any other field, directly
    or through a relation, is refused with Django's 400 before a query runs, so the answer
    never depends on a value the page does not show.
    """

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        walked = lookup_field_path(self.model, lookup)
        if walked is not None and walked[1]:
            return False
        allowed = self._filter_lookups(request)
        if lookup in allowed["parameters"]:
            return True
        if walked is None:
            return False
        path = walked[0]
        if LOOKUP_SEP.join(path) in allowed["fields"]:
            return super().lookup_allowed(lookup, value, request)
        # A relation's filter names the related row by its key: webhook__id__exact.
        related = LOOKUP_SEP.join(path[:-1])
        if related in allowed["fields"] and _is_target_key(self.model, path):
            return super().lookup_allowed(lookup, value, request)
        return False

    def _filter_lookups(self, request) -> dict[str, set[str]]:
        fields: set[str] = set()
        parameters: set[str] = set()
        if self.date_hierarchy:
            fields.add(self.date_hierarchy)
        list_filter = self.get_list_filter(request) if request is not None else self.list_filter
        for item in list_filter:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                parameters.add(item.parameter_name)  # its queryset() decides what it does
            elif isinstance(item, (list, tuple)):
                fields.add(item[0])
            else:
                fields.add(item)
        return {"fields": fields, "parameters": parameters}


def _is_target_key(model, path: list[str]) -> bool:
    """Whether the last field of the path is the key the relation before it points at."""
    for name in path[:-1]:
        field = model._meta.get_field(name)
        model = field.path_infos[-1].to_opts.model
    return model._meta.get_field(path[-1]).primary_key
