"""SHA-256 of a file: streaming, constant memory, reading overlapped with hashing."""

import hashlib
import os

from ._pipeline import ChunkStream, Progress, advise, open_regular


def sha256_file(path, progress=None) -> str:
    """The hex SHA-256 of the regular file at `path`.

    A helper thread reads ahead into a few preallocated buffers while this thread hashes, so
    memory stays at a few MiB whatever the size. `progress(bytes_done)` is called as it goes
    (every few MiB, and once at the end).
    """
    fd, _ = open_regular(path)
    try:
        return sha256_fd(fd, Progress(progress))
    finally:
        os.close(fd)


def sha256_fd(fd: int, meter: Progress) -> str:
    """The hex SHA-256 of what is left to read from `fd`, counting bytes on `meter`."""
    advise(fd, "POSIX_FADV_SEQUENTIAL")
    digest = hashlib.sha256()
    meter.start()
    with ChunkStream(fd) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            meter.add(len(chunk))
    meter.finish()
    return digest.hexdigest()
