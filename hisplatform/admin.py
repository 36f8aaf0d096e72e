from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from hisplatform.models import ProjectMembership, ResearchProject, StaffProfile


class StaffProfileInline(admin.StackedInline[StaffProfile, User]):
    model = StaffProfile
    can_delete = False


class MembershipInline(admin.TabularInline[ProjectMembership, ResearchProject]):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin[User]):
    inlines = [StaffProfileInline]
    list_display = ("username", "first_name", "last_name", "role", "department", "is_active")
    list_select_related = ("profile",)

    @admin.display(description="role")
    def role(self, user: User) -> str:
        profile = getattr(user, "profile", None)
        return profile.get_role_display() if profile else "-"

    @admin.display(description="department")
    def department(self, user: User) -> str:
        profile = getattr(user, "profile", None)
        return profile.department if profile else "-"


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin[StaffProfile]):
    list_display = ("user", "role", "department", "staff_id")
    list_filter = ("role", "department")
    search_fields = ("user__username", "user__last_name")


@admin.register(ResearchProject)
class ResearchProjectAdmin(admin.ModelAdmin[ResearchProject]):
    list_display = ("code", "title", "approved_on", "expires_on")
    search_fields = ("code", "title")
    inlines = [MembershipInline]
