"""Transfers in a real browser, each person in a browser session of their own.

The live server runs in a thread of this process with jobs inline (RQ's synchronous mode), so the
scan (against a real clamd), the verified copy and the delivery run right after the request that
starts them commits. AUTO_TRANSFER is off, so a clean scan stops at "Scanned clean" and IT starts
the copy — every role of the chain gets a step: artist, team lead, supervisor, line producer, data
team, IT. Screenshots land in var/screenshots/transfers-*.png.
"""

import hashlib
import re

import pytest
from playwright.sync_api import expect

from pipeline_project.testing.browser import TIMEOUT_MS, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORDS = {
    "artist1": "artist123",
    "teamlead1": "teamlead123",
    "supervisor1": "super123",
    "producer1": "producer123",
    "datateam1": "data123",
    "it1": "it123",
}
STAGED = {
    "sq010/sh0010/comp_v3.nk": b"nuke script " * 500,
    "sq010/sh0010/renders/comp_v3.1001.exr": b"\x76\x2f\x31\x01" + b"pixels" * 4000,
    "sq010/sh0010/renders/comp_v3.1002.exr": b"\x76\x2f\x31\x01" + b"pixelz" * 4000,
    "sq010/sh0010/scratch/not_picked.tmp": b"left behind",
    "sq042/sh0100/plate_v1.exr": b"\x76\x2f\x31\x01" + b"plate" * 100,
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def staged(settings, tmp_path, clamd_settings):
    """Staging, production and quarantine roots with a few staged files; jobs inline; real clamd;
    no automatic transfer after a clean scan."""
    for name in ("STAGING_ROOT", "PRODUCTION_ROOT", "QUARANTINE_ROOT"):
        path = tmp_path / name.split("_")[0].lower()
        path.mkdir()
        setattr(settings, name, path)
    for relative, data in STAGED.items():
        target = settings.STAGING_ROOT / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    settings.JOBS_INLINE = True
    settings.AUTO_TRANSFER = False
    settings.TRANSFERS_ALLOW_SELF_APPROVAL = False
    settings.SHOTGRID_ENABLED = False
    return settings


@pytest.fixture
def open_as(new_context, login):
    """`open_as("teamlead1")` → a page in a fresh browser context, logged in on the login page."""

    def open_as(username, theme=None):
        context = new_context()
        if theme:
            context.add_init_script(f"localStorage.setItem('theme', '{theme}')")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return login(page, username, PASSWORDS[username])

    return open_as


@pytest.fixture
def make_request(staged, demo_data):
    """A request created (and submitted) through the services, for tests that start later on."""
    from pipeline_project.accounts.models import User
    from pipeline_project.studio.models import Project
    from transfers import services

    def make(paths, name="Comp_sh0010_v3", approvals=()):
        artist = User.objects.get(username="artist1")
        transfer = services.transfer_create(
            by=artist,
            name=name,
            project=Project.objects.get(code="dragon"),
            paths=paths,
            submit=True,
        )
        for username in approvals:
            transfer = services.transfer_approve(
                transfer=transfer, by=User.objects.get(username=username)
            )
        return transfer

    return make


def actions(page) -> list[str]:
    """The actions the detail page offers this person, in order."""
    return page.locator("#actions [data-action]").evaluate_all(
        "els => els.map(e => e.dataset.action)"
    )


def status_badge(page):
    return page.get_by_test_id("transfer-status")


def files_table(page):
    return page.get_by_test_id("files")


def open_from_list(page, nav_link, heading, reference):
    """Follow a sidebar link to a list, find the request's row and open it."""
    page.locator(".sidebar nav").get_by_role("link", name=nav_link, exact=True).click()
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
    row = page.locator(f'#results tr[data-reference="{reference}"]')
    expect(row).to_have_count(1)
    row.get_by_role("link", name=reference).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(reference)
    return page


def approve_in_inbox(open_as, username, reference, comment, next_status, shot):
    """An approver finds the request in their inbox and approves it with a comment."""
    page = open_as(username)
    expect(page.get_by_test_id("transfers-card")).to_contain_text("1 waiting for your approval")
    open_from_list(page, "Approvals", "Waiting for my approval", reference)
    assert actions(page) == ["approve", "reject"]
    page.get_by_label("Comment").fill(comment)
    screenshot(page, shot)
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(status_badge(page)).to_have_text(next_status)
    expect(page.locator("#actions")).to_contain_text("Nothing for you to do")
    expect(page.locator(".history")).to_contain_text(comment)
    page.locator(".sidebar nav").get_by_role("link", name="Approvals", exact=True).click()
    expect(page.locator("#results")).to_contain_text("No transfers match")
    return page


def test_the_chain_across_six_people_ends_delivered_with_the_manifest_in_production(
    staged, open_as, site_url
):
    from transfers.models import Transfer

    notes = b"frame 1002: dust hit painted out\n"

    # --- Artist: picks a folder and a file in staging, uploads a note, creates and submits.
    artist = open_as("artist1")
    artist.locator(".sidebar nav").get_by_role("link", name="My transfers").click()
    expect(artist.locator("#results")).to_contain_text("No transfers match")
    artist.get_by_role("link", name="New transfer").click()
    expect(artist).to_have_url(site_url("/transfers/new/"))
    picker = artist.locator(".picker-box")
    expect(picker.get_by_role("checkbox")).to_have_count(2)  # sq010, sq042
    artist.get_by_role("link", name="open sq010", exact=True).click()
    artist.get_by_role("link", name="open sq010/sh0010", exact=True).click()
    expect(picker.get_by_role("checkbox", name="comp_v3.nk")).to_be_visible()
    expect(picker.get_by_role("link", name="open sq010/sh0010/renders")).to_be_visible()
    picker.get_by_role("checkbox", name="renders").check()
    picker.get_by_role("checkbox", name="comp_v3.nk").check()
    artist.get_by_label("Upload").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": notes}]
    )
    artist.get_by_label("Name").fill("Comp_sh0010_v3")
    artist.get_by_label("Description").fill("Final comp of the dragon's entrance.")
    artist.get_by_label("Priority").select_option(label="High")
    artist.get_by_label("Project").select_option(label="dragon — Dragon's Keep")
    artist.get_by_label("Shot").select_option(label="dragon/sq010_sh0010")
    screenshot(artist, "transfers-01-artist-new")
    artist.get_by_role("button", name="Create and submit for approval").click()

    expect(artist).to_have_url(re.compile(r"/transfers/TRF-\d{5}/$"))
    reference = artist.url.rstrip("/").rsplit("/", 1)[1]
    expect(artist.locator(".messages")).to_contain_text(f"{reference} created with 4 files.")
    expect(status_badge(artist)).to_have_text("Pending Team Lead")
    expected_paths = [
        "sq010/sh0010/comp_v3.nk",
        "sq010/sh0010/renders/comp_v3.1001.exr",
        "sq010/sh0010/renders/comp_v3.1002.exr",
        f"uploads/{reference}/notes.txt",
    ]
    expect(files_table(artist).locator("td.path")).to_have_text(expected_paths)
    expect(files_table(artist).get_by_test_id("sha256")).to_have_text(["—"] * 4)
    expect(files_table(artist).locator("td.scan")).to_have_text(["Not scanned yet"] * 4)
    expect(artist.get_by_test_id("timeline")).to_contain_text("artist1 submitted")
    assert actions(artist) == ["cancel"]  # no approving one's own request
    assert (staged.STAGING_ROOT / f"uploads/{reference}/notes.txt").read_bytes() == notes
    screenshot(artist, "transfers-02-artist-submitted")
    artist.context.close()

    # --- Team lead, supervisor, line producer: each finds it in their inbox and approves.
    approve_in_inbox(
        open_as,
        "teamlead1",
        reference,
        "Plates match the edit.",
        "Pending Supervisor",
        "transfers-03-team-lead-approves",
    ).context.close()
    approve_in_inbox(
        open_as,
        "supervisor1",
        reference,
        "Grade is right.",
        "Pending Line Producer",
        "transfers-04-supervisor-approves",
    ).context.close()
    # The last approval starts the scan; inline it has run (real clamd) when the page comes back.
    producer = approve_in_inbox(
        open_as,
        "producer1",
        reference,
        "Budgeted, go.",
        "Scanned clean",
        "transfers-05-line-producer-approves",
    )
    producer.goto(site_url(f"/transfers/{reference}/"))
    manifest = [
        sha256(STAGED["sq010/sh0010/comp_v3.nk"]),
        sha256(STAGED["sq010/sh0010/renders/comp_v3.1001.exr"]),
        sha256(STAGED["sq010/sh0010/renders/comp_v3.1002.exr"]),
        sha256(notes),
    ]
    expect(files_table(producer).get_by_test_id("sha256")).to_have_text(manifest)
    expect(files_table(producer).locator("td.scan")).to_have_text(["Clean"] * 4)
    expect(producer.get_by_test_id("timeline")).to_contain_text("scanned_clean")
    expect(producer.locator("#live")).not_to_have_attribute("hx-trigger", re.compile("."))
    assert actions(producer) == []
    screenshot(producer, "transfers-06-scanned-clean")
    producer.context.close()

    # --- Data team: told the scan started; the clean request has left their queue; they may
    # rescan it, which hashes and scans everything again.
    data = open_as("datateam1")
    data.get_by_role("link", name=f"{reference} approved: scanning starts").click()
    expect(status_badge(data)).to_have_text("Scanned clean")
    assert actions(data) == ["rescan"]
    data.get_by_role("button", name="Rescan").click()
    expect(data.get_by_test_id("timeline")).to_contain_text("datateam1 rescan_requested")
    expect(status_badge(data)).to_have_text("Scanned clean")
    expect(files_table(data).get_by_test_id("sha256")).to_have_text(manifest)
    screenshot(data, "transfers-07-data-team-rescanned")
    data.locator(".sidebar nav").get_by_role("link", name="Data team queue").click()
    expect(data.locator("#results")).to_contain_text("No transfers match")
    data.context.close()

    # --- IT (in the light theme): the request waits in the IT queue; IT starts the copy, which
    # verifies every file against the manifest and delivers.
    it = open_as("it1", theme="light")
    it.goto(site_url("/transfers/it/"))
    row = it.locator(f'#results tr[data-reference="{reference}"]')
    expect(row.locator("[data-status]")).to_have_text("Scanned clean")
    screenshot(it, "transfers-08-it-queue-light")
    row.get_by_role("link", name=reference).click()
    expect(status_badge(it)).to_have_text("Scanned clean")
    assert actions(it) == ["start_transfer"]
    screenshot(it, "transfers-09-it-before-start")
    it.get_by_role("button", name="Start transfer").click()
    expect(status_badge(it)).to_have_text("Delivered")
    expect(files_table(it).locator("td.prod")).to_have_text(["verified"] * 4)
    timeline = it.get_by_test_id("timeline")
    for verb in ("it1 transfer_started", "system transferred", "system delivered"):
        expect(timeline).to_contain_text(verb)
    assert actions(it) == []
    screenshot(it, "transfers-10-it-delivered-light")
    it.context.close()

    # --- Artist: told it was delivered; sees where it went and the manifest hashes.
    artist = open_as("artist1")
    expect(artist.get_by_test_id("delivered-chart")).to_contain_text("in 30 days")
    expect(artist.get_by_test_id("delivered-chart").locator("rect.bar")).to_have_count(1)
    screenshot(artist, "transfers-11-artist-dashboard")
    artist.get_by_role("link", name=re.compile(f"{reference} .* delivered to production")).click()
    expect(status_badge(artist)).to_have_text("Delivered")
    expect(artist.locator("table.kv")).to_contain_text(f"dragon/{reference}/")
    expect(files_table(artist).get_by_test_id("sha256")).to_have_text(manifest)
    expect(artist.locator(".history .timeline").first).to_contain_text("Budgeted, go.")
    assert actions(artist) == []
    screenshot(artist, "transfers-12-artist-sees-delivered")
    # At 800px the files stack (hash under the path) and nothing scrolls sideways.
    artist.set_viewport_size({"width": 800, "height": 900})
    assert artist.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert artist.evaluate("document.querySelector('[data-testid=files]').scrollWidth") <= 800
    screenshot(artist, "transfers-13-artist-delivered-800")

    # Production holds exactly the approved files, each hashing to its manifest entry.
    transfer = Transfer.objects.get(reference=reference)
    files = {f.get_relative_path(): f for f in transfer.files.all()}
    assert [f.sha256 for f in transfer.files.all()] == manifest
    production = staged.PRODUCTION_ROOT
    on_disk = sorted(p.relative_to(production).as_posix() for p in production.rglob("*"))
    on_disk = [p for p in on_disk if (production / p).is_file()]
    assert on_disk == sorted(f"dragon/{reference}/{relative}" for relative in files)
    for relative, file in files.items():
        data = (production / f"dragon/{reference}/{relative}").read_bytes()
        assert sha256(data) == file.sha256 == file.verified_sha256
        assert file.production_path == f"dragon/{reference}/{relative}"


