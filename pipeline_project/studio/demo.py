"""Demo projects with sequences, shots, assets and members. Idempotent."""

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Asset, Membership, Project, Sequence, Shot, Tag

PROJECTS = [
    ("dragon", "Dragon's Keep", "Feature: a dragon, a forest, a city on fire."),
    ("ep3", "Episodic Season 3", "Twelve episodes of animated series, grading in Nashville."),
]
SHOTS = {
    "dragon": {"sq010": ["sh0010", "sh0020", "sh0030"], "sq042": ["sh0100", "sh0110"]},
    "ep3": {"ep301": ["sh0010", "sh0020"]},
}
ASSETS = {
    "dragon": [
        ("Dragon", "character", ["hero", "creature"]),
        ("Hero", "character", ["hero"]),
        ("ForestEnv", "environment", ["forest"]),
        ("CityBlock", "environment", ["city"]),
        ("Vehicle_Cart", "vehicle", []),
    ],
    "ep3": [("Kid", "character", ["hero"]), ("Kitchen", "environment", [])],
}
MEMBERS = [
    ("admin1", "owner"),
    ("producer1", "manager"),
    ("supervisor1", "lead"),
    ("teamlead1", "lead"),
    ("artist1", "contributor"),
    ("artist2", "contributor"),
    ("datateam1", "viewer"),
    ("it1", "viewer"),
    ("colorist1", "contributor"),
    ("colorist2", "contributor"),
    ("engineer1", "viewer"),
    ("readonly1", "viewer"),
]


@transaction.atomic
def seed(*, stdout=None):
    users = {
        u.username: u for u in get_user_model().objects.filter(username__in=[m[0] for m in MEMBERS])
    }
    for code, name, description in PROJECTS:
        project, created = Project.objects.update_or_create(
            code=code, defaults={"name": name, "description": description}
        )
        if stdout and created:
            stdout.write(f"  project {code}")
        for seq_code, shots in SHOTS[code].items():
            sequence, _ = Sequence.objects.get_or_create(project=project, code=seq_code)
            for i, shot_code in enumerate(shots):
                Shot.objects.update_or_create(
                    project=project,
                    code=f"{seq_code}_{shot_code}",
                    defaults={
                        "sequence": sequence,
                        "status": "ip",
                        "frame_in": 1001,
                        "frame_out": 1048 + 24 * i,
                    },
                )
        for asset_code, asset_type, tags in ASSETS[code]:
            asset, _ = Asset.objects.update_or_create(
                project=project, code=asset_code, defaults={"asset_type": asset_type}
            )
            asset.tags.set([Tag.objects.get_or_create(name=t)[0] for t in tags])
        for username, role in MEMBERS:
            if username in users:
                Membership.objects.update_or_create(
                    project=project, user=users[username], defaults={"role": role}
                )
