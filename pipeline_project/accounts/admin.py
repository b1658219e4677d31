from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApiToken, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = (
        "username",
        "get_display_name",
        "email",
        "roles",
        "is_ldap_user",
        "is_active",
        "last_login",
    )
    list_filter = ("groups", "is_ldap_user", "is_active", "is_staff", "is_superuser")
    search_fields = ("username", "first_name", "last_name", "email", "display_name")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Studio", {"fields": ("display_name", "is_ldap_user")}),
    )

    @admin.display(description="Roles")
    def roles(self, obj):
        return ", ".join(obj.get_role_labels()) or "—"

    @admin.display(description="Name")
    def get_display_name(self, obj):
        return obj.get_display_name()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "token_key", "created", "expiry", "last_used")
    list_filter = ("created", "expiry")
    search_fields = ("name", "user__username", "token_key")
    readonly_fields = ("digest", "token_key", "user", "created", "last_used")
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False  # tokens are created by their owners, who alone see the secret
