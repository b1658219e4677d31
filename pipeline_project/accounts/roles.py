"""Studio roles. Each is a Django Group created by a data migration; LDAP groups map onto them."""

from django.db.models import TextChoices


class Role(TextChoices):
    ARTIST = "artist", "Artist"
    TEAM_LEAD = "team_lead", "Team Lead"
    SUPERVISOR = "supervisor", "Supervisor"
    LINE_PRODUCER = "line_producer", "Line Producer"
    DATA_TEAM = "data_team", "Data Team"
    IT = "it", "IT"
    ADMIN = "admin", "Admin"
    COLORIST = "colorist", "Colorist"
    ENGINEER = "engineer", "Engineer"
    READONLY = "readonly", "Read-only"
    ETL_OPERATOR = "etl_operator", "ETL Operator"


ROLE_NAMES = frozenset(Role.values)


def ensure_role_groups(group_model=None) -> None:
    """Create any missing role group. Used by the data migration and after a data wipe."""
    if group_model is None:
        from django.contrib.auth.models import Group as group_model
    for name in Role.values:
        group_model.objects.get_or_create(name=name)


def check_role_names(roles) -> None:
    unknown = set(roles) - ROLE_NAMES
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
