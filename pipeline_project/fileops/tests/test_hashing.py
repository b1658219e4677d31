import hashlib
import itertools
import os
import tracemalloc

import pytest

from pipeline_project.fileops._pipeline import BUFFER_COUNT, CHUNK_SIZE, PROGRESS_EVERY
from pipeline_project.fileops.hashing import sha256_file

from .helpers import fileops_threads, write_random

MiB = 1 << 20


@pytest.mark.parametrize(
    "size",
    [0, 1, 4095, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 21 * MiB + 3],
)
def test_sha256_file_equals_hashlib(tmp_path, size):
    data = write_random(tmp_path / "f.bin", size)

    assert sha256_file(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()
    assert fileops_threads() == []


def test_sha256_file_reports_progress_up_to_the_size(tmp_path):
    size = 3 * PROGRESS_EVERY + 12345
    write_random(tmp_path / "f.bin", size)
    calls = []

    sha256_file(tmp_path / "f.bin", progress=calls.append)

    assert calls[-1] == size
    assert calls == sorted(calls)
    assert 3 <= len(calls) <= size // PROGRESS_EVERY + 2  # every few MiB, not every chunk
    assert all(b - a >= PROGRESS_EVERY for a, b in itertools.pairwise(calls[:-1]))


def test_sha256_file_keeps_memory_flat(tmp_path):
    size = 48 * MiB
    write_random(tmp_path / "f.bin", size)

    tracemalloc.start()
    try:
        sha256_file(tmp_path / "f.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < max(8 * MiB, 2 * BUFFER_COUNT * CHUNK_SIZE) < size


def test_sha256_file_stops_its_threads_when_progress_raises(tmp_path):
    write_random(tmp_path / "f.bin", 3 * PROGRESS_EVERY)

    def progress(done):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sha256_file(tmp_path / "f.bin", progress=progress)

    assert fileops_threads() == []


def test_sha256_file_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "missing")


def test_sha256_file_refuses_directories_and_fifos_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")

    with pytest.raises(IsADirectoryError):
        sha256_file(tmp_path)
    with pytest.raises(OSError, match="not a regular file"):
        sha256_file(tmp_path / "fifo")
