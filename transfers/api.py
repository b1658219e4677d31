"""REST API for transfers: the same services as the pages."""

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from pipeline_project.studio.models import Asset, Project, Shot

from . import services
from .models import Approval, Priority, Status, Transfer, TransferFile


class TransferFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = TransferFile
        fields = [
            "path",
            "size",
            "sha256",
            "scan_status",
            "scan_detail",
            "production_path",
            "verified_sha256",
            "verified_at",
            "quarantine_path",
        ]


class ApprovalSerializer(serializers.ModelSerializer):
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Approval
        fields = ["stage", "round", "decision", "decided_by", "acting_as", "comment", "created_at"]


class TransferSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    project = serializers.SlugRelatedField(slug_field="code", read_only=True)
    shot = serializers.StringRelatedField()
    asset = serializers.StringRelatedField()

    class Meta:
        model = Transfer
        fields = [
            "reference",
            "name",
            "description",
            "priority",
            "status",
            "status_reason",
            "project",
            "shot",
            "asset",
            "created_by",
            "round",
            "file_count",
            "total_bytes",
            "shotgrid_version_id",
            "created_at",
            "updated_at",
            "submitted_at",
            "approved_at",
            "delivered_at",
        ]


class TransferDetailSerializer(TransferSerializer):
    files = TransferFileSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta(TransferSerializer.Meta):
        fields = [*TransferSerializer.Meta.fields, "files", "approvals", "allowed_actions"]

    def get_allowed_actions(self, transfer) -> list[str]:
        return [
            action for action, _ in services.allowed_actions(transfer, self.context["request"].user)
        ]


class TransferCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)
    project = serializers.SlugRelatedField(
        slug_field="code", queryset=Project.objects.all(), required=False, allow_null=True
    )
    shot = serializers.PrimaryKeyRelatedField(
        queryset=Shot.objects.all(), required=False, allow_null=True
    )
    asset = serializers.PrimaryKeyRelatedField(
        queryset=Asset.objects.all(), required=False, allow_null=True
    )
    paths = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Files or folders, relative to the staging root.",
    )
    uploads = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    submit = serializers.BooleanField(default=False, help_text="Submit for approval at once.")


class TransferFilter(filters.FilterSet):
    mine = filters.BooleanFilter(method="filter_mine", help_text="Only my own requests.")
    awaiting_me = filters.BooleanFilter(
        method="filter_awaiting", help_text="Waiting for my approval."
    )

    class Meta:
        model = Transfer
        fields = ["status", "priority", "project__code"]

    def filter_mine(self, queryset, name, value):
        return queryset.filter(created_by=self.request.user) if value else queryset

    def filter_awaiting(self, queryset, name, value):
        return queryset & Transfer.objects.awaiting(self.request.user) if value else queryset


