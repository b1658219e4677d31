"""Start-up behaviour of settings.py, checked in fresh processes with controlled environments."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def django_check(env_overrides, *args, tmp_path):
    skip = ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update({"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "pipeline_project.settings"})
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_off_without_secret_key_fails_with_a_clear_message(tmp_path):
    result = django_check({"ALLOWED_HOSTS": "pipeline.studio.test"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DEBUG is off and SECRET_KEY is not set" in result.stderr


def test_debug_off_without_allowed_hosts_fails_with_a_clear_message(tmp_path):
    result = django_check({"SECRET_KEY": "x" * 60}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set" in result.stderr


def test_debug_on_runs_with_embedded_defaults(tmp_path):
    result = django_check({"DEBUG": "1"}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_bad_boolean_is_refused(tmp_path):
    result = django_check({"DEBUG": "maybe"}, tmp_path=tmp_path)
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_check_deploy_is_clean_with_a_production_like_environment(tmp_path):
    production = {
        "SECRET_KEY": "k3y-" + "x9Qz!" * 12,
        "ALLOWED_HOSTS": "pipeline.studio.test",
        "HTTPS": "1",
        "SECURE_HSTS_PRELOAD": "1",
        "BEHIND_PROXY": "1",
        "DATABASE_URL": "postgres://pipeline:secret@db.studio.test:5432/pipeline",
        "REDIS_URL": "redis://redis.studio.test:6379/0",
    }
    result = django_check(production, "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SHOTGRID_URL", "SHOTGRID_API_KEY"])
def test_shotgrid_enabled_without_credentials_fails(tmp_path, missing):
    env = {
        "DEBUG": "1",
        "SHOTGRID_ENABLED": "1",
        "SHOTGRID_URL": "https://studio.shotgrid.test",
        "SHOTGRID_SCRIPT_NAME": "pipeline",
        "SHOTGRID_API_KEY": "abc",
    }
    env.pop(missing)
    result = django_check(env, tmp_path=tmp_path)
    assert result.returncode != 0 and "SHOTGRID_ENABLED is on" in result.stderr


def test_an_unknown_readback_mode_stops_the_site_at_start(tmp_path):
    result = django_check({"DEBUG": "1", "FILEOPS_READBACK": "disk"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "FILEOPS_READBACK must be auto, storage or cache, got 'disk'" in result.stderr
    assert (
        django_check({"DEBUG": "1", "FILEOPS_READBACK": "Storage"}, tmp_path=tmp_path).returncode
        == 0
    )
