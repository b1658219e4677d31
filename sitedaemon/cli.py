"""Command line, logging, signals and the threads' lifetime. See sitedaemon/README.md."""

import argparse
import fcntl
import gc
import logging
import os
import re
import signal
import socket
import threading
import time

from . import __version__, logs
from .client import Client
from .daemon import Heartbeat, Outcome, Settings, Worker
from .helper import HashHelper
from .store import Store

log = logging.getLogger("sitedaemon")

EXIT_OK, EXIT_WORK_LEFT, EXIT_USAGE, EXIT_CRASH = 0, 1, 2, 3
STOP_GRACE = 3.0  # seconds the HTTP calls in progress get to finish after SIGTERM
JOIN_TIMEOUT = 10.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sitedaemon",
        description="Watch a folder at a site and report its media files to the orchestrator.",
    )
    p.add_argument("--site", required=True, help="this site's code, e.g. tustin")
    p.add_argument("--watch", required=True, metavar="DIR", help="the folder to watch")
    p.add_argument(
        "--orchestrator", required=True, metavar="URL", help="e.g. https://pipeline.example.com"
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="this site's API key (default: $DAEMON_API_KEY; prefer the variable, "
        "command lines are visible to every user)",
    )
    p.add_argument(
        "--metadata-only", action="store_true", help="register files without uploading them"
    )
    p.add_argument(
        "--polling",
        action="store_true",
        help="poll instead of inotify (NFS/SMB shares, where inotify sees nothing)",
    )
    p.add_argument(
        "--poll-interval",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="how often --polling looks (default 2)",
    )
    p.add_argument(
        "--settle",
        type=_not_negative,
        default=5.0,
        metavar="SECONDS",
        help="report a file once its size and mtime stayed the same this long (default 5)",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="scan, report what has settled, drain the queue and exit: "
        "0 when all was delivered, 1 when work remains",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the queue lives (default $XDG_STATE_HOME or ~/.local/state, "
        "then sitedaemon/SITE)",
    )
    p.add_argument(
        "--heartbeat",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="heartbeat interval (default 30)",
    )
    p.add_argument(
        "--max-backoff",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="longest wait between retries when the orchestrator is unavailable (default 300)",
    )
    p.add_argument(
        "--rescan",
        type=_not_negative,
        default=600.0,
        metavar="SECONDS",
        help="walk the whole folder again this often, in case events were lost; 0: never "
        "(default 600)",
    )
    p.add_argument(
        "--pipeline",
        type=int,
        default=1024,
        metavar="N",
        help="registrations in flight on the connection (HTTP/1.1 pipelining; 1 turns it "
        "off; default 1024)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="first put files that failed for good back in the queue",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO: one line per file",
    )
    p.add_argument("--version", action="version", version=f"sitedaemon {__version__}")
    return p


def _positive(text: str) -> float:
    value = _not_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def settings_from(args, p: argparse.ArgumentParser) -> Settings:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", args.site):
        p.error(f"--site must be a site code (lower-case letters, digits, - and _): {args.site!r}")
    key = args.api_key or os.environ.get("DAEMON_API_KEY", "")
    if not key:
        p.error("no API key: pass --api-key or set DAEMON_API_KEY")
    root = os.path.realpath(args.watch)
    if not os.path.isdir(root):
        p.error(f"--watch {args.watch}: not a folder")
    try:
        Client(args.orchestrator, key)  # checks the URL and the key's characters
    except ValueError as exc:
        p.error(str(exc))
    if args.pipeline < 1:
        p.error("--pipeline must be 1 or more")
    state_dir = args.state_dir or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"),
        "sitedaemon",
        args.site,
    )
    return Settings(
        site=args.site,
        root=root,
        url=args.orchestrator.rstrip("/"),
        api_key=key,
        state_dir=os.path.abspath(state_dir),
        metadata_only=args.metadata_only,
        settle=args.settle,
        heartbeat=args.heartbeat,
        max_backoff=args.max_backoff,
        pipeline=args.pipeline,
        rescan=args.rescan,
        once=args.once,
        hostname=socket.gethostname(),
    )


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    settings = settings_from(args, p)
    # What was imported lives as long as the process: the garbage collector need not look
    # through it again and again (a tenth of the worker's time with thousands of files).
    gc.freeze()
    # Thousands of short-lived dicts and tuples a second, few of them cycles: collect the
    # youngest generation every 50,000 allocations instead of every 700.
    gc.set_threshold(50_000, 20, 20)
    # Before any thread, open file or log line: the helper is forked from this process.
    helper = HashHelper.start()
    try:
        return _main(settings, args, helper)
    finally:
        if helper is not None:
            helper.close()


