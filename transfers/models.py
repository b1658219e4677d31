"""Staging → production transfer requests: approval chain, scan manifest, verified copy."""

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum
from django.urls import reverse

from pipeline_project.studio.models import Asset, Project, Shot


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Status(models.TextChoices):
    DRAFT = "draft", "Uploaded"
    PENDING_TEAM_LEAD = "pending_team_lead", "Pending Team Lead"
    PENDING_SUPERVISOR = "pending_supervisor", "Pending Supervisor"
    PENDING_LINE_PRODUCER = "pending_line_producer", "Pending Line Producer"
    APPROVED = "approved", "Approved"
    SCANNING = "scanning", "Scanning"
    SCAN_ERROR = "scan_error", "Scan error"
    NEEDS_OVERRIDE = "needs_override", "Unscanned files"
    QUARANTINED = "quarantined", "Quarantined"
    SCANNED = "scanned", "Scanned clean"
    TRANSFERRING = "transferring", "Transferring"
    FAILED = "failed", "Transfer failed"
    TRANSFERRED = "transferred", "Transferred"
    DELIVERED = "delivered", "Delivered"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# Approval stages in order: the status a request waits in, the role that decides it.
STAGES = [
    (Status.PENDING_TEAM_LEAD, "team_lead"),
    (Status.PENDING_SUPERVISOR, "supervisor"),
    (Status.PENDING_LINE_PRODUCER, "line_producer"),
]
STAGE_ROLE = dict(STAGES)
NEXT_STATUS = {
    Status.PENDING_TEAM_LEAD: Status.PENDING_SUPERVISOR,
    Status.PENDING_SUPERVISOR: Status.PENDING_LINE_PRODUCER,
    Status.PENDING_LINE_PRODUCER: Status.APPROVED,
}
PENDING = tuple(STAGE_ROLE)

# action → (states it may start from, roles that may do it; "owner" = the requesting artist).
# Admins may act in place of any role; every such act is audited with the role they stood in for.
ALLOWED_TRANSITIONS = {
    "submit": ((Status.DRAFT,), ("owner",)),
    "approve": (PENDING, ("team_lead", "supervisor", "line_producer")),
    "reject": (PENDING, ("team_lead", "supervisor", "line_producer")),
    "resubmit": ((Status.REJECTED,), ("owner",)),
    "edit": ((Status.DRAFT, Status.REJECTED), ("owner",)),
    "cancel": ((Status.DRAFT, *PENDING, Status.REJECTED), ("owner",)),
    "rescan": (
        (
            Status.APPROVED,
            Status.SCANNING,
            Status.SCAN_ERROR,
            Status.NEEDS_OVERRIDE,
            Status.SCANNED,
        ),
        ("data_team",),
    ),
    "override_unscanned": ((Status.NEEDS_OVERRIDE,), ("data_team",)),
    # From Transferring too: a worker that died mid-copy leaves it there; a re-run skips
    # files already verified and never overwrites.
    "start_transfer": ((Status.SCANNED, Status.TRANSFERRING, Status.FAILED), ("it",)),
    # The files are verified in production but the ShotGrid Version could not be made.
    "retry_delivery": ((Status.TRANSFERRED,), ("it",)),
}
ACTION_LABELS = {
    "submit": "Submit for approval",
    "approve": "Approve",
    "reject": "Reject",
    "resubmit": "Resubmit",
    "edit": "Edit",
    "cancel": "Cancel request",
    "rescan": "Rescan",
    "override_unscanned": "Override unscanned files",
    "start_transfer": "Start transfer",
    "retry_delivery": "Retry delivery",
}


class TransferQuerySet(models.QuerySet):
    def for_user(self, user):
        """What a user may see: their own; everything for staff roles that work the chain."""
        staff = ("team_lead", "supervisor", "line_producer", "data_team", "it", "admin", "readonly")
        if user.has_role(*staff):
            return self.all()
        return self.filter(created_by=user)

    def awaiting(self, user):
        """Requests waiting at a stage whose role the user holds (admins: every stage)."""
        if user.has_role("admin"):
            return self.filter(status__in=PENDING)
        statuses = [status for status, role in STAGES if user.has_role(role)]
        return self.filter(status__in=statuses)

    def data_team_queue(self):
        return self.filter(
            status__in=[
                Status.APPROVED,
                Status.SCANNING,
                Status.SCAN_ERROR,
                Status.NEEDS_OVERRIDE,
                Status.QUARANTINED,
            ]
        )

    def it_queue(self):
        # Transferred: files verified in production, delivery (ShotGrid) pending or failed.
        return self.filter(
            status__in=[Status.SCANNED, Status.TRANSFERRING, Status.FAILED, Status.TRANSFERRED]
        )

    def search(self, text):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(Q(reference__icontains=text) | Q(name__icontains=text))


