"""REST API of colour routing under /api/colour/: the same services as the pages. Site daemons
call with `X-API-Key`; people with their session or token."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    parser_classes,
    permission_classes,
)
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from pipeline_project.accounts.auth import ApiTokenAuthentication
from pipeline_project.errors import DomainError
from pipeline_project.studio.models import AuditEvent

from . import services
from .auth import IsSiteDaemon, SiteKeyAuthentication, SitePrincipal
from .models import MediaFile, Site, TransferJob
from .selectors import COLOUR_ROLES, audit_events, colour_users, file_events, stats


def _auth_classes():
    from rest_framework.authentication import SessionAuthentication

    return [SiteKeyAuthentication, ApiTokenAuthentication, SessionAuthentication]


class SiteSerializer(serializers.ModelSerializer):
    online = serializers.BooleanField(source="is_online")

    class Meta:
        model = Site
        fields = [
            "code",
            "name",
            "storage_root",
            "online",
            "last_heartbeat_at",
            "daemon_version",
            "daemon_hostname",
            "daemon_watch",
            "daemon_queued",
            "is_active",
        ]


class MediaFileSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    destination = serializers.SlugRelatedField(slug_field="code", read_only=True)
    colorist = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MediaFile
        fields = [
            "id",
            "site",
            "path",
            "filename",
            "size",
            "sha256",
            "mtime",
            "metadata",
            "state",
            "state_reason",
            "duplicate_of",
            "uploaded_at",
            "destination",
            "destination_path",
            "colorist",
            "mam_reference",
            "created_at",
            "updated_at",
        ]


class FileRegisterSerializer(serializers.Serializer):
    site = serializers.SlugField()
    path = serializers.CharField(max_length=1024)
    size = serializers.IntegerField(min_value=0)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="SHA-256 of the file, hex.")
    mtime = serializers.CharField(required=False, allow_blank=True)
    metadata = serializers.DictField(required=False, default=dict)


class FileRegisteredSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    created = serializers.BooleanField()
    upload_needed = serializers.BooleanField()


class FileActionSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="reject: required."
    )
    destination = serializers.SlugField(
        required=False, help_text="queue: the destination site's code."
    )
    colorist = serializers.CharField(required=False, help_text="assign: the colorist's username.")
    sha256 = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="complete-transfer: the destination's hash, if known.",
    )
    destination_path = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="complete-transfer: where the copy landed.",
    )


def _people_only(request):
    if isinstance(request.user, SitePrincipal):
        raise PermissionDenied(
            "Site daemon keys may only register and upload files and send heartbeats."
        )


def _can_read(request):
    _people_only(request)
    if not request.user.has_role(*COLOUR_ROLES):
        raise PermissionDenied(
            "Colour routing needs the colorist, engineer, read-only or admin role."
        )


@extend_schema(methods=["GET"], responses=MediaFileSerializer(many=True), tags=["colour"])
@extend_schema(
    methods=["POST"],
    request=FileRegisterSerializer,
    tags=["colour"],
    responses={201: FileRegisteredSerializer, 200: FileRegisteredSerializer},
    description="Register a file a site daemon found. Idempotent on site + path + sha256 (200 then).",
)
@api_view(["GET", "POST"])
@authentication_classes(_auth_classes())
@permission_classes([IsAuthenticated])
def files(request):
    if request.method == "GET":
        _can_read(request)
        return _file_list(request)
    data = FileRegisterSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    site = _site_for_report(request, data.validated_data["site"])
    mtime = data.validated_data.get("mtime")
    media, created = services.file_register(
        site=site,
        path=data.validated_data["path"],
        size=data.validated_data["size"],
        sha256=data.validated_data["sha256"],
        mtime=parse_datetime(mtime) if mtime else None,
        metadata=data.validated_data["metadata"],
    )
    body = {
        "id": media.pk,
        "state": media.state,
        "created": created,
        "upload_needed": not media.is_uploaded(),
    }
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _site_for_report(request, code) -> Site:
    if isinstance(request.user, SitePrincipal):
        if request.user.site.code != code:
            raise PermissionDenied(
                f"This key belongs to site {request.user.site.code}, not {code}."
            )
        return request.user.site
    if not request.user.has_role("engineer", "admin"):
        raise PermissionDenied("Registering files needs a site key, or the engineer or admin role.")
    return get_object_or_404(Site, code=code)


def _file_list(request):
    qs = MediaFile.objects.select_related("site", "destination", "colorist").search(
        request.query_params.get("search")
    )
    for field in ("state", "site__code", "colorist__username", "destination__code"):
        value = request.query_params.get(field.split("__")[0])
        if value:
            qs = qs.filter(**{field: value})
    from pipeline_project.api import Pagination

    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request)
    return paginator.get_paginated_response(MediaFileSerializer(page, many=True).data)


class RawBodyParser(BaseParser):
    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


@extend_schema(
    request={"application/octet-stream": {"type": "string", "format": "binary"}},
    tags=["colour"],
    responses={
        200: OpenApiResponse(description="Stored and verified"),
        400: OpenApiResponse(description="Bytes do not match the registered hash"),
    },
)
@api_view(["POST"])
@authentication_classes([SiteKeyAuthentication])
@permission_classes([IsSiteDaemon])
@parser_classes([RawBodyParser])
def upload(request, pk):
    """The file's bytes as the request body (streamed), with `X-Content-SHA256`."""
    media = get_object_or_404(MediaFile.objects.select_related("site"), pk=pk)
    if media.site_id != request.user.site.pk:
        raise PermissionDenied(f"File {pk} was reported by another site.")
    length = request.META.get("CONTENT_LENGTH")
    media = services.file_store_upload(
        media=media,
        stream=request._request,
        length=int(length) if length else None,
        sha256_header=request.headers.get("X-Content-SHA256", ""),
    )
    return Response({"id": media.pk, "stored": True, "sha256": media.sha256})


