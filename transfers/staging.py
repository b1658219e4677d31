"""The staging area: browsing it, expanding a selection to files, storing browser uploads.

Every path goes through `fileops.confine` against STAGING_ROOT; nothing outside it is listed,
read or written.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from pipeline_project.errors import DomainError
from pipeline_project.fileops.paths import PathOutsideRoot, claim_unique, confine, safe_name


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # relative to STAGING_ROOT, with forward slashes
    is_dir: bool
    size: int


def staging_root() -> Path:
    root = Path(settings.STAGING_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def resolve(relative: str) -> Path:
    """A path under STAGING_ROOT, or a DomainError naming the refused path."""
    relative = (relative or "").strip().lstrip("/")
    try:
        return confine(relative or ".", staging_root())
    except PathOutsideRoot:
        raise DomainError(f"{relative!r} is outside the staging area and cannot be used.") from None


def relative_to_root(path: Path) -> str:
    return path.relative_to(staging_root()).as_posix()


def list_dir(relative: str = "") -> list[Entry]:
    """The folder's entries, folders first. Symlinks leading out of staging are left out."""
    directory = resolve(relative)
    if not directory.is_dir():
        raise DomainError(f"{relative or '/'} is not a folder in the staging area.")
    entries = []
    for child in directory.iterdir():
        if child.name.startswith("."):
            continue
        try:
            real = confine(child, staging_root())
        except PathOutsideRoot:
            continue
        is_dir = real.is_dir()
        size = 0 if is_dir else real.stat().st_size
        entries.append(Entry(child.name, relative_to_root(directory / child.name), is_dir, size))
    return sorted(entries, key=lambda e: (not e.is_dir, e.name.lower()))


def expand(paths) -> list[tuple[str, int]]:
    """Expand selected files and folders into (relative path, size) of every file, sorted.

    Refuses the whole selection if any part escapes staging (e.g. a symlink pointing out)."""
    found: dict[str, int] = {}
    for relative in paths:
        target = resolve(relative)
        if not target.exists():
            raise DomainError(f"{relative!r} does not exist in the staging area.")
        if target.is_file():
            found[relative_to_root(target)] = target.stat().st_size
            continue
        for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                candidate = Path(dirpath) / filename
                try:
                    real = confine(candidate, staging_root())
                except PathOutsideRoot:
                    link = relative_to_root(Path(dirpath)) + "/" + filename
                    raise DomainError(
                        f"{link!r} is a link to outside the staging area; remove it or pick "
                        "files individually."
                    ) from None
                if real.is_file():
                    found[relative_to_root(candidate)] = real.stat().st_size
    return sorted(found.items())


def store_upload(upload, folder: str) -> tuple[str, int]:
    """Save an uploaded file into `folder` (relative to staging) under a sanitised name that
    never overwrites another file. Returns (relative path, size)."""
    max_bytes = settings.TRANSFERS_MAX_UPLOAD_MB * 1024 * 1024
    if upload.size is not None and upload.size > max_bytes:
        raise DomainError(
            f"{upload.name!r} is larger than {settings.TRANSFERS_MAX_UPLOAD_MB} MiB; "
            "copy it into the staging area instead."
        )
    raw = upload.name or ""
    if "/" in raw or "\\" in raw or raw.strip() in (".", ".."):
        raise DomainError(
            f"Upload name {raw!r} contains a path; only plain file names are accepted."
        )
    try:
        name = safe_name(raw)
    except ValueError as exc:
        raise DomainError(f"Upload name {upload.name!r} is not usable: {exc}") from None
    directory = resolve(folder)
    directory.mkdir(parents=True, exist_ok=True)
    target = claim_unique(directory, name)
    try:
        with open(target, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return relative_to_root(target), target.stat().st_size


def remove_uploads(relative_paths) -> None:
    """Undo uploads of a request that failed to be created."""
    for relative in relative_paths:
        resolve(relative).unlink(missing_ok=True)
