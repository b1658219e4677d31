"""The lists people work from: my transfers, the data-team and IT queues, the dashboard cards."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from transfers.models import Status, Transfer

pytestmark = pytest.mark.django_db


def references(response) -> list[str]:
    return re.findall(r'data-reference="(TRF-\d+)"', response.content.decode())


@pytest.fixture
def spread(new_transfer):
    """One request in each of the states the queues care about."""
    made = {}
    for status in (
        Status.SCAN_ERROR,
        Status.NEEDS_OVERRIDE,
        Status.SCANNED,
        Status.FAILED,
        Status.DELIVERED,
        Status.TRANSFERRED,
        Status.PENDING_TEAM_LEAD,
    ):
        transfer = new_transfer()
        Transfer.objects.filter(pk=transfer.pk).update(status=status)
        made[status] = transfer.reference
    return made


def test_the_data_team_queue_lists_what_waits_for_the_data_team(spread, people, client):
    client.force_login(people["data_team"])
    listed = set(references(client.get(reverse("transfers:data-team"))))
    assert spread[Status.SCAN_ERROR] in listed and spread[Status.NEEDS_OVERRIDE] in listed
    assert spread[Status.DELIVERED] not in listed and spread[Status.SCANNED] not in listed


def test_the_it_queue_lists_what_waits_for_it(spread, people, client):
    client.force_login(people["it"])
    listed = set(references(client.get(reverse("transfers:it"))))
    assert {spread[Status.SCANNED], spread[Status.FAILED], spread[Status.TRANSFERRED]} <= listed
    assert spread[Status.SCAN_ERROR] not in listed and spread[Status.DELIVERED] not in listed


@pytest.mark.parametrize(
    ("page", "allowed"),
    [
        ("transfers:data-team", {"data_team", "admin"}),
        ("transfers:it", {"it", "admin"}),
        ("transfers:approvals", {"team_lead", "supervisor", "line_producer", "admin"}),
    ],
)
def test_queues_are_refused_to_other_roles(page, allowed, make_user, client):
    from .conftest import ROLES

    for role in ROLES:
        client.force_login(make_user(role))
        code = client.get(reverse(page)).status_code
        assert code == (200 if role in allowed else 403), f"{page} for {role}: {code}"


def test_my_transfers_filter_by_status_search_and_paginate(new_transfer, people, client):
    for n in range(30):
        new_transfer(name=f"Plate_{n:02d}")
    rejected = new_transfer(name="Wrong_grade")
    Transfer.objects.filter(pk=rejected.pk).update(status=Status.REJECTED)
    client.force_login(people["artist"])
    url = reverse("transfers:list")

    first, second = client.get(url), client.get(url, {"page": 2})
    assert len(references(first)) == 25 and len(references(second)) == 6
    assert "Page 1 of 2 · 31 in all" in first.content.decode()
    assert not set(references(first)) & set(references(second))

    assert references(client.get(url, {"status": "rejected"})) == [rejected.reference]
    found = client.get(url, {"q": "plate_07"}, headers={"HX-Request": "true"})
    assert len(references(found)) == 1 and "<html" not in found.content.decode()
    assert references(client.get(url, {"q": rejected.reference})) == [rejected.reference]


def test_the_dashboard_counts_per_status_and_charts_delivered_bytes(
    spread, new_transfer, people, client
):
    delivered = Transfer.objects.get(reference=spread[Status.DELIVERED])
    Transfer.objects.filter(pk=delivered.pk).update(delivered_at=timezone.now() - timedelta(days=1))
    client.force_login(people["admin"])

    page = client.get(reverse("studio:home")).content.decode()

    card = page[page.index('data-testid="transfers-card"') :]
    for label in ("Scan error", "Unscanned files", "Scanned clean", "Delivered"):
        assert re.search(rf">{label}</span>\s*</td><td class=\"num stat-cell\">1<", card), label
    chart = page[page.index('data-testid="delivered-chart"') :]
    assert "52.7\xa0KB in 30 days" in chart  # the delivered request's three files
    assert chart.count('class="bar"') == 1