def test_an_infected_file_quarantines_the_request_and_the_data_team_sees_why(
    staged, make_request, open_as, eicar_bytes
):
    shot = staged.STAGING_ROOT / "sq042" / "sh0100"
    (shot / "plate_v1.1001.exr").write_bytes(b"\x76\x2f\x31\x01" + eicar_bytes)
    transfer = make_request(
        ["sq042/sh0100"], name="Plate_sh0100_v1", approvals=("teamlead1", "supervisor1")
    )
    reference = transfer.reference

    producer = open_as("producer1")
    open_from_list(producer, "Approvals", "Waiting for my approval", reference)
    producer.get_by_role("button", name="Approve", exact=True).click()
    expect(status_badge(producer)).to_have_text("Quarantined")
    reason = producer.get_by_test_id("status-reason")
    expect(reason).to_contain_text(
        "Infected: sq042/sh0100/plate_v1.1001.exr (Eicar-Test-Body.UNOFFICIAL)"
    )
    expect(reason).to_contain_text("nothing goes on")
    producer.context.close()

    data = open_as("datateam1")
    data.locator(".sidebar nav").get_by_role("link", name="Data team queue").click()
    row = data.locator(f'#results tr[data-reference="{reference}"]')
    expect(row.locator("[data-status]")).to_have_text("Quarantined")
    expect(row.locator(".row-reason")).to_contain_text("Eicar-Test-Body.UNOFFICIAL")
    screenshot(data, "transfers-20-data-team-queue-quarantined")
    row.get_by_role("link", name=reference).click()
    expect(status_badge(data)).to_have_text("Quarantined")
    infected = files_table(data).locator('tr[data-path="sq042/sh0100/plate_v1.1001.exr"]')
    expect(infected.locator("td.scan")).to_contain_text("Infected")
    expect(infected.locator("td.scan")).to_contain_text("Eicar-Test-Body.UNOFFICIAL")
    expect(infected.locator("td.prod")).to_have_text("quarantined")
    clean = files_table(data).locator('tr[data-path="sq042/sh0100/plate_v1.exr"]')
    expect(clean.locator("td.scan")).to_have_text("Clean")
    assert actions(data) == []  # nothing goes on from quarantine
    screenshot(data, "transfers-21-data-team-quarantined-detail")
    data.context.close()

    # Moved out of staging into quarantine; nothing reached production.
    assert not (shot / "plate_v1.1001.exr").exists()
    quarantined = staged.QUARANTINE_ROOT / reference / "sq042/sh0100/plate_v1.1001.exr"
    assert eicar_bytes in quarantined.read_bytes()
    assert not [p for p in staged.PRODUCTION_ROOT.rglob("*") if p.is_file()]


