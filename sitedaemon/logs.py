"""Logging set-up: one line per record on stderr, written in batches.

A busy daemon logs a line per file, thousands a second: writing each line with its own system
call (as logging.StreamHandler does) costs more than registering the file, and each call
hands the interpreter lock to another thread. Lines are kept for at most FLUSH_SECONDS (or
FLUSH_LINES) and then written together; warnings and errors go out at once.
"""

import logging
import sys
import threading
import time

FLUSH_SECONDS = 0.2
FLUSH_LINES = 512


class BatchingHandler(logging.Handler):
    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stderr
        self._lines: list[str] = []
        self._oldest = 0.0
        self._timer: threading.Timer | None = None

    def emit(self, record):
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        now = time.monotonic()
        with self.lock:  # Handler.handle holds it already; RLock
            if not self._lines:
                self._oldest = now
            self._lines.append(line)
            if (
                record.levelno >= logging.WARNING
                or len(self._lines) >= FLUSH_LINES
                or now - self._oldest >= FLUSH_SECONDS
            ):
                self._write()
            elif self._timer is None:
                self._timer = threading.Timer(FLUSH_SECONDS, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self):
        with self.lock:
            self._write()

    def _write(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def close(self):
        self.flush()
        super().close()


class LineFormatter(logging.Formatter):
    """`time LEVEL message`, with the prefix on every line of a multi-line message (the
    worker logs one line per file, a batch of files per record)."""

    def __init__(self):
        super().__init__()
        self._second, self._stamp = None, ""

    def format(self, record):
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        prefix = f"{self._stamp},{int(record.msecs):03d} {record.levelname} "
        text = prefix + record.getMessage().replace("\n", "\n" + prefix)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str) -> BatchingHandler:
    # The logging HOWTO's optimisations: no caller lookup, thread or process names per record.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchingHandler()
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
