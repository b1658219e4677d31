"""Benchmark the file engine against the command-line tools it replaces (issue 3, "Performance").

    .venv/bin/python bench/bench_fileops.py [--size-mib 1024] [--repeat 3] [--dir DIR]

1. sha256_file vs `openssl dgst -sha256` on the same file (warm cache): wall-time ratio, target
   <= 1.0x; peak RSS of a fresh child that only imports fileops and hashes, target <= 64 MiB.
2. copy_verified vs `cp SRC DST` + `openssl dgst -sha256 SRC` + `openssl dgst -sha256 DST` run
   one after another: ratio, target <= 0.8x, for the default read-back (FILEOPS_READBACK=auto:
   through the page cache on a local disk, from the server on a network share); the read-back
   from storage (readback="storage") is measured too and printed for information. Peak RSS of
   copy_verified in a child, for a file a quarter of the size and for the full size: flat
   (within 8 MiB) and <= 64 MiB.
Each measurement is the best of --repeat runs, the contenders' runs interleaved so background
load hits both alike; dirty pages are synced (untimed) before every timed copy.
Exit status 1 when a target is missed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline_project.fileops.copy import copy_verified, readback_mode  # noqa: E402
from pipeline_project.fileops.hashing import sha256_file  # noqa: E402

MiB = 1 << 20
RSS_LIMIT_MIB = 64
FLAT_TOLERANCE_MIB = 8

# Children report the peak RSS of their own image: VmHWM (Linux) rather than ru_maxrss, which
# Linux carries over from the forking parent across exec (it would report the bench's own size).
PEAK = """
import resource
def peak_kib():
    try:
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""
HASH_CHILD = (
    PEAK
    + """
import sys
from pipeline_project.fileops.hashing import sha256_file
sha256_file(sys.argv[1])
print(peak_kib())
"""
)
COPY_CHILD = (
    PEAK
    + """
import sys
from pipeline_project.fileops.copy import copy_verified
copy_verified(sys.argv[1], sys.argv[2])
print(peak_kib())
"""
)
IMPORT_CHILD = (
    PEAK
    + """
import pipeline_project.fileops.copy, pipeline_project.fileops.hashing
print(peak_kib())
"""
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="test file size (1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (best kept)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the test files")
    args = parser.parse_args()
    for tool in ("openssl", "cp"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="fileops-bench-", dir=args.dir or default_dir()))
    try:
        rows = run(workdir, args.size_mib * MiB, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    sys.exit(0 if all(row[3] is not False for row in rows) else 1)


def default_dir() -> Path:
    """The system temp dir if it is on the same disk as the project (and not tmpfs), else
    bench/ itself: the point is to measure the disk the project's files live on."""
    temp = Path(tempfile.gettempdir())
    if os.stat(temp).st_dev == os.stat(REPO_ROOT).st_dev:
        return temp
    return Path(__file__).resolve().parent


def run(workdir: Path, size: int, repeat: int) -> list[tuple]:
    src, small = workdir / "source.bin", workdir / "source-quarter.bin"
    print(f"Writing {size // MiB} MiB of random data to {workdir} ...", flush=True)
    write_random(src, size)
    write_random(small, max(size // 4, MiB))
    os.sync()
    sha256_file(src)  # warm the page cache
    subprocess.run(["openssl", "dgst", "-sha256", str(src)], capture_output=True, check=True)
    return [*bench_hash(src, size, repeat), *bench_copy(workdir, src, small, size, repeat)]


def write_random(path: Path, size: int):
    with open(path, "wb") as out:
        for offset in range(0, size, 8 * MiB):
            out.write(os.urandom(min(8 * MiB, size - offset)))


def bench_hash(src: Path, size: int, repeat: int) -> list[tuple]:
    print("Hashing: sha256_file vs openssl dgst -sha256 ...", flush=True)
    ours, theirs = [], []
    digests = set()
    for _ in range(repeat):
        ours.append(timed(lambda: digests.add(sha256_file(src))))
        theirs.append(timed(lambda: digests.add(openssl_sha256(src))))
    if len(digests) != 1:
        sys.exit(f"sha256_file and openssl disagree: {digests}")
    rss = child_rss_mib(HASH_CHILD, src)
    ratio = min(ours) / min(theirs)
    imported = child_rss_mib(IMPORT_CHILD)
    return [
        ("sha256_file time", f"{min(ours):.3f} s", f"openssl {min(theirs):.3f} s",
         ratio <= 1.0, f"{ratio:.2f}x (target <= 1.00x)"),
        ("sha256_file peak RSS", f"{rss:.1f} MiB", f"{size // MiB} MiB file",
         rss <= RSS_LIMIT_MIB, f"target <= {RSS_LIMIT_MIB} MiB; bare import {imported:.1f} MiB"),
    ]  # fmt: skip


def bench_copy(workdir: Path, src: Path, small: Path, size: int, repeat: int) -> list[tuple]:
    print("Copying: copy_verified vs cp + openssl (src) + openssl (dst) ...", flush=True)
    dst = workdir / "copy.bin"
    ours, from_storage, theirs = [], [], []
    for _ in range(repeat):
        fresh(dst)
        ours.append(timed_copy_verified(src, dst))
        fresh(dst)
        from_storage.append(timed_copy_verified(src, dst, readback="storage"))
        fresh(dst)
        theirs.append(timed(lambda: shell_copy_and_hash(src, dst)))
    fresh(dst)
    rss_small = child_rss_mib(COPY_CHILD, small, workdir / "copy-small.bin")
    rss_full = child_rss_mib(COPY_CHILD, src, dst)
    fresh(dst)
    best, copy_pass = min(ours)
    ratio = best / min(theirs)
    storage_best, storage_copy = min(from_storage)
    storage_ratio = storage_best / min(theirs)
    mode = readback_mode(workdir)
    flat = rss_full - rss_small <= FLAT_TOLERANCE_MIB and rss_full <= RSS_LIMIT_MIB
    print(
        f"  copy_verified runs: {', '.join(f'{t:.2f}' for t, _ in ours)} s (read back: {mode}); "
        f"from storage: {', '.join(f'{t:.2f}' for t, _ in from_storage)} s; "
        f"reference runs: {', '.join(f'{t:.2f}' for t in theirs)} s"
    )
    small_mib, storage_read = small.stat().st_size // MiB, cold_read(src)
    return [
        ("copy_verified time", f"{best:.3f} s", f"cp+2x openssl {min(theirs):.3f} s",
         ratio <= 0.8, f"{ratio:.2f}x (target <= 0.80x); default read-back here: {mode}"),
        ("  of which copy+fsync", f"{copy_pass:.3f} s", "", None, "copying, hashing, writeback"),
        ("  of which read-back", f"{best - copy_pass:.3f} s", "", None,
         f"hash of the copy read back ({mode})"),
        ("copy_verified, storage", f"{storage_best:.3f} s", f"cp+2x openssl {min(theirs):.3f} s",
         None, f"{storage_ratio:.2f}x with readback=storage (for information)"),
        ("  of which copy+fsync", f"{storage_copy:.3f} s", "", None, "copying, hashing, writeback"),
        ("  of which read-back", f"{storage_best - storage_copy:.3f} s",
         f"storage read {storage_read:.3f} s", None,
         "hash of the copy read from storage; reference: cold read of the source"),
        ("copy_verified peak RSS", f"{rss_full:.1f} MiB", f"{small_mib} MiB: {rss_small:.1f} MiB",
         flat, f"flat within {FLAT_TOLERANCE_MIB} MiB, <= {RSS_LIMIT_MIB} MiB"),
    ]  # fmt: skip


def timed_copy_verified(src: Path, dst: Path, readback=None) -> tuple[float, float]:
    """(total seconds, seconds until the read-back started)."""
    marks = {}
    start = time.perf_counter()

    def progress(phase, done, total):
        marks.setdefault(phase, time.perf_counter() - start)

    copy_verified(src, dst, progress=progress, readback=readback)
    return time.perf_counter() - start, marks["verify"]


def cold_read(path: Path) -> float:
    """Seconds to read `path` from storage (cache dropped), no hashing; re-warms it after."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        buffer = bytearray(4 * MiB)
        elapsed = timed(lambda: all(iter(lambda: os.readv(fd, [buffer]), 0)))
    finally:
        os.close(fd)
    sha256_file(path)
    return elapsed


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def fresh(dst: Path):
    """No destination, and no dirty pages of earlier runs for the next one to pay for."""
    dst.unlink(missing_ok=True)
    os.sync()


def openssl_sha256(path: Path) -> str:
    output = subprocess.run(
        ["openssl", "dgst", "-sha256", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return output.rsplit("=", 1)[1].strip()


def shell_copy_and_hash(src: Path, dst: Path):
    subprocess.run(["cp", str(src), str(dst)], check=True)
    if openssl_sha256(src) != openssl_sha256(dst):
        sys.exit("cp produced a different file")


def child_rss_mib(code: str, *args) -> float:
    """Peak RSS (MiB) of a fresh Python running `code`, which prints it in KiB."""
    child = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout.split()[-1]) / 1024


def print_table(rows: list[tuple]):
    print()
    print(
        f"CPUs: {os.cpu_count()}   load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    headers = ("measure", "fileops", "reference", "result", "")
    verdicts = {True: "PASS", False: "FAIL", None: ""}
    table = [headers] + [(m, ours, ref, verdicts[ok], note) for m, ours, ref, ok, note in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for index, row in enumerate(table):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    main()