class Transfer(models.Model):
    reference = models.CharField(max_length=16, unique=True, editable=False, help_text="TRF-00001")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="transfers"
    )
    shot = models.ForeignKey(
        Shot, on_delete=models.SET_NULL, null=True, blank=True, related_name="transfers"
    )
    asset = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, blank=True, related_name="transfers"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transfers"
    )
    round = models.PositiveIntegerField(
        default=1, help_text="Approval round: goes up each time a rejected request is resubmitted."
    )
    status_reason = models.TextField(
        blank=True, help_text="Why it is in its current state (rejection, failure…)."
    )
    total_bytes = models.BigIntegerField(default=0)
    file_count = models.PositiveIntegerField(default=0)
    shotgrid_version_id = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = TransferQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.reference} {self.name}"

    def get_absolute_url(self):
        return reverse("transfers:detail", args=[self.reference])

    def get_upload_dir(self) -> str:
        """This request's own folder under STAGING_ROOT for browser uploads."""
        return f"uploads/{self.reference}"

    def get_production_dir(self) -> str:
        """Relative to PRODUCTION_ROOT."""
        return f"{self.project.code if self.project_id else 'unassigned'}/{self.reference}"

    def get_stage_role(self) -> str | None:
        return STAGE_ROLE.get(self.status)

    def is_pending(self) -> bool:
        return self.status in PENDING

    def is_owner(self, user) -> bool:
        return user.is_authenticated and user.pk == self.created_by_id

    def refresh_totals(self):
        totals = self.files.aggregate(n=models.Count("id"), size=Sum("size"))
        self.file_count, self.total_bytes = totals["n"], totals["size"] or 0


class TransferFile(models.Model):
    class ScanStatus(models.TextChoices):
        PENDING = "pending", "Not scanned yet"
        CLEAN = "clean", "Clean"
        INFECTED = "infected", "Infected"
        UNSCANNED = "unscanned", "Could not be scanned"
        OVERRIDDEN = "overridden", "Unscanned, released by data team"
        ERROR = "error", "Scan error"

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, help_text="Relative to STAGING_ROOT.")
    size = models.BigIntegerField()
    sha256 = models.CharField(
        max_length=64, blank=True, help_text="Manifest hash, taken at scan time."
    )
    scan_status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.PENDING
    )
    scan_detail = models.CharField(max_length=500, blank=True)
    scanned_at = models.DateTimeField(null=True, blank=True)
    production_path = models.CharField(
        max_length=1024, blank=True, help_text="Relative to PRODUCTION_ROOT."
    )
    verified_sha256 = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    quarantine_path = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "path"], name="unique_transfer_file")
        ]

    def __str__(self):
        return self.path

    def get_relative_path(self) -> str:
        """Path inside the request, as it will sit under the production folder."""
        upload_prefix = f"{self.transfer.get_upload_dir()}/"
        return self.path.removeprefix(upload_prefix)

    def is_verified(self) -> bool:
        return bool(self.verified_at) and self.verified_sha256 == self.sha256


class Approval(models.Model):
    """One decision at one stage of one approval round. The unique constraint is the last line
    of defence against two people approving the same stage at once."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="approvals")
    stage = models.CharField(max_length=24, choices=[(s.value, s.label) for s, _ in STAGES])
    round = models.PositiveIntegerField()
    decision = models.CharField(max_length=8, choices=Decision.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    acting_as = models.CharField(max_length=24, help_text="The role the decision was made in.")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["transfer", "stage", "round"], name="one_decision_per_stage_and_round"
            )
        ]

    def __str__(self):
        return f"{self.transfer.reference} {self.stage} round {self.round}: {self.decision}"
