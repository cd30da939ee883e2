"""The staff accounts' admin under the project's lookup policy (adminpolicy): Django's own
User and Group admins accept a lookup on any of their fields, with any value."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from adminpolicy import LookupPolicyAdmin


class PolicyUserAdmin(LookupPolicyAdmin, UserAdmin):
    pass


class PolicyGroupAdmin(LookupPolicyAdmin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, PolicyUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, PolicyGroupAdmin)
