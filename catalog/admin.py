from django.contrib import admin
from django.db.models import Count

from adminpolicy import LookupPolicyAdmin
from catalog.models import Institute, Training


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

