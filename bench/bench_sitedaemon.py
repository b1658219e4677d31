"""Benchmark the site daemon against `find | xargs openssl dgst` (issue 4, "Performance").

    .venv/bin/python bench/bench_sitedaemon.py [--files 10000] [--repeat 3] [--dir DIR]

Creates --files small files (random sizes, 1-64 KiB) in a fresh temp folder, warms the page
cache, then measures in the same run, interleaved, best of --repeat:

(a) the daemon finding, hashing and reporting all of them:
    python -m sitedaemon --once --metadata-only --settle 0 (a fresh queue each time), against
    the fake orchestrator (sitedaemon/tests/fake_orchestrator.py) running in this process,
    HTTP/1.1 with keep-alive; every file must be registered once with its right hash;
(b) find DIR -type f -print0 | xargs -0 openssl dgst -sha256 > /dev/null

The daemon's modules are byte-compiled first, as an installed daemon's are (pip compiles them;
a checkout run once has them): with PYTHONDONTWRITEBYTECODE set, as on the project's machines,
every start would otherwise compile them again (30 ms of a 0.4 s reference).

It prints both times and the ratio a/b, target <= 2.0 (PASS/FAIL; exit status 1 on FAIL).
The fake orchestrator runs on the same machine and its CPU time is printed too: on a small
machine it competes with the daemon for the cores, which (b) does not have to.
"""

import argparse
import compileall
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sitedaemon.tests.fake_orchestrator import FakeOrchestrator  # noqa: E402

TARGET = 2.0
KEY = "bench-key"
KiB = 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to create the files (default: temp)")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    for tool in ("find", "xargs", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed for the reference measurement")

    for package in ("sitedaemon", "pipeline_project/fileops"):  # into __pycache__ (gitignored)
        compileall.compile_dir(REPO_ROOT / package, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="bench-sitedaemon-", dir=args.dir or _temp_parent()))
    try:
        folder = work / "watch"
        rng = random.Random(args.seed)  # noqa: S311 (test data, not secrets)
        expected, total = _make_files(folder, args.files, rng)
        _openssl(folder)  # warm the page cache for both contenders
        daemon_runs, openssl_runs = [], []
        for run in range(args.repeat):
            daemon_runs.append(_daemon(folder, work / f"state-{run}", expected))
            openssl_runs.append(_openssl(folder))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = min(daemon_runs, key=lambda r: r["seconds"])
    reference = min(openssl_runs)
    ratio = best["seconds"] / reference
    median = statistics.median(r["seconds"] for r in daemon_runs) / statistics.median(openssl_runs)
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"{args.files} files, {total / 2**20:.0f} MiB, {args.repeat} interleaved run(s) each\n"
        f"{'measure':<40} {'best':>6}   runs\n"
        f"{'(a) sitedaemon --once --metadata-only':<40} {best['seconds']:>5.2f}s   "
        f"{_runs(r['seconds'] for r in daemon_runs)}\n"
        f"{'(b) find | xargs openssl dgst -sha256':<40} {reference:>5.2f}s   "
        f"{_runs(openssl_runs)}\n"
        f"ratio a/b {ratio:.2f} (best of each; medians: {median:.2f}), target <= {TARGET:.1f}: "
        f"{verdict}\n"
        f"daemon CPU {best['daemon_cpu']:.2f} s (user+sys, with its hash helper); fake "
        f"orchestrator CPU {best['server_cpu']:.2f} s, on the same {os.cpu_count()} core(s)\n"
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return 0 if verdict == "PASS" else 1


def _runs(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def _temp_parent() -> str | None:
    """The system temp dir if it is a real disk (not tmpfs), else bench/ (like bench_fileops)."""
    temp = tempfile.gettempdir()
    try:
        with open("/proc/mounts") as mounts:
            best = ""
            kind = ""
            for line in mounts:
                _device, point, fstype, *_ = line.split()
                if temp.startswith(point) and len(point) > len(best):
                    best, kind = point, fstype
        if kind == "tmpfs":
            return str(REPO_ROOT / "bench")
    except OSError:
        pass
    return None


def _make_files(folder: Path, count: int, rng: random.Random) -> tuple[dict[str, str], int]:
    """`count` files of 1-64 KiB in folders of 500: ({relative path: sha256}, total bytes)."""
    expected, total = {}, 0
    for number in range(count):
        relative = f"reel_{number // 500:03d}/clip_{number:05d}.mov"
        data = rng.randbytes(rng.randint(1 * KiB, 64 * KiB))
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[relative] = hashlib.sha256(data).hexdigest()
        total += len(data)
    return expected, total


def _openssl(folder: Path) -> float:
    """find FOLDER -type f -print0 | xargs -0 openssl dgst -sha256 > /dev/null"""
    started = time.perf_counter()
    find = subprocess.Popen(["find", str(folder), "-type", "f", "-print0"], stdout=subprocess.PIPE)
    xargs = subprocess.run(
        ["xargs", "-0", "openssl", "dgst", "-sha256"], stdin=find.stdout, stdout=subprocess.DEVNULL
    )
    find.stdout.close()
    if find.wait() or xargs.returncode:
        sys.exit("the reference pipeline failed")
    return time.perf_counter() - started


def _daemon(folder: Path, state: Path, expected: dict[str, str]) -> dict:
    fake = FakeOrchestrator(keys={KEY: "bench"}).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
        env["DAEMON_API_KEY"] = KEY
        command = [
            sys.executable,
            "-m",
            "sitedaemon",
            "--site",
            "bench",
            "--watch",
            str(folder),
            "--orchestrator",
            fake.url,
            "--state-dir",
            str(state),
            "--once",
            "--metadata-only",
            "--settle",
            "0",
        ]
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = time.process_time()
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seconds = time.perf_counter() - started
        server_cpu = time.process_time() - server_before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            sys.exit(f"the daemon failed ({result.returncode}):\n{result.stderr.decode()[-2000:]}")
        got = {r["body"]["path"]: r["body"]["sha256"] for r in fake.registrations}
        if got != expected or len(fake.registrations) != len(expected):
            sys.exit(
                f"wrong registrations: {len(fake.registrations)} requests, "
                f"{sum(got.get(p) == h for p, h in expected.items())} of {len(expected)} right"
            )
    finally:
        fake.stop()
    return {
        "seconds": seconds,
        "server_cpu": server_cpu,
        "daemon_cpu": (children.ru_utime - children_before.ru_utime)
        + (children.ru_stime - children_before.ru_stime),
    }


if __name__ == "__main__":
    sys.exit(main())
