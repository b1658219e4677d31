"""Colour routing end to end: a real site daemon process watching a folder reports a file to the
live test server, which then walks it to the MAM in a real browser, by the right people.

The live server runs in a thread of this process with jobs inline (RQ's synchronous mode), so
the site-to-site copy and the MAM delivery run right after the request that starts them
commits. The daemon is `python -m sitedaemon` in its own process, talking HTTP/1.1 (kept-alive,
pipelined registrations, sendfile uploads) to the live server. Screenshots land in
var/screenshots/colour-*.png.
"""

import hashlib
import json
import os
import re

import pytest
from playwright.sync_api import expect

from pipeline_project.testing.browser import TIMEOUT_MS, screenshot
from sitedaemon.tests.process import Daemon, daemon_env, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORDS = {"engineer1": "engineer123", "colorist1": "colorist123", "admin1": "admin123"}
CLIP = "A001/A001_C003_0105.mov"


@pytest.fixture
def colour(settings, tmp_path, demo_data):
    """Site storage under a temporary sites root, MAM drop folder, jobs inline; the sites
    Tustin (where the file lands) and Nashville (where it is graded)."""
    from colour_routing import services
    from pipeline_project.accounts.models import User

    settings.COLOUR_SITES_ROOT = tmp_path / "sites"
    settings.MAM_TARGET = "folder"
    settings.MAM_DROP_FOLDER = tmp_path / "mam"
    settings.JOBS_INLINE = True
    admin = User.objects.get(username="admin1")
    tustin, key = services.site_create(by=admin, code="tustin", name="Tustin")
    services.site_create(by=admin, code="nashville", name="Nashville")
    return {"settings": settings, "tustin": tustin, "key": key}


@pytest.fixture
def daemon(colour, live_server, tmp_path):
    """A site daemon for Tustin watching tmp_path/ingest, started; killed at the end."""
    watch = tmp_path / "ingest"
    watch.mkdir()
    args = [
        "--site",
        "tustin",
        "--watch",
        str(watch),
        "--orchestrator",
        live_server.url,
        "--api-key",
        colour["key"],
        "--state-dir",
        str(tmp_path / "daemon-state"),
        "--settle",
        "0.5",
        "--heartbeat",
        "1",
        "--max-backoff",
        "1",
    ]
    process = Daemon(args, daemon_env(), tmp_path / "daemon.log")
    process.watch = watch
    yield process
    process.reap()


@pytest.fixture
def open_as(new_context, login):
    def open_as(username):
        context = new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return login(page, username, PASSWORDS[username])

    return open_as


def actions(page) -> list[str]:
    """The actions the file page offers this person, in order."""
    return page.locator("#actions [data-action]").evaluate_all(
        "els => els.map(e => e.dataset.action)"
    )


def audit_trail(page) -> list[tuple[str, str]]:
    """(actor, verb) of each entry of the file's audit trail, oldest first."""
    return [
        tuple(pair)
        for pair in page.get_by_test_id("audit-trail")
        .locator("li[data-verb]")
        .evaluate_all("els => els.map(e => [e.dataset.actor, e.dataset.verb])")
    ]


def do(page, button, state, shot):
    """Press an action's button and wait for the file page to show the state it leads to."""
    page.locator("#actions").get_by_role("button", name=button, exact=True).click()
    expect(page.locator(".messages")).to_contain_text(f": {state}.")
    expect(page.get_by_test_id("file-state")).to_have_text(state)
    screenshot(page, shot)


def drop(folder, relative, data):
    """Copy a file into the watch folder the way copy tools do: a hidden name, then renamed."""
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(data)
    os.rename(partial, target)


