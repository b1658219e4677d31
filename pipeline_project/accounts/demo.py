"""Demo users (seed 000's "Dev Login" table plus the colour-routing users). Idempotent."""

from django.db import transaction

from .models import User
from .roles import Role, ensure_role_groups
from .services import user_set_roles

DEMO_USERS = [
    # username, password, role, first, last
    ("artist1", "artist123", Role.ARTIST, "Ava", "Artist"),
    ("artist2", "artist123", Role.ARTIST, "Ari", "Artist"),
    ("teamlead1", "teamlead123", Role.TEAM_LEAD, "Tess", "Lead"),
    ("supervisor1", "super123", Role.SUPERVISOR, "Sam", "Supervisor"),
    ("producer1", "producer123", Role.LINE_PRODUCER, "Pat", "Producer"),
    ("datateam1", "data123", Role.DATA_TEAM, "Dana", "Data"),
    ("it1", "it123", Role.IT, "Ian", "Tech"),
    ("admin1", "admin123", Role.ADMIN, "Ada", "Admin"),
    ("colorist1", "colorist123", Role.COLORIST, "Cole", "Grade"),
    ("colorist2", "colorist123", Role.COLORIST, "Cleo", "Grade"),
    ("engineer1", "engineer123", Role.ENGINEER, "Eli", "Engineer"),
    ("readonly1", "readonly123", Role.READONLY, "Rae", "Reader"),
]


@transaction.atomic
def seed(*, stdout=None):
    ensure_role_groups()
    for username, password, role, first, last in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username)
        user.first_name, user.last_name = first, last
        user.email = f"{username}@studio.test"
        user.is_staff = user.is_superuser = role == Role.ADMIN
        user.is_active = True
        user.set_password(password)
        user.save()
        user_set_roles(user=user, roles=[role])
        if stdout and created:
            stdout.write(f"  user {username} ({Role(role).label})")
