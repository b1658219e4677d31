"""Helpers for the fileops tests: real files in tmp_path, a child Python for kill tests."""

import os
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def write_random(path: Path, size: int) -> bytes:
    """Write `size` random bytes to `path` (creating parents) and return them."""
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def run_child(code: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python that can import pipeline_project (and nothing Django)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


def fileops_threads() -> list[threading.Thread]:
    """fileops' helper threads still alive (there should be none once a call returned)."""
    return [t for t in threading.enumerate() if t.name.startswith("fileops-")]
