"""ShotGrid offline: Mockgun with a small hand-written schema (RECIPES.md, "ShotGrid offline").

Mockgun needs the site schema as two pickles shaped like `schema_read()` and
`schema_entity_read()`; none ship with shotgun-api3, so this module writes one that holds the
entities and fields the studio gateway (pipeline_project.studio.shotgrid) reads and writes.
Add fields here when the gateway starts using new ones: Mockgun rejects unknown fields on write.

Fixtures:
- `mockgun`: an empty Mockgun site per test (`mockgun.create(...)`, `mockgun.find(...)`).
- `shotgrid_settings`: ShotGrid switched on in settings, with `shotgun_api3.Shotgun(...)`
  answering with the `mockgun` site, for code that connects through `get_client()`.
"""

import pickle

import pytest
import shotgun_api3
from shotgun_api3.lib import mockgun as mockgun_lib

MOCKGUN_URL = "https://mockgun.studio.test"


def _field(data_type: str, *, valid_types=(), valid_values=(), default=None) -> dict:
    properties = {
        "default_value": {"value": default, "editable": False},
        "valid_types": {"value": list(valid_types), "editable": False},
    }
    if valid_values:
        properties["valid_values"] = {"value": list(valid_values), "editable": False}
    return {"data_type": {"value": data_type, "editable": False}, "properties": properties}


def _link(*entity_types: str) -> dict:
    return _field("entity", valid_types=entity_types)


def _status(*values: str, default: str) -> dict:
    return _field("status_list", valid_values=values, default=default)


def schema() -> dict:
    """The site schema, as `Shotgun.schema_read()` returns it (only what Mockgun looks at)."""
    text, number = _field("text"), _field("number")
    project = _link("Project")
    return {
        "Project": {"id": number, "name": text, "sg_description": text},
        "HumanUser": {"id": number, "name": text, "login": text, "email": text},
        "Sequence": {
            "id": number,
            "code": text,
            "description": text,
            "project": project,
            "sg_status_list": _status("wtg", "ip", "fin", default="wtg"),
        },
        "Shot": {
            "id": number,
            "code": text,
            "description": text,
            "project": project,
            "sg_sequence": _link("Sequence"),
            "sg_status_list": _status("wtg", "rdy", "ip", "hld", "fin", "omt", default="wtg"),
            "sg_cut_in": number,
            "sg_cut_out": number,
        },
        "Asset": {
            "id": number,
            "code": text,
            "description": text,
            "project": project,
            "sg_asset_type": _field(
                "list",
                valid_values=["Character", "Prop", "Environment", "Vehicle", "FX", "Set"],
            ),
            "sg_status_list": _status("wtg", "ip", "fin", default="wtg"),
        },
        "Version": {
            "id": number,
            "code": text,
            "description": text,
            "project": project,
            "entity": _link("Shot", "Asset", "Sequence"),
            "sg_status_list": _status("rev", "vwd", "apr", "na", default="rev"),
            "sg_path_to_movie": text,
            "sg_path_to_frames": text,
            "user": _link("HumanUser"),
        },
        # Mockgun writes one EventLogEntry when it connects.
        "EventLogEntry": {
            "id": number,
            "event_type": text,
            "description": text,
            "project": project,
            "entity": _link("Project", "Sequence", "Shot", "Asset", "Version"),
        },
    }


def schema_entity() -> dict:
    """The entity list, as `Shotgun.schema_entity_read()` returns it."""
    return {
        name: {"name": {"value": name, "editable": False}, "visible": {"value": True}}
        for name in schema()
    }


@pytest.fixture(scope="session")
def mockgun_schema_paths(tmp_path_factory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("mockgun")
    paths = (directory / "schema.pickle", directory / "schema_entity.pickle")
    for path, content in zip(paths, (schema(), schema_entity()), strict=True):
        path.write_bytes(pickle.dumps(content))
    return str(paths[0]), str(paths[1])


@pytest.fixture
def mockgun(mockgun_schema_paths) -> mockgun_lib.Shotgun:
    """An empty in-memory ShotGrid site for one test."""
    mockgun_lib.Shotgun.set_schema_paths(*mockgun_schema_paths)
    return mockgun_lib.Shotgun(MOCKGUN_URL, script_name="pipeline-tests", api_key="not-a-key")


@pytest.fixture
def shotgrid_settings(settings, mockgun, monkeypatch) -> mockgun_lib.Shotgun:
    """ShotGrid enabled in settings; every `shotgun_api3.Shotgun(...)` built with those settings
    gets the `mockgun` site, so management commands and jobs see the test's data."""
    settings.SHOTGRID_ENABLED = True
    settings.SHOTGRID_URL = MOCKGUN_URL
    settings.SHOTGRID_SCRIPT_NAME = "pipeline-tests"
    settings.SHOTGRID_API_KEY = "not-a-key"

    def connect(base_url, script_name=None, api_key=None, **options):
        if (base_url, script_name, api_key) != (MOCKGUN_URL, "pipeline-tests", "not-a-key"):
            raise shotgun_api3.AuthenticationFault(f"unexpected credentials for {base_url}")
        return mockgun

    monkeypatch.setattr(shotgun_api3, "Shotgun", connect)
    return mockgun
