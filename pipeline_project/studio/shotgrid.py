"""The studio's gateway to ShotGrid (shotgun-api3).

Everything the site asks of ShotGrid goes through this module, so ShotGrid's entity and field names
live in one place. Services take the connection as `sg=`: the site passes `get_client()`, tests pass
Mockgun (pipeline_project.testing.shotgrid).

ShotGrid is the production's source of truth for sequences, shots and assets, so `sync_project`
only pulls. Rows that disappear from ShotGrid are kept here: transfers, publishes and the depot may
still point at them.
"""

import shotgun_api3
from django.conf import settings
from django.db import transaction

from pipeline_project.errors import Conflict, DomainError

from .audit import record
from .models import Asset, Project, Sequence, Shot

SEQUENCE_FIELDS = ["code", "description"]
SHOT_FIELDS = ["code", "description", "sg_sequence", "sg_status_list", "sg_cut_in", "sg_cut_out"]
ASSET_FIELDS = ["code", "description", "sg_asset_type"]
VERSION_ENTITY_TYPES = ("Shot", "Asset", "Sequence")
BY_ID = [{"field_name": "id", "direction": "asc"}]

# Asset types are configured per ShotGrid site; names that do not map here become "other".
ASSET_TYPES = {
    "character": Asset.Type.CHARACTER,
    "prop": Asset.Type.PROP,
    "environment": Asset.Type.ENVIRONMENT,
    "set": Asset.Type.ENVIRONMENT,
    "vehicle": Asset.Type.VEHICLE,
    "fx": Asset.Type.FX,
}
_CONNECTION_SETTINGS = ("SHOTGRID_URL", "SHOTGRID_SCRIPT_NAME", "SHOTGRID_API_KEY")


def get_client() -> shotgun_api3.Shotgun:
    """A client for the ShotGrid site in settings. It connects on first use, not here."""
    if not settings.SHOTGRID_ENABLED:
        raise DomainError(
            "ShotGrid is not enabled on this site: set SHOTGRID_ENABLED=1 with "
            "SHOTGRID_URL, SHOTGRID_SCRIPT_NAME and SHOTGRID_API_KEY."
        )
    missing = [name for name in _CONNECTION_SETTINGS if not getattr(settings, name, "")]
    if missing:
        raise DomainError(f"ShotGrid is enabled but not configured: set {', '.join(missing)}.")
    return shotgun_api3.Shotgun(
        settings.SHOTGRID_URL,
        script_name=settings.SHOTGRID_SCRIPT_NAME,
        api_key=settings.SHOTGRID_API_KEY,
        connect=False,
    )


def project_link(project: Project) -> dict:
    """The ShotGrid link for a studio project; refuses projects that have no ShotGrid id."""
    if project.shotgrid_id is None:
        raise DomainError(
            f"Project {project.code} is not linked to ShotGrid: set its ShotGrid id first."
        )
    return {"type": "Project", "id": project.shotgrid_id}


def sync_project(*, project: Project, sg, actor=None) -> dict:
    """Pull the project's sequences, shots and assets from ShotGrid into the studio database.

    Rows are matched by ShotGrid id, then by code (rows made here before the project was linked
    are adopted, not duplicated); a second run changes nothing. Returns counts per kind, e.g.
    `{"shots": {"created": 3, "updated": 1, "unchanged": 40}, ...}`, and records one AuditEvent.
    """
    link = project_link(project)
    if sg.find_one("Project", [["id", "is", link["id"]]]) is None:
        raise DomainError(f"ShotGrid has no project with id {link['id']} (for {project.code}).")
    # Read everything before the transaction, so a slow ShotGrid never holds row locks.
    in_project = [["project", "is", link]]
    sg_sequences = sg.find("Sequence", in_project, SEQUENCE_FIELDS, order=BY_ID)
    sg_shots = sg.find("Shot", in_project, SHOT_FIELDS, order=BY_ID)
    sg_assets = sg.find("Asset", in_project, ASSET_FIELDS, order=BY_ID)

    with transaction.atomic():
        # Concurrent syncs of one project would race to create the same rows.
        Project.objects.select_for_update().get(pk=project.pk)
        sequences, counts_sequences = _sync_rows(Sequence, project, sg_sequences, _sequence_values)
        _, counts_shots = _sync_rows(
            Shot, project, sg_shots, lambda found: _shot_values(found, sequences)
        )
        _, counts_assets = _sync_rows(Asset, project, sg_assets, _asset_values)
        counts = {"sequences": counts_sequences, "shots": counts_shots, "assets": counts_assets}
        record(
            actor=actor,
            verb="shotgrid.synced",
            target=project,
            after={"shotgrid_id": project.shotgrid_id, **counts},
        )
    return counts