def test_a_dropped_file_is_reported_by_the_daemon_and_walked_to_the_mam(
    colour, daemon, open_as, site_url
):
    from colour_routing.models import MediaFile, Site, State

    wait_until(
        lambda: Site.objects.get(code="tustin").last_heartbeat_at, what="the first heartbeat"
    )
    data = os.urandom((3 << 20) + 4321)  # more than one read and one hashing chunk
    sha = hashlib.sha256(data).hexdigest()
    drop(daemon.watch, CLIP, data)

    # --- The daemon: registered with the hash of the bytes, then uploaded and verified.
    media = wait_until(
        lambda: MediaFile.objects.filter(path=CLIP, uploaded_at__isnull=False).first(),
        timeout=30,
        what=f"the daemon to register and upload {CLIP}",
    )
    assert (media.site.code, media.size, media.sha256, media.state) == (
        "tustin",
        len(data),
        sha,
        State.DETECTED,
    )
    assert media.mtime.timestamp() == pytest.approx((daemon.watch / CLIP).stat().st_mtime)
    assert media.metadata["extension"] == ".mov"
    storage = colour["settings"].COLOUR_SITES_ROOT
    assert (storage / "tustin" / CLIP).read_bytes() == data
    daemon.wait_log(f"uploaded {CLIP} 3.2 MB sha256={sha[:12]}…")
    assert colour["key"] not in daemon.log()

    # --- Engineer: sees the site online and the file in the queue; validates, queues for
    # Nashville, starts the transfer (verified copy, inline) and assigns a colorist.
    engineer = open_as("engineer1")
    nav = engineer.locator(".sidebar nav")
    nav.get_by_role("link", name="Sites", exact=True).click()
    tustin_row = engineer.locator("#site-tustin")
    expect(tustin_row).to_contain_text("online")
    expect(tustin_row).to_contain_text("0.1.0")
    expect(tustin_row).to_contain_text(str(daemon.watch))
    screenshot(engineer, "colour-01-sites-online")
    nav.get_by_role("link", name="File queue", exact=True).click()
    engineer.get_by_label("Search by path or hash").fill(sha[:10])
    expect(engineer).to_have_url(re.compile(f"q={sha[:10]}"))
    row = engineer.locator("#results tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Detected")
    screenshot(engineer, "colour-02-file-queue")
    row.get_by_role("link", name=CLIP).click()

    expect(engineer.get_by_role("heading", level=1)).to_contain_text("A001_C003_0105.mov")
    expect(engineer.get_by_test_id("file-state")).to_have_text("Detected")
    expect(engineer.get_by_test_id("daemon-sha")).to_have_text(sha)
    assert actions(engineer) == ["validate", "reject"]
    screenshot(engineer, "colour-03-detected")
    do(engineer, "Validate", "Validated", "colour-04-validated")
    assert actions(engineer) == ["queue", "reject"]
    engineer.get_by_label("Destination site").select_option(label="Nashville")
    do(engineer, "Queue for transfer", "Queued", "colour-05-queued")
    assert actions(engineer) == ["start_transfer", "reject"]
    do(engineer, "Start transfer", "Transferred", "colour-06-transferred")
    expect(engineer.get_by_test_id("verified-sha")).to_have_text(sha)
    assert (storage / "nashville/incoming/tustin" / CLIP).read_bytes() == data
    assert actions(engineer) == ["assign", "reject"]
    engineer.get_by_label("Colorist").select_option(label="Cole Grade")
    do(engineer, "Assign colorist", "Colorist assigned", "colour-07-assigned")
    assert "start" not in actions(engineer)  # only the assigned colorist starts the grade
    engineer.context.close()

    # --- Colorist: told of the assignment; starts grading, then delivers to the MAM (inline).
    colorist = open_as("colorist1")
    colorist.get_by_role("link", name="A001_C003_0105.mov is assigned to you for grading").click()
    expect(colorist.get_by_test_id("file-state")).to_have_text("Colorist assigned")
    assert actions(colorist) == ["start", "reject"]
    do(colorist, "Start grading", "In progress", "colour-08-in-progress")
    assert actions(colorist) == ["deliver", "reject"]
    do(colorist, "Deliver to MAM", "Delivered to MAM", "colour-09-delivered")
    expect(colorist.get_by_test_id("mam-attempts")).to_contain_text("#1 folder")
    assert actions(colorist) == []
    assert audit_trail(colorist) == [
        ("system", "colour.file.detected"),
        ("system", "colour.file.uploaded"),
        ("engineer1", "colour.file.validate"),
        ("engineer1", "colour.file.queue"),
        ("engineer1", "colour.file.start_transfer"),
        ("system", "colour.file.complete_transfer"),
        ("engineer1", "colour.file.assign"),
        ("colorist1", "colour.file.start"),
        ("colorist1", "colour.file.delivery_requested"),
        ("system", "colour.file.deliver"),
    ]
    colorist.context.close()

    # The MAM drop folder holds the graded copy and its sidecar with the daemon's hash.
    mam = colour["settings"].MAM_DROP_FOLDER
    assert (mam / "A001_C003_0105.mov").read_bytes() == data
    sidecar = json.loads((mam / "A001_C003_0105.mov.json").read_text())
    assert (sidecar["sha256"], sidecar["colorist"], sidecar["site"]) == (sha, "colorist1", "tustin")
    media.refresh_from_db()
    assert media.state == State.DELIVERED_TO_MAM
    assert MediaFile.objects.count() == 1, "the daemon reported the file once"
