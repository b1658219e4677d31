from django.contrib import admin

from .models import Approval, Transfer, TransferFile


class TransferFileInline(admin.TabularInline):
    model = TransferFile
    extra = 0
    fields = (
        "path",
        "size",
        "sha256",
        "scan_status",
        "scan_detail",
        "verified_at",
        "quarantine_path",
    )
    readonly_fields = fields
    can_delete = False


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    readonly_fields = (
        "stage",
        "round",
        "decision",
        "decided_by",
        "acting_as",
        "comment",
        "created_at",
    )
    can_delete = False


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    """Read-mostly: workflow changes go through the pages and API, which audit them."""

    list_display = (
        "reference",
        "name",
        "status",
        "priority",
        "created_by",
        "project",
        "file_count",
        "total_bytes",
        "created_at",
    )
    list_filter = ("status", "priority", "project")
    search_fields = ("reference", "name", "created_by__username")
    readonly_fields = (
        "reference",
        "status",
        "round",
        "status_reason",
        "total_bytes",
        "file_count",
        "shotgrid_version_id",
        "submitted_at",
        "approved_at",
        "delivered_at",
        "created_by",
    )
    list_select_related = ("created_by", "project")
    inlines = [TransferFileInline, ApprovalInline]

    def has_add_permission(self, request):
        return False


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = (
        "transfer",
        "stage",
        "round",
        "decision",
        "decided_by",
        "acting_as",
        "created_at",
    )
    list_filter = ("stage", "decision")
    search_fields = ("transfer__reference", "decided_by__username", "comment")

    def has_change_permission(self, request, obj=None):
        return False