def _main(settings: Settings, args, helper) -> int:
    logs.configure(args.log_level)
    try:
        os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
        lock = _lock(settings.state_dir)
    except OSError as exc:
        log.error("cannot use state folder %s: %s", settings.state_dir, exc.strerror or exc)
        return EXIT_USAGE
    if lock is None:
        log.error("another sitedaemon is already using %s", settings.state_dir)
        return EXIT_USAGE
    with lock:
        return Run(settings, args, helper).run()


def _lock(state_dir: str):
    handle = open(os.path.join(state_dir, "lock"), "a+")  # noqa: SIM115 (held for the run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Run:
    """One run of the daemon: the threads, the observer and the signals."""

    def __init__(self, settings: Settings, args, helper=None):
        self.s = settings
        self.args = args
        self.stop = threading.Event()
        self.outcome = Outcome()
        self.worker = Worker(settings, stop=self.stop, outcome=self.outcome, helper=helper)

    def _on_signal(self, signum, _frame):
        if not self.stop.is_set():
            log.info("%s: stopping", signal.Signals(signum).name)
        self.stop.set()
        self.worker.wake()

    def run(self) -> int:
        s = self.s
        store = Store(s.store_path)
        try:
            if self.args.retry_failed:
                log.info("put %d failed file(s) back in the queue", store.retry_failed())
            counts = store.counts()
        finally:
            store.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        heartbeat = Heartbeat(s, stop=self.stop)
        observer = None
        if not s.once:
            from .watch import observer_kind, start_observer

            try:
                observer = start_observer(
                    s.root,
                    self.worker,
                    polling=self.args.polling,
                    poll_interval=self.args.poll_interval,
                )
            except OSError as exc:
                log.error("cannot watch %s: %s", s.root, exc.strerror or exc)
                return EXIT_USAGE
        log.info(
            "sitedaemon %s for site %s: %s %s (%s), settle %s s, orchestrator %s%s, state %s;"
            " queue: %s",
            __version__,
            s.site,
            "scanning" if s.once else "watching",
            s.root,
            "once" if s.once else observer_kind(observer),
            f"{s.settle:g}",
            s.url,
            ", metadata only" if s.metadata_only else "",
            s.state_dir,
            _summary(counts),
        )
        worker = start_thread("worker", self.worker.run)
        threads = [worker, start_thread("heartbeat", heartbeat.run)]
        crashed = False
        try:
            while worker.is_alive() and not self.stop.is_set():
                worker.join(0.5)
            crashed = not self.stop.is_set() and not s.once
        finally:
            self.stop.set()
            self.worker.wake()
            if observer is not None:
                observer.stop()
            self._finish(threads, [self.worker.client, heartbeat.client])
            if observer is not None:
                observer.join(JOIN_TIMEOUT)
            if not worker.is_alive():
                self.worker.close()
        if crashed:
            log.error("the worker thread died; exiting so that the service restarts")
            return EXIT_CRASH
        if s.once:
            return self._once_result()
        log.info("stopped")
        return EXIT_OK

    def _finish(self, threads, clients):
        """Give the HTTP calls in progress STOP_GRACE seconds to end, then cut them off (a cut
        registration is simply sent again on the next start); wait for the threads."""
        deadline = time.monotonic() + STOP_GRACE
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for client in clients:
            client.abort()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("the %s thread did not stop in time", thread.name)

    def _once_result(self) -> int:
        store = Store(self.s.store_path)
        try:
            waiting, counts = store.waiting(), store.counts()
        finally:
            store.close()
        o = self.outcome
        if waiting or o.failed or o.unsettled or o.gave_up:
            log.error(
                "work remains: %d waiting, %d failed in this run, %d still changing (queue: %s)",
                waiting,
                o.failed,
                o.unsettled,
                _summary(counts),
            )
            return EXIT_WORK_LEFT
        log.info("all delivered (queue: %s)", _summary(counts))
        return EXIT_OK


def _summary(counts: dict) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "empty"


def start_thread(name, target) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
