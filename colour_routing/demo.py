"""Demo sites (Tustin, Nashville, Dallas) and sample media in every state. Idempotent.

Demo sites get fixed, documented API keys (`sk_<code>_demo-key-for-development-only`) so a
site daemon can be pointed at `make run` straight away; real sites get random keys.
"""

import hashlib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from pipeline_project.fileops.paths import confine
from pipeline_project.studio.audit import record

from . import services
from .models import MediaFile, Site, State, TransferJob

SITES = [("tustin", "Tustin"), ("nashville", "Nashville"), ("dallas", "Dallas")]
DEMO_KEY = "sk_{code}_demo-key-for-development-only"
SAMPLES = [
    # path at Tustin, state, destination, colorist
    ("A001/A001_C001_0101.mov", State.DETECTED, None, None),
    ("A001/A001_C002_0101.mov", State.VALIDATED, None, None),
    ("A002/A002_C005_0102.mxf", State.QUEUED, "nashville", None),
    ("A002/A002_C007_0102.mxf", State.TRANSFERRING, "nashville", None),
    ("A003/A003_C010_0103.mov", State.TRANSFERRED, "nashville", None),
    ("EDIT/reel1_v12.mov", State.COLORIST_ASSIGNED, "nashville", "colorist1"),
    ("EDIT/reel2_v08.mov", State.IN_PROGRESS, "dallas", "colorist2"),
    ("EDIT/reel3_v05.mov", State.DELIVERED_TO_MAM, "nashville", "colorist1"),
    ("EDIT/trailer_v02.mov", State.ARCHIVED, "dallas", "colorist2"),
    ("A004/A004_C001_0104.txt", State.REJECTED, None, None),
]


@transaction.atomic
def seed(*, stdout=None):
    sites = {}
    for code, name in SITES:
        site, created = Site.objects.get_or_create(
            code=code, defaults={"name": name, "storage_root": code}
        )
        key = DEMO_KEY.format(code=code)
        site.api_key_prefix, site.api_key_digest = (
            key[:12],
            hashlib.sha256(key.encode()).hexdigest(),
        )
        site.save()
        services.site_storage(site).mkdir(parents=True, exist_ok=True)
        sites[code] = site
        if stdout and created:
            stdout.write(f"  site {name} (daemon key {key})")
    users = {
        u.username: u
        for u in get_user_model().objects.filter(username__in=["colorist1", "colorist2"])
    }
    tustin = sites["tustin"]
    for index, (path, state, destination, colorist) in enumerate(SAMPLES):
        data = f"demo media {path}\n".encode() * (2000 + 500 * index)
        sha256 = hashlib.sha256(data).hexdigest()
        if MediaFile.objects.filter(site=tustin, path=path).exists():
            continue
        stored = confine(path, services.site_storage(tustin))
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(data)
        media, _ = services.file_register(
            site=tustin,
            path=path,
            size=len(data),
            sha256=sha256,
            metadata={"camera": "ALEXA 35", "demo": True},
        )
        media.stored_path, media.uploaded_at = path, timezone.now()
        media.state = state
        media.destination = sites.get(destination)
        media.colorist = users.get(colorist)
        if state == State.REJECTED:
            media.state_reason = "Validation failed: .txt is not an allowed media type."
        if state in (
            State.TRANSFERRED,
            State.COLORIST_ASSIGNED,
            State.IN_PROGRESS,
            State.DELIVERED_TO_MAM,
            State.ARCHIVED,
        ):
            media.destination_path = f"incoming/tustin/{path}"
            copy = confine(media.destination_path, services.site_storage(media.destination))
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
            TransferJob.objects.create(
                file=media,
                source=tustin,
                destination=media.destination,
                backend="mounted",
                status="succeeded",
                bytes_total=len(data),
                bytes_done=len(data),
                attempts=1,
                verified_sha256=sha256,
                finished_at=timezone.now(),
            )
        if state == State.TRANSFERRING:
            TransferJob.objects.create(
                file=media,
                source=tustin,
                destination=media.destination,
                backend="rsync",
                status="running",
                bytes_total=len(data),
                bytes_done=len(data) // 3,
                attempts=1,
            )
        media.save()
        MediaFile.objects.filter(pk=media.pk).update(
            updated_at=timezone.now() - timedelta(days=index % 4)
        )
        record(
            actor=None,
            verb="colour.file.demo_state",
            target=media,
            after={"state": state, "note": "demo data"},
        )
