from django.contrib import admin

from .models import MamAttempt, MediaFile, Route, Site, TransferJob


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "storage_root",
        "last_heartbeat_at",
        "daemon_version",
        "is_active",
    )
    search_fields = ("code", "name")
    readonly_fields = (
        "api_key_prefix",
        "api_key_digest",
        "last_heartbeat_at",
        "daemon_version",
        "daemon_hostname",
        "daemon_watch",
        "daemon_queued",
    )


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    """Read-only: the workflow runs through the pages and API, which audit every change."""

    list_display = (
        "id",
        "filename",
        "site",
        "state",
        "size",
        "colorist",
        "destination",
        "created_at",
    )
    list_filter = ("state", "site", "destination")
    search_fields = ("path", "sha256")
    list_select_related = ("site", "colorist", "destination")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(TransferJob)
class TransferJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "file",
        "source",
        "destination",
        "backend",
        "status",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "backend")


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("source", "destination", "backend")


@admin.register(MamAttempt)
class MamAttemptAdmin(admin.ModelAdmin):
    list_display = ("file", "target", "number", "ok", "status_code", "created_at")
    list_filter = ("target", "ok")
