"""Media routed between sites for grading: sites and their daemons, files and their states,
site-to-site transfer jobs, MAM delivery attempts."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

ONLINE_WITHIN = timedelta(seconds=90)


class Site(models.Model):
    code = models.SlugField(max_length=32, unique=True, help_text="e.g. tustin")
    name = models.CharField(max_length=100)
    storage_root = models.CharField(
        max_length=1024, help_text="Where this site's media lives, as the orchestrator mounts it."
    )
    api_key_prefix = models.CharField(max_length=12, blank=True, db_index=True)
    api_key_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the key.")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    daemon_version = models.CharField(max_length=32, blank=True)
    daemon_hostname = models.CharField(max_length=255, blank=True)
    daemon_watch = models.CharField(max_length=1024, blank=True)
    daemon_queued = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("colour_routing:sites") + f"#site-{self.code}"

    def is_online(self) -> bool:
        return (
            bool(self.last_heartbeat_at)
            and timezone.now() - self.last_heartbeat_at <= ONLINE_WITHIN
        )

    def has_key(self, key: str) -> bool:
        import hmac

        digest = hashlib.sha256(key.encode()).hexdigest()
        return bool(self.api_key_digest) and hmac.compare_digest(digest, self.api_key_digest)


class State(models.TextChoices):
    DETECTED = "detected", "Detected"
    VALIDATED = "validated", "Validated"
    QUEUED = "queued", "Queued"
    TRANSFERRING = "transferring", "Transferring"
    TRANSFERRED = "transferred", "Transferred"
    COLORIST_ASSIGNED = "colorist_assigned", "Colorist assigned"
    IN_PROGRESS = "in_progress", "In progress"
    DELIVERED_TO_MAM = "delivered_to_mam", "Delivered to MAM"
    ARCHIVED = "archived", "Archived"
    REJECTED = "rejected", "Rejected"


BEFORE_DELIVERY = (
    State.DETECTED,
    State.VALIDATED,
    State.QUEUED,
    State.TRANSFERRING,
    State.TRANSFERRED,
    State.COLORIST_ASSIGNED,
    State.IN_PROGRESS,
)
# action → (states it may start from, target state, roles that may do it). "assignee" is the
# colorist the file is assigned to. Admins may do anything; readonly nothing.
ALLOWED_TRANSITIONS = {
    "validate": ((State.DETECTED,), State.VALIDATED, ("engineer",)),
    "queue": ((State.VALIDATED,), State.QUEUED, ("engineer",)),
    # From transferring: again, once the transfer under way has failed (see _blocked()).
    "start_transfer": ((State.QUEUED, State.TRANSFERRING), State.TRANSFERRING, ("engineer",)),
    "complete_transfer": ((State.TRANSFERRING,), State.TRANSFERRED, ("engineer",)),
    "assign": (
        (State.TRANSFERRED, State.COLORIST_ASSIGNED),
        State.COLORIST_ASSIGNED,
        ("engineer",),
    ),
    "start": ((State.COLORIST_ASSIGNED,), State.IN_PROGRESS, ("assignee",)),
    "deliver": ((State.IN_PROGRESS,), State.DELIVERED_TO_MAM, ("assignee", "engineer")),
    "archive": ((State.DELIVERED_TO_MAM,), State.ARCHIVED, ("engineer",)),
    "reject": (BEFORE_DELIVERY, State.REJECTED, ("engineer", "assignee")),
}
ACTION_LABELS = {
    "validate": "Validate",
    "queue": "Queue for transfer",
    "start_transfer": "Start transfer",
    "complete_transfer": "Complete transfer",
    "assign": "Assign colorist",
    "start": "Start grading",
    "deliver": "Deliver to MAM",
    "archive": "Archive",
    "reject": "Reject",
}


class MediaFileQuerySet(models.QuerySet):
    def search(self, text):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(models.Q(path__icontains=text) | models.Q(sha256__istartswith=text))


class MediaFile(models.Model):
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="files", help_text="Where it was detected."
    )
    path = models.CharField(max_length=1024, help_text="Relative to the site's watch folder.")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    mtime = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=24, choices=State.choices, default=State.DETECTED, db_index=True
    )
    state_reason = models.TextField(blank=True)
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="duplicates"
    )
    stored_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text="Uploaded copy, relative to the origin site's storage.",
    )
    uploaded_at = models.DateTimeField(null=True, blank=True)
    destination = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="incoming_files"
    )
    destination_path = models.CharField(max_length=1024, blank=True)
    colorist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="graded_files",
    )
    mam_reference = models.CharField(max_length=1024, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MediaFileQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "path", "sha256"], name="one_registration_per_version"
            )
        ]

    def __str__(self):
        return f"{self.site.code}:{self.path}"

    def get_absolute_url(self):
        return reverse("colour_routing:file", args=[self.pk])

    def get_extension(self) -> str:
        return "." + self.filename.rsplit(".", 1)[-1].lower() if "." in self.filename else ""

    def is_uploaded(self) -> bool:
        return self.uploaded_at is not None

    def has_transfer_under_way(self) -> bool:
        """A transfer job that may still deliver: waiting to run or to retry, or running and
        heard from within JOB_STALE_AFTER (a worker that died leaves it running but silent)."""
        since = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER)
        heard_from = models.Q(run__updated_at__gte=since) | models.Q(run__started_at__gte=since)
        return self.transfer_jobs.filter(
            models.Q(status__in=TransferJob.WAITING)
            | (models.Q(status=TransferJob.Status.RUNNING) & heard_from)
        ).exists()


class TransferJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        SUCCEEDED = "succeeded", "Verified"
        FAILED = "failed", "Failed"

    WAITING = (Status.QUEUED, Status.RETRYING)
    UNFINISHED = (Status.QUEUED, Status.RUNNING, Status.RETRYING)

    file = models.ForeignKey(MediaFile, on_delete=models.CASCADE, related_name="transfer_jobs")
    source = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    destination = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    backend = models.CharField(max_length=16)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    verified_sha256 = models.CharField(max_length=64, blank=True)
    run = models.ForeignKey(
        "studio.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.file} {self.source.code}→{self.destination.code} ({self.status})"

    def get_percent(self) -> int:
        return min(100, int(self.bytes_done * 100 / self.bytes_total)) if self.bytes_total else 0


class Route(models.Model):
    """How files travel from one site to another. Without a route, mounted-path copy is used."""

    class Backend(models.TextChoices):
        MOUNTED = "mounted", "Mounted path (verified copy)"
        RSYNC = "rsync", "rsync"
        COMMAND = "command", "Command template (RaySync, Aspera, …)"

    source = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="routes_out")
    destination = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="routes_in")
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.MOUNTED)
    options = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"template": "raysync-cli … {src} {tmp}"}'
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "destination"], name="one_route_per_pair")
        ]

    def __str__(self):
        return f"{self.source.code}→{self.destination.code} via {self.backend}"


class MamAttempt(models.Model):
    """One try at delivering a file to the MAM (drop folder or webhook)."""

    file = models.ForeignKey(MediaFile, on_delete=models.CASCADE, related_name="mam_attempts")
    target = models.CharField(max_length=16)
    number = models.PositiveIntegerField()
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.file} MAM {self.target} #{self.number}: {'ok' if self.ok else 'failed'}"
