import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_project.studio.tests.factories import ProjectFactory

ROOT = Path(__file__).resolve().parents[2]
ROLES = [
    "artist",
    "team_lead",
    "supervisor",
    "line_producer",
    "data_team",
    "it",
    "admin",
    "colorist",
    "engineer",
    "readonly",
    "etl_operator",
]


@pytest.fixture
def roots(settings, tmp_path):
    """Staging, production and quarantine roots of this test, with a staged shot folder."""
    for name in ("STAGING_ROOT", "PRODUCTION_ROOT", "QUARANTINE_ROOT"):
        path = tmp_path / name.split("_")[0].lower()
        path.mkdir()
        setattr(settings, name, path)
    shot = settings.STAGING_ROOT / "sq010" / "sh0010"
    (shot / "renders").mkdir(parents=True)
    (shot / "comp_v3.nk").write_bytes(b"nuke script " * 500)
    (shot / "renders" / "comp_v3.1001.exr").write_bytes(b"\x76\x2f\x31\x01" + b"pixels" * 4000)
    (shot / "renders" / "comp_v3.1002.exr").write_bytes(b"\x76\x2f\x31\x01" + b"pixelz" * 4000)
    settings.AUTO_TRANSFER = True
    settings.TRANSFERS_ALLOW_SELF_APPROVAL = False
    return settings


@pytest.fixture
def people(make_user):
    """One user per studio role, named after it."""
    return {role: make_user(role, username=f"{role}1") for role in ROLES}


@pytest.fixture
def project(db):
    return ProjectFactory(code="dragon")


@pytest.fixture
def sg_shot(roots, shotgrid_settings, project):
    """Shot sh0010 of a ShotGrid project "Dragon" linked to `project`, delivered to inline
    without clamd; the Mockgun entity."""
    roots.JOBS_INLINE, roots.CLAMD_SOCKET, roots.CLAMD_HOST = True, "", ""
    sg_project = shotgrid_settings.create("Project", {"name": "Dragon"})
    shot = shotgrid_settings.create("Shot", {"code": "sh0010", "project": sg_project})
    project.shotgrid_id = sg_project["id"]
    project.save()
    return shot


@pytest.fixture
def new_transfer(roots, people, project):
    from transfers import services

    def make(by=None, paths=("sq010/sh0010",), **kwargs):
        kwargs.setdefault("name", "Comp_sh0010_v3")
        return services.transfer_create(
            by=by or people["artist"], project=project, paths=list(paths), **kwargs
        )

    return make


@pytest.fixture
def rq_worker(settings, redis_url, subprocess_env, roots):
    """Real RQ on Redis; `rq_worker("scanning")` runs a burst worker in a child process that
    shares the test database and roots."""
    settings.JOBS_INLINE = False
    settings.REDIS_URL = redis_url
    settings.RQ_QUEUES = {
        n: {"URL": redis_url, "DEFAULT_TIMEOUT": 600, "ASYNC": True} for n in settings.JOB_QUEUES
    }

    def env():
        # Read at run time: tests change settings (clamd, AUTO_TRANSFER) after this fixture.
        return subprocess_env | {
            "REDIS_URL": redis_url,
            "STAGING_ROOT": str(settings.STAGING_ROOT),
            "PRODUCTION_ROOT": str(settings.PRODUCTION_ROOT),
            "QUARANTINE_ROOT": str(settings.QUARANTINE_ROOT),
            "AUTO_TRANSFER": "1" if settings.AUTO_TRANSFER else "0",
            "CLAMD_SOCKET": settings.CLAMD_SOCKET,
            "CLAMD_HOST": settings.CLAMD_HOST,
            "CLAMD_PORT": str(settings.CLAMD_PORT),
            "SHOTGRID_ENABLED": "0",
            "JOB_STALE_AFTER": str(settings.JOB_STALE_AFTER),
        }

    def command(*queues):
        return [sys.executable, "manage.py", "rqworker", *queues, "--burst", "--with-scheduler"]

    def run(*queues, extra_env=None, check=True):
        result = subprocess.run(
            command(*queues),
            cwd=ROOT,
            env=env() | (extra_env or {}),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, result.stderr[-4000:]
        return result

    run.env, run.command = env, command
    return run
