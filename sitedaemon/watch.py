"""watchdog glue: filesystem events go to the detector's inbox, nothing else happens here."""

import errno
import logging
import os

log = logging.getLogger("sitedaemon")

IGNORED_EVENTS = frozenset({"deleted", "opened", "closed_no_write"})


def start_observer(root: str, detector, *, polling: bool, poll_interval: float):
    """Start a watchdog observer on `root` (recursive) feeding `detector`; returns it.

    inotify by default; the polling observer with `polling` (NFS/SMB shares, where inotify
    sees nothing), or when inotify cannot watch the whole tree (too many folders).
    """
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            kind = event.event_type
            if kind in IGNORED_EVENTS:
                return
            path = os.fsdecode(event.dest_path if kind == "moved" else event.src_path)
            if not event.is_directory:
                detector.file_event(path)
            elif kind in ("created", "moved"):
                detector.folder_event(path)  # files moved in with a folder bring no events

    def start(observer):
        observer.schedule(Handler(), root, recursive=True)
        try:
            observer.start()
        except BaseException:
            observer.stop()
            raise
        return observer

    if polling:
        return start(PollingObserver(timeout=poll_interval))
    try:
        return start(Observer())
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EMFILE):
            raise
        log.warning(
            "inotify cannot watch %s (%s: raise fs.inotify.max_user_watches or use --polling);"
            " polling every %s s instead",
            root,
            exc.strerror,
            poll_interval,
        )
        return start(PollingObserver(timeout=poll_interval))


def observer_kind(observer) -> str:
    return "polling" if type(observer).__name__ == "PollingObserver" else "inotify"