class FileDetail(generics.RetrieveAPIView):
    """One file with its state, hashes, destination and colorist."""

    serializer_class = MediaFileSerializer
    authentication_classes = _auth_classes()
    queryset = MediaFile.objects.select_related("site", "destination", "colorist")

    def check_permissions(self, request):
        super().check_permissions(request)
        _can_read(request)


def _action(name, call):
    @extend_schema(
        request=FileActionSerializer,
        responses={
            200: MediaFileSerializer,
            403: OpenApiResponse(description="Role"),
            409: OpenApiResponse(description="Wrong state"),
        },
        operation_id=f"colour_files_{name.replace('-', '_')}",
        tags=["colour"],
    )
    @api_view(["POST"])
    @authentication_classes(_auth_classes())
    def view(request, pk):
        _people_only(request)
        media = get_object_or_404(MediaFile, pk=pk)
        data = FileActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        media = call(media, request.user, data.validated_data)
        media = MediaFile.objects.select_related("site", "destination", "colorist").get(pk=media.pk)
        return Response(MediaFileSerializer(media).data)

    view.cls.__doc__ = f"{name.replace('-', ' ').capitalize()} (see the file state machine)."
    return view


def _destination(data):
    if not data.get("destination"):
        raise DomainError("Give the destination site's code.")
    return get_object_or_404(Site, code=data["destination"])


def _colorist(data):
    return get_object_or_404(get_user_model(), username=data.get("colorist") or "")


ACTIONS = {
    "validate": lambda f, u, d: services.file_validate(media=f, by=u),
    "queue": lambda f, u, d: services.file_queue(media=f, by=u, destination=_destination(d)),
    "start-transfer": lambda f, u, d: services.file_start_transfer(media=f, by=u),
    "complete-transfer": lambda f, u, d: services.file_complete_transfer(
        media=f, by=u, sha256=d["sha256"], destination_path=d["destination_path"]
    ),
    "assign": lambda f, u, d: services.file_assign(media=f, by=u, colorist=_colorist(d)),
    "start": lambda f, u, d: services.file_start(media=f, by=u),
    "deliver": lambda f, u, d: services.file_deliver(media=f, by=u),
    "archive": lambda f, u, d: services.file_archive(media=f, by=u),
    "reject": lambda f, u, d: services.file_reject(media=f, by=u, reason=d["reason"]),
}
action_views = {name: _action(name, call) for name, call in ACTIONS.items()}


class ColourAuditSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_name",
            "verb",
            "target_repr",
            "before",
            "after",
            "ip_address",
        ]


@extend_schema(responses=ColourAuditSerializer(many=True), tags=["colour"])
@api_view(["GET"])
@authentication_classes(_auth_classes())
def file_audit(request, pk):
    """The file's audit trail, oldest first."""
    _can_read(request)
    media = get_object_or_404(MediaFile, pk=pk)
    return Response(ColourAuditSerializer(file_events(media), many=True).data)


@extend_schema(responses={200: {"type": "object"}}, tags=["colour"])
@api_view(["GET"])
@authentication_classes(_auth_classes())
def stats_view(request):
    """Counts per state and per site, throughput per day, sites online."""
    _can_read(request)
    return Response(stats())


class SiteCreateSerializer(serializers.Serializer):
    code = serializers.SlugField(max_length=32)
    name = serializers.CharField(max_length=100)
    storage_root = serializers.CharField(
        max_length=1024, required=False, allow_blank=True, default=""
    )


