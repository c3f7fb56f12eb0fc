"""Benchmark: peak memory of ``rill -a`` sending a large PDF.

A file is read once and its base64 exists only a piece at a time, while the body is sent, so
attaching a file should cost about its own size, not several copies of its base64. This runs
the installed ``rill`` as a subprocess against ``rill fake-server`` (another process: a child's
``ru_maxrss`` starts from its parent's size at the fork, so this process stays small) and reads
each run's peak resident set (``ru_maxrss`` of the child, from ``os.wait4``):

- ``baseline``: the same prompt without an attachment;
- ``attach``: ``-a FILE`` with history (the file is also stored under the history folder);
- ``attach --no-history``: ``-a FILE``, nothing stored;
- ``continue``: ``-c`` after the file was deleted (sent again from history's copy);
- ``dry run``: ``--dry-run -a FILE`` (nothing sent).

The target: the peak over the baseline at most 3x the file's size. Linux only.

    python bench/attach_memory.py [--mb 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_BESIDE = Path(sys.executable).with_name("rill")
RILL = [str(_BESIDE)] if _BESIDE.exists() else [shutil.which("rill") or "rill"]


def peak_kib(args: list[str], env: dict[str, str]) -> int:
    """Run rill; its peak resident set in KiB. A failed run stops the benchmark."""
    proc = subprocess.Popen(
        [*RILL, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"rill {' '.join(args)} exited {code}")
    return int(usage.ru_maxrss)


def make_pdf(path: Path, size: int) -> None:
    """A file of ``size`` bytes that starts like a PDF; the rest is incompressible."""
    with path.open("wb") as out:
        out.write(b"%PDF-1.7\n")
        left = size - 9
        while left > 0:
            piece = os.urandom(min(left, 1 << 20))
            out.write(piece)
            left -= len(piece)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="file size in MB (10^6 bytes)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each; the median is shown")
    opts = parser.parse_args()
    size = int(opts.mb * 1_000_000)
    server = subprocess.Popen(
        [*RILL, "fake-server", "--port", "0", "--no-auth"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()  # the fake server prints its base URL first
        return measure(url, size, opts.runs)
    finally:
        server.terminate()
        server.wait(10)


def measure(url: str, size: int, runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pdf = folder / "big.pdf"
        make_pdf(pdf, size)
        env = {
            **os.environ,
            "RILL_HOME": str(folder / "home"),
            "OPENROUTER_API_KEY": "sk-or-v1-bench",
            "NO_PROXY": "127.0.0.1",
        }
        common = ["--base-url", url, "-m", "test/m"]
        cases: list[tuple[str, list[str]]] = [
            ("baseline", [*common, "--no-history", "read this"]),
            ("attach", [*common, "-a", str(pdf), "read this"]),
            ("attach --no-history", [*common, "--no-history", "-a", str(pdf), "read this"]),
            ("dry run", [*common, "--dry-run", "-a", str(pdf), "read this"]),
        ]
        results: dict[str, list[int]] = {name: [] for name, _ in cases}
        results["continue (file deleted)"] = []
        for _ in range(runs):
            for name, args in cases:
                results[name].append(peak_kib(args, env))
            moved = pdf.rename(folder / "moved.pdf")
            results["continue (file deleted)"].append(peak_kib([*common, "-c", "more"], env))
            moved.rename(pdf)
        base = sorted(results["baseline"])[len(results["baseline"]) // 2]
        mib = size / (1 << 20)
        print(f"file: {size:,} bytes ({mib:.1f} MiB); runs: {runs}; median peak RSS")
        print(f"{'case':<26}{'peak MiB':>10}{'over base MiB':>15}{'x file':>8}")
        worst = 0.0
        for name, values in results.items():
            peak = sorted(values)[len(values) // 2]
            over = (peak - base) / 1024
            ratio = over / mib
            if name != "baseline":
                worst = max(worst, ratio)
            print(f"{name:<26}{peak / 1024:>10.1f}{over:>15.1f}{ratio:>8.2f}")
        print(f"target: at most 3.00x the file over the baseline; worst {worst:.2f}x")
        return 0 if worst <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
