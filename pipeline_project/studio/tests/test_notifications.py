import pytest
from django.urls import reverse

from pipeline_project.studio.models import Notification
from pipeline_project.studio.services import notify, send_notification_emails

pytestmark = pytest.mark.django_db


def test_notify_reaches_users_and_role_holders_once(make_user):
    lead, lead2, artist = (
        make_user("team_lead"),
        make_user("team_lead", "supervisor"),
        make_user("artist"),
    )
    notes = notify(
        title="TRF-00002 needs your approval",
        users=[lead],
        roles=["team_lead", "supervisor"],
        email=False,
    )
    assert sorted(n.recipient_id for n in notes) == sorted([lead.pk, lead2.pk])
    assert not Notification.objects.filter(recipient=artist).exists()


def test_notify_excludes_the_actor_and_inactive_users(make_user):
    actor, inactive = make_user("team_lead"), make_user("team_lead", is_active=False)
    other = make_user("team_lead")
    notes = notify(title="x", roles=["team_lead"], exclude=[actor], email=False)
    assert [n.recipient for n in notes] == [other]
    assert not Notification.objects.filter(recipient=inactive).exists()


def test_unknown_role_is_refused(make_user):
    with pytest.raises(ValueError, match="unknown role"):
        notify(title="x", roles=["wizards"])
    assert not Notification.objects.exists()


def test_email_job_sends_each_notification_once(make_user, mailoutbox, settings):
    settings.SITE_URL = "https://pipeline.studio.test"
    user = make_user("artist", email="ava@studio.test")
    note = notify(
        title="TRF-00004 delivered",
        body="Your files are in production.",
        url="/transfers/4/",
        users=[user],
        email=False,
    )[0]

    send_notification_emails([note.pk])
    send_notification_emails([note.pk])  # a job may run twice

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ava@studio.test"]
    assert "TRF-00004 delivered" in mailoutbox[0].subject
    assert "https://pipeline.studio.test/transfers/4/" in mailoutbox[0].body


@pytest.mark.django_db(transaction=True)
def test_notify_emails_through_the_notifications_queue_after_commit(
    make_user, mailoutbox, settings
):
    settings.JOBS_INLINE = True
    settings.NOTIFY_BY_EMAIL = True
    user = make_user("artist")
    notify(title="Welcome", users=[user])
    assert len(mailoutbox) == 1
    assert Notification.objects.get(recipient=user).emailed_at is not None


def test_header_shows_unread_count_and_mark_read_clears_it(make_user, client):
    user = make_user("artist")
    notify(title="One", users=[user], email=False)
    notify(title="Two", users=[user], email=False)
    client.force_login(user)

    page = client.get(reverse("studio:home")).content.decode()
    assert 'data-testid="unread-count">2<' in page

    bell = client.post(
        reverse("studio:notifications-read"), headers={"HX-Request": "true"}
    ).content.decode()
    assert 'id="bell"' in bell and "unread-count" not in bell
    assert not Notification.objects.unread().exists()


def test_opening_a_notification_marks_it_read_and_follows_its_link(make_user, client):
    user = make_user("artist")
    note = notify(title="Go", url="/projects/", users=[user], email=False)[0]
    client.force_login(user)
    response = client.get(reverse("studio:notification-open", args=[note.pk]))
    assert response.status_code == 302 and response["Location"] == "/projects/"
    note.refresh_from_db()
    assert note.is_read()


def test_cannot_open_someone_elses_notification(make_user, client):
    note = notify(title="private", users=[make_user("artist")], email=False)[0]
    client.force_login(make_user("artist"))
    assert client.get(reverse("studio:notification-open", args=[note.pk])).status_code == 404