def test_a_rejected_request_is_edited_and_resubmitted(staged, make_request, open_as, site_url):
    transfer = make_request(["sq010/sh0010/comp_v3.nk", "sq010/sh0010/renders"])
    reference = transfer.reference

    # --- Team lead: an empty reason is refused by the browser, a blank one by the server.
    lead = open_as("teamlead1")
    open_from_list(lead, "Approvals", "Waiting for my approval", reference)
    posts = []
    lead.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    reason = lead.locator("#id_reason_reject")
    lead.get_by_role("button", name="Reject", exact=True).click()
    assert reason.evaluate("el => el.validity.valueMissing")
    expect(lead.locator(".messages")).to_have_count(0)
    reason.fill("   ")
    lead.get_by_role("button", name="Reject", exact=True).click()
    expect(lead.locator(".messages li.error")).to_have_text(
        "Say why the request is rejected: the artist needs to know what to fix."
    )
    # Only the blank reason reached the server: the browser kept the empty one back.
    assert posts == [site_url(f"/transfers/{reference}/reject/")]
    expect(status_badge(lead)).to_have_text("Pending Team Lead")
    screenshot(lead, "transfers-30-reject-needs-a-reason")
    lead.locator("#id_reason_reject").fill("Wrong renders: use v4 from the conform.")
    lead.get_by_role("button", name="Reject", exact=True).click()
    expect(status_badge(lead)).to_have_text("Rejected")
    expect(lead.get_by_test_id("status-reason")).to_have_text(
        "Wrong renders: use v4 from the conform."
    )
    expect(lead.locator(".history")).to_contain_text("Rejected Team Lead by teamlead1")
    assert actions(lead) == []
    lead.context.close()

    # --- Artist: sees why, edits (rename, drop a file, upload its replacement), resubmits.
    artist = open_as("artist1")
    artist.get_by_role("link", name=f"{reference} rejected").click()
    expect(status_badge(artist)).to_have_text("Rejected")
    expect(artist.get_by_test_id("status-reason")).to_have_text(
        "Wrong renders: use v4 from the conform."
    )
    assert actions(artist) == ["resubmit", "edit", "cancel"]
    screenshot(artist, "transfers-31-artist-sees-rejection")
    artist.get_by_role("link", name="Edit", exact=True).click()
    expect(artist).to_have_url(site_url(f"/transfers/{reference}/edit/"))
    expect(artist.get_by_test_id("status-reason")).to_contain_text("Wrong renders")
    artist.get_by_label("Name").fill("Comp_sh0010_v4")
    artist.get_by_role("checkbox", name="sq010/sh0010/comp_v3.nk").check()
    artist.get_by_label("Upload").set_input_files(
        files=[{"name": "comp_v4.nk", "mimeType": "text/plain", "buffer": b"nuke script v4"}]
    )
    screenshot(artist, "transfers-32-artist-edits")
    artist.get_by_role("button", name="Save changes").click()
    expect(artist.locator(".messages")).to_contain_text(f"{reference} updated.")
    expect(artist.get_by_role("heading", level=1)).to_contain_text("Comp_sh0010_v4")
    expect(files_table(artist).locator("td.path")).to_have_text(
        [
            "sq010/sh0010/renders/comp_v3.1001.exr",
            "sq010/sh0010/renders/comp_v3.1002.exr",
            f"uploads/{reference}/comp_v4.nk",
        ]
    )
    artist.get_by_role("button", name="Resubmit").click()
    expect(status_badge(artist)).to_have_text("Pending Team Lead")
    expect(artist.locator("table.kv")).to_contain_text("approval round 2")
    timeline = artist.get_by_test_id("timeline")
    for entry in ("teamlead1 rejected", "artist1 edited", "artist1 resubmitted"):
        expect(timeline).to_contain_text(entry)
    assert actions(artist) == ["cancel"]
    screenshot(artist, "transfers-33-artist-resubmitted")
    artist.context.close()

    # --- Team lead: it is back in the inbox for round 2.
    lead = open_as("teamlead1")
    open_from_list(lead, "Approvals", "Waiting for my approval", reference)
    assert actions(lead) == ["approve", "reject"]