@extend_schema(methods=["GET"], responses=SiteSerializer(many=True), tags=["colour"])
@extend_schema(
    methods=["POST"],
    request=SiteCreateSerializer,
    tags=["colour"],
    responses={201: OpenApiResponse(description="The site and its API key, shown once")},
)
@api_view(["GET", "POST"])
@authentication_classes(_auth_classes())
@permission_classes([IsAuthenticated])
def sites(request):
    """Sites and their daemons' status (online when a heartbeat came within 90 s)."""
    if request.method == "GET":
        _can_read(request)  # storage roots and daemon hosts are for people, not other sites
        return Response(SiteSerializer(Site.objects.all(), many=True).data)
    _people_only(request)
    data = SiteCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    site, key = services.site_create(by=request.user, **data.validated_data)
    return Response(SiteSerializer(site).data | {"api_key": key}, status=status.HTTP_201_CREATED)


class HeartbeatSerializer(serializers.Serializer):
    version = serializers.CharField(required=False, allow_blank=True, default="")
    hostname = serializers.CharField(required=False, allow_blank=True, default="")
    watch = serializers.CharField(required=False, allow_blank=True, default="")
    queued = serializers.IntegerField(required=False, min_value=0, default=0)


@extend_schema(request=HeartbeatSerializer, responses={200: {"type": "object"}}, tags=["colour"])
@api_view(["POST"])
@authentication_classes([SiteKeyAuthentication])
@permission_classes([IsSiteDaemon])
def heartbeat(request, code):
    """A site daemon says it is alive (every 30 s)."""
    if request.user.site.code != code:
        raise PermissionDenied(f"This key belongs to site {request.user.site.code}, not {code}.")
    data = HeartbeatSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    site = services.site_heartbeat(site=request.user.site, **data.validated_data)
    return Response({"site": site.code, "status": "online" if site.is_online() else "offline"})


@extend_schema(
    request=None,
    responses={200: OpenApiResponse(description="The new key, shown once")},
    tags=["colour"],
)
@api_view(["POST"])
@authentication_classes(_auth_classes())
def rotate_key(request, code):
    """Give the site a new API key (the old one stops working at once)."""
    _people_only(request)
    key = services.site_rotate_key(site=get_object_or_404(Site, code=code), by=request.user)
    return Response({"site": code, "api_key": key})


class ColourUserSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, min_length=8)
    role = serializers.ChoiceField(choices=["colorist", "engineer", "readonly", "admin"])
    email = serializers.EmailField(required=False, allow_blank=True, default="")


@extend_schema(
    methods=["GET"],
    responses={200: {"type": "array", "items": {"type": "object"}}},
    tags=["colour"],
)
@extend_schema(
    methods=["POST"],
    request=ColourUserSerializer,
    responses={201: {"type": "object"}},
    tags=["colour"],
)
@api_view(["GET", "POST"])
@authentication_classes(_auth_classes())
@permission_classes([IsAuthenticated])
def users(request):
    """People with a colour-routing role (everyone who may read sees them); admins create
    local accounts here."""
    _can_read(request)
    if request.method == "GET":
        return Response(
            [
                {
                    "username": u.username,
                    "name": u.get_display_name(),
                    "roles": sorted(u.get_role_names()),
                    "assigned": u.assigned,
                }
                for u in colour_users()
            ]
        )
    data = ColourUserSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    user = services.colour_user_create(by=request.user, **data.validated_data)
    return Response({"username": user.username, "roles": [data.validated_data["role"]]}, status=201)


@extend_schema(responses=ColourAuditSerializer(many=True), tags=["colour"])
@api_view(["GET"])
@authentication_classes(_auth_classes())
def audit(request):
    """Colour-routing audit events, newest first; `?verb=`, `?actor=`, `?file=` filter."""
    _can_read(request)
    qs = audit_events(
        verb=request.query_params.get("verb"),
        actor=request.query_params.get("actor"),
        file_id=request.query_params.get("file"),
    )
    from pipeline_project.api import Pagination

    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request)
    return paginator.get_paginated_response(ColourAuditSerializer(page, many=True).data)


class TransferJobSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="code", read_only=True)
    destination = serializers.SlugRelatedField(slug_field="code", read_only=True)
    percent = serializers.IntegerField(source="get_percent")

    class Meta:
        model = TransferJob
        fields = [
            "id",
            "file",
            "source",
            "destination",
            "backend",
            "status",
            "bytes_done",
            "bytes_total",
            "percent",
            "attempts",
            "error",
            "verified_sha256",
            "created_at",
            "finished_at",
        ]


class TransferJobList(generics.ListAPIView):
    """Site-to-site transfer jobs with progress."""

    serializer_class = TransferJobSerializer
    authentication_classes = _auth_classes()
    filterset_fields = ["status", "backend", "source__code", "destination__code"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TransferJob.objects.none()
        _can_read(self.request)
        return TransferJob.objects.select_related("source", "destination")