def create_version(
    *,
    sg,
    project: Project,
    code: str,
    description: str,
    entity_type: str,
    entity_shotgrid_id: int,
    path=None,
) -> int:
    """Create a ShotGrid Version on one of the project's shots, assets or sequences, for review of
    delivered work; returns the Version's id. The entity is looked up first so that a wrong id
    fails here, with a clear message, instead of filing the Version under someone else's shot."""
    link = project_link(project)
    if entity_type not in VERSION_ENTITY_TYPES:
        raise DomainError(
            f"A ShotGrid Version belongs to a {', '.join(VERSION_ENTITY_TYPES)}, not {entity_type!r}."
        )
    entity = {"type": entity_type, "id": entity_shotgrid_id}
    if (
        sg.find_one(entity_type, [["id", "is", entity_shotgrid_id], ["project", "is", link]])
        is None
    ):
        raise DomainError(
            f"ShotGrid has no {entity_type} with id {entity_shotgrid_id} in project {project.code}."
        )
    data = {"project": link, "entity": entity, "code": code, "description": description}
    if path is not None:
        data["sg_path_to_movie"] = str(path)
    return sg.create("Version", data)["id"]


def _sequence_values(found: dict) -> dict:
    return {"code": found["code"], "description": found["description"] or ""}


def _shot_values(found: dict, sequences: dict) -> dict:
    sg_sequence = found["sg_sequence"]
    sequence = sequences.get(sg_sequence["id"]) if sg_sequence else None
    return {
        "code": found["code"],
        "description": found["description"] or "",
        "sequence_id": sequence.pk if sequence else None,
        "status": found["sg_status_list"] or "",
        "frame_in": found["sg_cut_in"],
        "frame_out": found["sg_cut_out"],
    }


def _asset_values(found: dict) -> dict:
    sg_type = (found["sg_asset_type"] or "").strip().lower()
    return {
        "code": found["code"],
        "description": found["description"] or "",
        "asset_type": ASSET_TYPES.get(sg_type, Asset.Type.OTHER),
    }


def _sync_rows(model, project: Project, found_rows: list, values_for) -> tuple[dict, dict]:
    """Create or update one model's rows from ShotGrid records. Returns ({ShotGrid id: row},
    counts). Looks rows up in two queries, not one per record."""
    ids = [found["id"] for found in found_rows]
    linked = {row.shotgrid_id: row for row in model.objects.filter(shotgrid_id__in=ids)}
    by_code = {row.code: row for row in model.objects.filter(project=project)}
    rows, counts = {}, {"created": 0, "updated": 0, "unchanged": 0}
    for found in found_rows:
        values = {**values_for(found), "project_id": project.pk, "shotgrid_id": found["id"]}
        row = linked.get(found["id"]) or by_code.get(values["code"])
        if row is None:
            row = model.objects.create(**values)
            counts["created"] += 1
        else:
            _check_same_entity(row, found, project)
            # A renamed entity frees its old code, which a newer entity may now use.
            by_code.pop(row.code, None)
            if _apply(row, values):
                row.save(update_fields=list(values))
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        by_code[row.code] = rows[found["id"]] = row
    return rows, counts


def _check_same_entity(row, found: dict, project: Project):
    """A row found by code must not already stand for a different ShotGrid entity."""
    if row.shotgrid_id not in (None, found["id"]):
        raise Conflict(
            f"{row._meta.verbose_name.capitalize()} {project.code}/{row.code} is linked to "
            f"ShotGrid id {row.shotgrid_id}, but ShotGrid gives that code to id {found['id']}. "
            "Fix the link in ShotGrid or in the admin, then sync again."
        )


def _apply(row, values: dict) -> bool:
    """Set the values that differ on `row`; True if any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed
