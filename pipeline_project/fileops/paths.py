"""Paths the site touches: confined to a root, named safely, never overwriting another file."""

import os
import unicodedata
from pathlib import Path

MAX_NAME_LENGTH = 200
# Characters Windows and SMB shares refuse in a name.
_ILLEGAL = str.maketrans(dict.fromkeys('<>:"/\\|?*', "_"))
# Unicode categories dropped from names: controls, invisible formatting (e.g. the right-to-left
# override that disguises "gpj.exe" as "exe.jpg"), lone surrogates, line/paragraph separators.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# Device names Windows refuses whatever the extension ("CON.txt" too).
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
_MAX_EXTENSION = 16
_MAX_COPIES = 10_000


class PathOutsideRoot(ValueError):
    """A path that resolves (symlinks and `..` included) outside the root it must stay in."""

    def __init__(self, path, root, reason="resolves outside"):
        self.path, self.root = path, root
        super().__init__(f"{os.fspath(path)!s} {reason} {os.fspath(root)!s}")


def confine(path, root) -> Path:
    """The absolute, symlink-free path of `path` if it is `root` or lies inside it.

    `path` is relative to `root` or absolute. Symlinks (in `root` too) and `..` are resolved the
    way the kernel would; the path need not exist, but an existing symlink on the way that
    leads out of `root` (file, folder or dangling) gets it refused with PathOutsideRoot. Use the
    returned path, not the one passed in.
    """
    try:
        real_root = Path(root).resolve()
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = Path(root) / candidate
        real = candidate.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte, ...
        raise PathOutsideRoot(path, root, f"cannot be resolved ({exc}) within") from None
    if real != real_root and real_root not in real.parents:
        raise PathOutsideRoot(path, root)
    return real


def safe_name(name: str) -> str:
    """A file name safe to create on Linux, Windows and SMB shares, from an uploaded name.

    Keeps the last path component only (`/` or `\\`), drops control and invisible formatting
    characters, replaces `<>:"/\\|?*` with `_`, strips leading dots and spaces and trailing dots
    and spaces, prefixes Windows device names (CON, NUL, COM1, ...) with `_`, and caps the name
    at 200 characters (and 200 UTF-8 bytes) keeping the extension. ValueError when nothing
    usable is left (e.g. "", "..", "/").
    """
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    if base and base.strip(". ") == "" and "." in base:
        raise ValueError(f"{name!r} is only dots, which is not a file name")
    base = base.translate(_ILLEGAL).lstrip(". ").rstrip(". ")
    if base.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        base = f"_{base}"
    capped = _cap(*_split_extension(base))
    if not capped:
        raise ValueError(f"{name!r} leaves no usable file name")
    return capped


def _split_extension(name: str) -> tuple[str, str]:
    stem, extension = os.path.splitext(name)
    if not stem or len(extension) > _MAX_EXTENSION or extension.strip(". ") == "":
        return name, ""
    return stem, extension


def _cap(stem: str, extension: str) -> str:
    """stem + extension in at most MAX_NAME_LENGTH characters and UTF-8 bytes ("" if no stem)."""
    stem = stem[: MAX_NAME_LENGTH - len(extension)]
    while len(f"{stem}{extension}".encode()) > MAX_NAME_LENGTH:
        stem = stem[:-1]
    stem = stem.rstrip(". ")
    return f"{stem}{extension}" if stem else ""


def claim_unique(directory, name) -> Path:
    """Create an empty file `name` in `directory`, or `stem (1).ext`, `stem (2).ext`, ... if
    taken, and return its path. Creation is atomic (O_CREAT | O_EXCL), so concurrent uploads
    never get the same file and never overwrite one. `name` must be a plain name (see
    safe_name); `directory` must exist.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name or name != os.path.basename(name):
        raise ValueError(f"{name!r} is not a plain file name")
    directory = Path(directory)
    stem, extension = _split_extension(name)
    for number in range(_MAX_COPIES):
        candidate = directory / (name if number == 0 else f"{stem} ({number}){extension}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{_MAX_COPIES} files named like {name!r} already exist in {directory}")
