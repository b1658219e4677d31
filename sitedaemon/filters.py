"""Which names in the watch folder are never reported: hidden, temporary and partial files."""

# Suffixes (lower case) of files still being written by a copy tool, browser or editor.
TEMPORARY_SUFFIXES = (
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",  # Chrome
    ".download",  # Safari
    ".opdownload",  # Opera
    ".filepart",  # WinSCP
    ".!sync",  # Resilio / BitTorrent Sync
    ".swp",  # vim
    ".lock",
    "~",
)
# Names (lower case) that operating systems and NAS boxes leave in shared folders.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "@eadir", "$recycle.bin", "lost+found"})


def ignored_name(name: str) -> bool:
    """True for a file or folder name the daemon must skip (and, for a folder, all inside it)."""
    if not name or name[0] in ".~#":  # dot files, Office lock files (~$x.docx), emacs #x#
        return True
    lower = name.lower()
    return lower.endswith(TEMPORARY_SUFFIXES) or lower in JUNK_NAMES


def ignored_path(relative: str) -> bool:
    """True when any component of a watch-folder relative path (`/`-separated) is ignored."""
    return any(ignored_name(part) for part in relative.split("/"))
