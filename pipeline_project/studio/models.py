"""The shared nouns every domain app uses: projects, memberships, production entities, the audit
trail, notifications and the progress records of background jobs."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import reverse
from django.utils import timezone

DEFAULT_PROJECT_QUOTA = 10 * 10**12  # 10 TB


class ProjectQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Project.Status.ACTIVE)

    def visible_to(self, user):
        """Projects the user is a member of; admins and read-only staff see all."""
        if user.has_role("admin", "readonly"):
            return self.all()
        return self.filter(memberships__user=user).distinct()


class Project(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    code = models.SlugField(
        max_length=32, unique=True, help_text="Short code used in paths, e.g. 'dragon'."
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    storage_quota_bytes = models.BigIntegerField(
        default=DEFAULT_PROJECT_QUOTA,
        help_text="Storage the project may use, in bytes (default 10 TB).",
    )
    shotgrid_id = models.PositiveIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} — {self.name}"

    def get_absolute_url(self):
        return reverse("studio:project", args=[self.code])

    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def get_membership(self, user):
        return self.memberships.filter(user=user).first()


class Membership(models.Model):
    class Role(models.TextChoices):
        # Highest first; `rank` compares them.
        OWNER = "owner", "Owner"
        MANAGER = "manager", "Manager"
        LEAD = "lead", "Lead"
        CONTRIBUTOR = "contributor", "Contributor"
        REVIEWER = "reviewer", "Reviewer"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CONTRIBUTOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__code", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="unique_membership")
        ]

    def __str__(self):
        return f"{self.user} is {self.get_role_display()} on {self.project.code}"

    @staticmethod
    def rank(role: str) -> int:
        """Higher is more powerful: owner 6 … viewer 1."""
        values = Membership.Role.values
        return len(values) - values.index(role)

    def has_at_least(self, role: str) -> bool:
        return self.rank(self.role) >= self.rank(role)


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Sequence(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sequences")
    code = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    shotgrid_id = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["project__code", "code"]
        constraints = [
            models.UniqueConstraint(fields=["project", "code"], name="unique_sequence_code")
        ]

    def __str__(self):
        return f"{self.project.code}/{self.code}"


class Shot(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="shots")
    sequence = models.ForeignKey(
        Sequence, on_delete=models.CASCADE, related_name="shots", null=True, blank=True
    )
    code = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=32, blank=True, help_text="Production status, as ShotGrid has it."
    )
    frame_in = models.IntegerField(null=True, blank=True)
    frame_out = models.IntegerField(null=True, blank=True)
    shotgrid_id = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["project__code", "code"]
        constraints = [models.UniqueConstraint(fields=["project", "code"], name="unique_shot_code")]

    def __str__(self):
        return f"{self.project.code}/{self.code}"


class Asset(models.Model):
    class Type(models.TextChoices):
        CHARACTER = "character", "Character"
        PROP = "prop", "Prop"
        ENVIRONMENT = "environment", "Environment"
        VEHICLE = "vehicle", "Vehicle"
        FX = "fx", "FX"
        OTHER = "other", "Other"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assets")
    code = models.CharField(max_length=64)
    asset_type = models.CharField(
        max_length=16, choices=Type.choices, default=Type.OTHER, db_index=True
    )
    description = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="assets")
    shotgrid_id = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["project__code", "code"]
        constraints = [
            models.UniqueConstraint(fields=["project", "code"], name="unique_asset_code")
        ]

    def __str__(self):
        return f"{self.project.code}/{self.code}"


class AuditEvent(models.Model):
    """One row per change, written by the service in the same transaction. Append-only: on
    PostgreSQL a trigger rejects UPDATE and DELETE (migration 0002)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="Kept as it was at the time."
    )
    verb = models.CharField(
        max_length=64, db_index=True, help_text="What happened, e.g. 'transfer.approved'."
    )
    target_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.verb} {self.target_repr}"


class NotificationQuerySet(models.QuerySet):
    def unread(self):
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    class Level(models.TextChoices):
        INFO = "info", "Info"
        SUCCESS = "success", "Success"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Where to act on it.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.recipient}: {self.title}"

    def is_read(self) -> bool:
        return self.read_at is not None


class JobRunQuerySet(models.QuerySet):
    STAFF_ROLES = ("admin", "it", "data_team", "engineer")

    def visible_to(self, user):
        """Staff follow every job; everyone else the jobs they started."""
        if user.has_role(*self.STAFF_ROLES):
            return self.all()
        return self.filter(created_by=user)

    def running(self):
        return self.filter(status__in=[JobRun.Status.QUEUED, JobRun.Status.RUNNING])

    def under_way_for(self, target, func: str):
        """Runs of `func` on `target` that may still do their work: queued, waiting to retry,
        or running and alive (see alive_for)."""
        waiting = self.filter(
            target_type=ContentType.objects.get_for_model(target),
            target_id=str(target.pk),
            func=func,
            status__in=[JobRun.Status.QUEUED, JobRun.Status.RETRYING],
        )
        return waiting | self.alive_for(target, func)

    def alive_for(self, target, func: str):
        """Runs of `func` on `target` that are working now: running, with progress written within
        JOB_STALE_AFTER seconds (a worker that died leaves its run 'running' but silent)."""
        since = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER)
        return self.filter(
            target_type=ContentType.objects.get_for_model(target),
            target_id=str(target.pk),
            func=func,
            status=JobRun.Status.RUNNING,
            updated_at__gte=since,
        )


class JobRun(models.Model):
    """The progress of one background job, polled by pages. Written by `pipeline_project.jobs`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, help_text="What the job does, for people.")
    func = models.CharField(max_length=200)
    queue = models.CharField(max_length=32)
    rq_job_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=16, default="items", help_text="bytes, files or items.")
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.name} ({self.get_status_display()})"

    def get_absolute_url(self):
        return reverse("studio:job", args=[self.pk])

    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    def get_percent(self) -> int | None:
        if not self.total:
            return 100 if self.status == self.Status.SUCCEEDED else None
        return min(100, int(self.done * 100 / self.total))

    def get_eta_seconds(self) -> int | None:
        """Remaining seconds at the average rate so far, or None when it cannot be told."""
        if self.is_finished() or not (self.total and self.done and self.started_at):
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        if elapsed <= 0:
            return None
        return int((self.total - self.done) / (self.done / elapsed))
