"""Seed 000's ten sample transfers, with real small files in a demo staging folder.

Requests up to the approval chain are made through the services, as people would; states after
approval (which depend on scans and copies) are recorded directly, with real hashes and real
verified copies, so every state can be opened. Idempotent: existing references are left alone.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from pipeline_project.fileops.copy import copy_verified
from pipeline_project.fileops.hashing import sha256_file
from pipeline_project.fileops.paths import confine
from pipeline_project.studio.audit import record
from pipeline_project.studio.models import Project

from . import services, staging
from .jobs import _root
from .models import STAGES, Approval, Status, Transfer, TransferFile

SAMPLES = [
    # reference, name, status, priority, artist, files
    (
        "TRF-00001",
        "Scene_042_Final_v3",
        Status.PENDING_SUPERVISOR,
        "normal",
        "artist1",
        ["scene_042_v3.usd", "scene_042_v3.abc"],
    ),
    (
        "TRF-00002",
        "Char_Dragon_Textures",
        Status.PENDING_TEAM_LEAD,
        "normal",
        "artist1",
        ["dragon_diffuse.exr", "dragon_normal.exr", "dragon_spec.exr"],
    ),
    (
        "TRF-00003",
        "Env_Forest_Lighting",
        Status.SCANNING,
        "high",
        "artist2",
        ["forest_key.hdr", "forest_fill.hdr"],
    ),
    (
        "TRF-00004",
        "Audio_Score_Ep3",
        Status.TRANSFERRED,
        "normal",
        "artist2",
        ["score_ep3_mix.wav"],
    ),
    (
        "TRF-00005",
        "Anim_Fight_Seq_v4",
        Status.REJECTED,
        "high",
        "artist1",
        ["fight_v4.ma", "fight_v4_cache.abc"],
    ),
    (
        "TRF-00006",
        "Comp_Explosion_Final",
        Status.PENDING_LINE_PRODUCER,
        "urgent",
        "artist2",
        ["explosion_comp.nk", "frames/explosion_1001.exr"],
    ),
    (
        "TRF-00007",
        "Env_City_Assets",
        Status.TRANSFERRED,
        "normal",
        "artist1",
        ["city_block_a.usd", "city_block_b.usd"],
    ),
    (
        "TRF-00008",
        "Char_Hero_Rig_v5",
        Status.PENDING_TEAM_LEAD,
        "high",
        "artist2",
        ["hero_rig_v5.ma"],
    ),
    (
        "TRF-00009",
        "Tex_Vehicle_Pack",
        Status.APPROVED,
        "normal",
        "artist1",
        ["cart_albedo.png", "cart_rough.png"],
    ),
    ("TRF-00010", "Light_Interior_v2", Status.DRAFT, "low", "artist2", ["interior_v2.hip"]),
]
APPROVERS = {
    "pending_team_lead": "teamlead1",
    "pending_supervisor": "supervisor1",
    "pending_line_producer": "producer1",
}
CHAIN = [status for status, _ in STAGES]


def _write_files(name, files) -> str:
    folder = f"demo/{name}"
    root = staging.staging_root()
    for index, filename in enumerate(files):
        path = confine(f"{folder}/{filename}", root)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            line = f"{name} {filename} demo content {index}\n".encode()
            path.write_bytes(line * (200 * (index + 1)))
    return folder


def seed(*, stdout=None):
    users = {u.username: u for u in get_user_model().objects.all()}
    if "artist1" not in users:
        return
    project = Project.objects.filter(code="dragon").first()
    for reference, name, status, priority, artist, files in SAMPLES:
        if Transfer.objects.filter(name=name).exists():
            continue
        with transaction.atomic():
            folder = _write_files(name, files)
            transfer = services.transfer_create(
                by=users[artist],
                name=name,
                priority=priority,
                project=project,
                paths=[folder],
                description=f"Demo request ({reference}).",
            )
            _advance(transfer, status, users)
        if stdout:
            stdout.write(f"  transfer {transfer.reference} {name} ({Status(status).label})")


def _advance(transfer, status, users):
    if status == Status.DRAFT:
        return
    services.transfer_submit(transfer=transfer, by=transfer.created_by)
    if status == Status.REJECTED:
        transfer.refresh_from_db()
        services.transfer_reject(
            transfer=transfer,
            by=users["teamlead1"],
            reason="Cache is missing frames 1040-1048; please re-export.",
        )
        return
    target = status if status in CHAIN else Status.APPROVED
    while True:
        transfer.refresh_from_db()
        if transfer.status == target or transfer.status not in CHAIN:
            break
        if transfer.status == Status.PENDING_LINE_PRODUCER:
            _record_final_approval(transfer, users["producer1"])
            break
        services.transfer_approve(
            transfer=transfer, by=users[APPROVERS[transfer.status]], comment="Looks good."
        )
    transfer.refresh_from_db()
    if status in (Status.SCANNING, Status.TRANSFERRED):
        _record_after_approval(transfer, status, users["datateam1"])


def _record_final_approval(transfer, producer):
    """The last approval without starting the scan job, so the demo keeps an Approved request."""
    Approval.objects.create(
        transfer=transfer,
        stage=transfer.status,
        round=transfer.round,
        decision=Approval.Decision.APPROVED,
        decided_by=producer,
        acting_as="line_producer",
    )
    before, transfer.status, transfer.approved_at = transfer.status, Status.APPROVED, timezone.now()
    transfer.save(update_fields=["status", "approved_at", "updated_at"])
    record(
        actor=producer,
        verb="transfer.approved",
        target=transfer,
        before={"status": before},
        after={"status": Status.APPROVED, "acting_as": "line_producer"},
    )


def _record_after_approval(transfer, status, data_team):
    staging_root = staging.staging_root()
    for file in transfer.files.all():
        file.sha256 = sha256_file(confine(file.path, staging_root))
        file.scan_status = TransferFile.ScanStatus.OVERRIDDEN
        file.scan_detail = "Demo data: not scanned by clamd"
        file.save()
    if status == Status.TRANSFERRED:
        production = _root("PRODUCTION_ROOT")
        for file in transfer.files.all():
            relative = f"{transfer.get_production_dir()}/{file.get_relative_path()}"
            target = confine(relative, production)
            if not target.exists():
                copy_verified(confine(file.path, staging_root), target, expected_sha256=file.sha256)
            file.verified_sha256, file.verified_at, file.production_path = (
                file.sha256,
                timezone.now(),
                relative,
            )
            file.save()
    before, transfer.status = transfer.status, status
    transfer.save(update_fields=["status", "updated_at"])
    record(
        actor=data_team,
        verb="transfer.demo_state",
        target=transfer,
        before={"status": before},
        after={"status": status, "note": "demo data"},
    )