class TransferList(generics.ListCreateAPIView):
    """Transfer requests you may see; POST creates one from staging paths and/or uploads."""

    filterset_class = TransferFilter
    search_fields = ["reference", "name"]
    ordering_fields = ["created_at", "priority", "status", "reference"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Transfer.objects.none()
        return Transfer.objects.for_user(self.request.user).select_related(
            "created_by", "project", "shot", "asset"
        )

    def get_serializer_class(self):
        return TransferCreateSerializer if self.request.method == "POST" else TransferSerializer

    @extend_schema(request=TransferCreateSerializer, responses={201: TransferDetailSerializer})
    def post(self, request):
        data = TransferCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        transfer = services.transfer_create(by=request.user, **data.validated_data)
        return Response(
            TransferDetailSerializer(transfer, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class TransferEditSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    add_paths = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Files or folders to add, relative to the staging root.",
    )
    remove_paths = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Paths of listed files to drop from the request.",
    )
    uploads = serializers.ListField(child=serializers.FileField(), required=False, default=list)


class TransferDetail(generics.RetrieveAPIView):
    """One request with its files (manifest hashes, scan results), approvals and the actions you
    may take. PATCH edits a draft or rejected request (the artist), before (re)submitting it."""

    serializer_class = TransferDetailSerializer
    lookup_field = "reference"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Transfer.objects.none()
        return Transfer.objects.for_user(self.request.user).prefetch_related(
            "files", "approvals__decided_by"
        )

    @extend_schema(
        request=TransferEditSerializer,
        responses={
            200: TransferDetailSerializer,
            403: OpenApiResponse(description="Only the requesting artist may edit"),
            409: OpenApiResponse(description="Only drafts and rejected requests can be edited"),
        },
    )
    def patch(self, request, reference):
        transfer = self.get_object()
        data = TransferEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.transfer_edit(transfer=transfer, by=request.user, **data.validated_data)
        transfer = self.get_queryset().get(pk=transfer.pk)
        return Response(TransferDetailSerializer(transfer, context={"request": request}).data)


class ActionSerializer(serializers.Serializer):
    comment = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="approve: optional note."
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="reject / override-unscanned: required.",
    )
    expected_status = serializers.ChoiceField(
        choices=Status.choices,
        required=False,
        help_text="The status you acted on; a race then answers 409.",
    )


def _action(name, call, doc):
    class TransferAction(APIView):
        __doc__ = doc

        @extend_schema(
            request=ActionSerializer,
            operation_id=f"transfers_{name.replace('-', '_')}",
            responses={
                200: TransferDetailSerializer,
                403: OpenApiResponse(description="Your role may not do this"),
                409: OpenApiResponse(description="Not possible in the current state"),
            },
            tags=["transfers"],
        )
        def post(self, request, reference):
            transfer = get_object_or_404(
                Transfer.objects.for_user(request.user), reference=reference
            )
            data = ActionSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            if data.validated_data.get("expected_status"):
                transfer.status = data.validated_data["expected_status"]
            transfer = call(transfer, request.user, data.validated_data)
            transfer = Transfer.objects.prefetch_related("files", "approvals").get(pk=transfer.pk)
            return Response(TransferDetailSerializer(transfer, context={"request": request}).data)

    TransferAction.__name__ = f"Transfer_{name}"
    return TransferAction.as_view()


ACTIONS = {
    "submit": (
        lambda t, u, d: services.transfer_submit(transfer=t, by=u),
        "Submit a draft for approval (the artist).",
    ),
    "approve": (
        lambda t, u, d: services.transfer_approve(transfer=t, by=u, comment=d["comment"]),
        "Approve the stage the request waits at (team lead, supervisor, line producer).",
    ),
    "reject": (
        lambda t, u, d: services.transfer_reject(transfer=t, by=u, reason=d["reason"]),
        "Reject at the current stage; `reason` is required.",
    ),
    "resubmit": (
        lambda t, u, d: services.transfer_resubmit(transfer=t, by=u),
        "Resubmit a rejected request (the artist).",
    ),
    "cancel": (
        lambda t, u, d: services.transfer_cancel(transfer=t, by=u),
        "Cancel before approval (the artist).",
    ),
    "rescan": (
        lambda t, u, d: services.transfer_rescan(transfer=t, by=u),
        "Scan again (data team).",
    ),
    "override-unscanned": (
        lambda t, u, d: services.transfer_override_unscanned(transfer=t, by=u, reason=d["reason"]),
        "Release files clamd could not scan (data team); `reason` is required.",
    ),
    "start-transfer": (
        lambda t, u, d: services.transfer_start_transfer(transfer=t, by=u),
        "Start or re-run the verified copy to production (IT).",
    ),
    "retry-delivery": (
        lambda t, u, d: services.transfer_retry_delivery(transfer=t, by=u),
        "Run the delivery (ShotGrid Version, artist notified) again after it failed (IT).",
    ),
}
action_views = {name: _action(name, call, doc) for name, (call, doc) in ACTIONS.items()}
