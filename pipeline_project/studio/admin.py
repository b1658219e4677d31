from django.contrib import admin

from .models import (
    Asset,
    AuditEvent,
    JobRun,
    Membership,
    Notification,
    Project,
    Sequence,
    Shot,
    Tag,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "status", "storage_quota_bytes", "shotgrid_id", "created_at")
    list_filter = ("status",)
    search_fields = ("code", "name")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role", "created_at")
    list_filter = ("role", "project")
    search_fields = ("user__username", "project__code")
    autocomplete_fields = ["user", "project"]


@admin.register(Sequence)
class SequenceAdmin(admin.ModelAdmin):
    list_display = ("code", "project", "shotgrid_id")
    list_filter = ("project",)
    search_fields = ("code", "description")


@admin.register(Shot)
class ShotAdmin(admin.ModelAdmin):
    list_display = ("code", "project", "sequence", "status", "frame_in", "frame_out", "shotgrid_id")
    list_filter = ("project", "status")
    search_fields = ("code", "description")
    list_select_related = ("project", "sequence")


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("code", "project", "asset_type", "shotgrid_id")
    list_filter = ("project", "asset_type", "tags")
    search_fields = ("code", "description")
    filter_horizontal = ("tags",)
    list_select_related = ("project",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only."""

    list_display = ("created_at", "actor_name", "verb", "target_repr", "ip_address")
    list_filter = ("verb", "target_type", "created_at")
    search_fields = ("actor_name", "verb", "target_repr", "target_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "recipient", "level", "title", "read_at", "emailed_at")
    list_filter = ("level", "created_at")
    search_fields = ("title", "body", "recipient__username")
    list_select_related = ("recipient",)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "name", "queue", "status", "done", "total", "unit", "attempts")
    list_filter = ("status", "queue")
    search_fields = ("name", "func", "message", "error")
    readonly_fields = [f.name for f in JobRun._meta.fields]
