"""Test fixtures shared by every app: real services started from temp dirs (see RECIPES.md)."""

import os
import shutil

import pytest


def require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") == "1"


def service_missing(reason: str):
    """Skip the test for a missing service or tool, or fail it under REQUIRE_SERVICES=1 (CI)."""
    if require_services():
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_executable(name: str, hint: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        service_missing(f"{name} not installed ({hint})")
    return path
