from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from . import services
from .models import Asset, JobRun, Notification, Project, Sequence, Shot


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id",
            "code",
            "name",
            "description",
            "status",
            "storage_quota_bytes",
            "shotgrid_id",
            "created_at",
        ]


class SequenceSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Sequence
        fields = ["id", "project", "code", "description", "shotgrid_id"]


class ShotSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="code", read_only=True)
    sequence = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Shot
        fields = [
            "id",
            "project",
            "sequence",
            "code",
            "description",
            "status",
            "frame_in",
            "frame_out",
            "shotgrid_id",
        ]


class AssetSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="code", read_only=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Asset
        fields = [
            "id",
            "project",
            "code",
            "asset_type",
            "description",
            "metadata",
            "tags",
            "shotgrid_id",
        ]


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "level", "title", "body", "url", "created_at", "read_at"]


class JobRunSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(source="get_percent", allow_null=True)
    eta_seconds = serializers.IntegerField(source="get_eta_seconds", allow_null=True)

    class Meta:
        model = JobRun
        fields = [
            "id",
            "name",
            "queue",
            "status",
            "done",
            "total",
            "unit",
            "percent",
            "eta_seconds",
            "message",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ProjectFilter(filters.FilterSet):
    class Meta:
        model = Project
        fields = ["status", "code"]


class ProjectList(generics.ListAPIView):
    """Projects you are a member of (all of them for admins and read-only staff)."""

    serializer_class = ProjectSerializer
    filterset_class = ProjectFilter
    search_fields = ["code", "name"]
    ordering_fields = ["code", "name", "created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return Project.objects.visible_to(self.request.user)


class _ProjectScoped(generics.ListAPIView):
    search_fields = ["code", "description"]
    filterset_fields = ["project__code"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.serializer_class.Meta.model.objects.none()
        projects = Project.objects.visible_to(self.request.user)
        return self.serializer_class.Meta.model.objects.filter(project__in=projects).select_related(
            "project"
        )


class SequenceList(_ProjectScoped):
    serializer_class = SequenceSerializer


class ShotList(_ProjectScoped):
    serializer_class = ShotSerializer
    filterset_fields = ["project__code", "sequence__code", "status"]


class AssetList(_ProjectScoped):
    serializer_class = AssetSerializer
    filterset_fields = ["project__code", "asset_type"]

    def get_queryset(self):
        return super().get_queryset().prefetch_related("tags")


@extend_schema_view(
    get=extend_schema(parameters=[OpenApiParameter("unread", bool, description="Unread only.")])
)
class NotificationList(generics.ListAPIView):
    """Your notifications, newest first. `?unread=true` for unread only."""

    serializer_class = NotificationSerializer
    filterset_fields = {"read_at": ["isnull"], "level": ["exact"]}
    search_fields = ["title", "body"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        qs = self.request.user.notifications.all()
        if self.request.query_params.get("unread") in ("1", "true"):
            qs = qs.unread()
        return qs


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Omit for all."
    )


@extend_schema(
    request=MarkReadSerializer,
    responses={200: {"type": "object", "properties": {"marked": {"type": "integer"}}}},
    tags=["studio"],
)
@api_view(["POST"])
def notifications_mark_read(request):
    """Mark notifications read."""
    data = MarkReadSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    marked = services.notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
    return Response({"marked": marked})


class JobRunDetail(generics.RetrieveAPIView):
    """Progress of a background job: done/total in its unit, percent, ETA, status, error."""

    serializer_class = JobRunSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return JobRun.objects.none()
        return JobRun.objects.visible_to(self.request.user)
