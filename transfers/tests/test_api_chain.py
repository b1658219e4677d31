"""The whole chain through the HTTP API, with real clamd, real RQ workers and the real database."""

import hashlib

import pytest
from django.urls import reverse

from transfers.models import Status, Transfer

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def act(api_client, user, reference, action, **data):
    api_client.force_authenticate(user)
    return api_client.post(reverse(f"api:transfer-{action}", args=[reference]), data, format="json")


def test_artist_to_delivery_through_the_api(
    api_client, people, project, clamd_settings, rq_worker, roots
):
    api_client.force_authenticate(people["artist"])
    created = api_client.post(
        reverse("api:transfers"),
        {
            "name": "Comp_sh0010_v3",
            "priority": "high",
            "project": "dragon",
            "paths": ["sq010/sh0010"],
            "submit": True,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    ref = created.json()["reference"]
    assert created.json()["status"] == "pending_team_lead" and len(created.json()["files"]) == 3

    for role in ("team_lead", "supervisor", "line_producer"):
        response = act(api_client, people[role], ref, "approve", comment=f"ok from {role}")
        assert response.status_code == 200, response.json()
    assert Transfer.objects.get(reference=ref).status == Status.APPROVED

    rq_worker("scanning")
    transfer = Transfer.objects.get(reference=ref)
    assert transfer.status == Status.TRANSFERRING, transfer.status_reason
    assert set(transfer.files.values_list("scan_status", flat=True)) == {"clean"}

    rq_worker("transfer")
    assert Transfer.objects.get(reference=ref).status == Status.TRANSFERRED
    rq_worker("default")

    api_client.force_authenticate(people["artist"])
    detail = api_client.get(reverse("api:transfer", args=[ref])).json()
    assert detail["status"] == "delivered" and detail["delivered_at"]
    for f in detail["files"]:
        staged = (roots.STAGING_ROOT / f["path"]).read_bytes()
        produced = (roots.PRODUCTION_ROOT / f["production_path"]).read_bytes()
        assert f["sha256"] == f["verified_sha256"] == hashlib.sha256(staged).hexdigest()
        assert hashlib.sha256(produced).hexdigest() == f["sha256"]
        assert f["production_path"].startswith(f"dragon/{ref}/")
    assert not list(roots.PRODUCTION_ROOT.rglob(".*part*")), "no temporary files left behind"


def test_api_errors_say_why(api_client, people, new_transfer):
    transfer = new_transfer()
    ref = transfer.reference
    refused = act(api_client, people["team_lead"], ref, "approve")
    assert refused.status_code == 409 and "Uploaded" in refused.json()["detail"]

    act(api_client, people["artist"], ref, "submit")
    wrong_role = act(api_client, people["supervisor"], ref, "approve")
    assert wrong_role.status_code == 403 and "team_lead" in wrong_role.json()["detail"]

    no_reason = act(api_client, people["team_lead"], ref, "reject")
    assert no_reason.status_code == 400 and "why" in no_reason.json()["detail"]

    act(api_client, people["team_lead"], ref, "approve")
    stale = act(api_client, people["admin"], ref, "approve", expected_status="pending_team_lead")
    assert stale.status_code == 409
    assert stale.json()["detail"].startswith(
        f"{ref} was already approved at the Team Lead stage by team_lead1"
    )

    api_client.force_authenticate(people["colorist"])
    assert api_client.get(reverse("api:transfer", args=[ref])).status_code == 404


def test_api_lists_with_filters(api_client, people, new_transfer):
    mine = new_transfer(name="Mine")
    new_transfer(by=people["admin"], name="Theirs")
    api_client.force_authenticate(people["artist"])
    body = api_client.get(reverse("api:transfers")).json()
    assert [t["reference"] for t in body["results"]] == [mine.reference]
    api_client.force_authenticate(people["readonly"])
    assert api_client.get(reverse("api:transfers"), {"search": "Theirs"}).json()["count"] == 1
    assert api_client.get(reverse("api:transfers"), {"status": "delivered"}).json()["count"] == 0


@pytest.mark.django_db
def test_the_artist_edits_a_rejected_request_through_the_api_then_resubmits(
    api_client, people, new_transfer
):
    from transfers import services

    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    transfer = services.transfer_reject(transfer=transfer, by=people["team_lead"], reason="v2")
    url = reverse("api:transfer", args=[transfer.reference])
    change = {"name": "Comp_sh0010_v4", "remove_paths": ["sq010/sh0010/comp_v3.nk"]}

    api_client.force_authenticate(people["team_lead"])
    assert api_client.patch(url, change, format="json").status_code == 403

    api_client.force_authenticate(people["artist"])
    response = api_client.patch(url, change, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Comp_sh0010_v4" and body["file_count"] == 2
    assert "sq010/sh0010/comp_v3.nk" not in [f["path"] for f in body["files"]]
    bad = api_client.patch(url, {"add_paths": ["../outside"]}, format="json")
    assert bad.status_code == 400 and bad.json()["detail"]
    assert api_client.get(url).json()["file_count"] == 2  # the refused edit changed nothing

    assert act(api_client, people["artist"], transfer.reference, "resubmit").status_code == 200
    assert api_client.patch(url, {"name": "late"}, format="json").status_code == 409
