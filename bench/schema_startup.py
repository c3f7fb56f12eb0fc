"""What ``--schema`` costs a run, and that a run without it pays nothing for it.

    python bench/schema_startup.py [--runs 30] [--rill "CMD …"] [--baseline "CMD …"]

Runs ``rill`` against the fake server's ``fake/schema`` model (a short JSON answer) with and
without ``--schema 'name, age int'``, interleaved run by run, and prints the wall and CPU time
of each whole run (median and minimum; CPU is the child's user + system time, which a busy
machine disturbs less than wall time). ``--baseline`` adds another rill (say, an older checkout's)
run without ``--schema``, to show that the run without it has not moved. Byte code is compiled
first so that ``PYTHONDONTWRITEBYTECODE`` does not make one checkout pay for compiling.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from rill.fake import FakeOpenRouter  # noqa: E402


def _rill() -> str:
    beside = Path(sys.executable).with_name("rill")
    return str(beside) if beside.exists() else shutil.which("rill") or "rill"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--rill", default=_rill())
    p.add_argument("--baseline", help="another rill command line, run without --schema")
    a = p.parse_args()
    compileall.compile_dir(str(HERE.parent / "src"), quiet=1)
    with FakeOpenRouter() as server:
        base = ["--base-url", server.url, "-m", "fake/schema", "--no-history"]
        cmds = {
            "rill, no --schema": [*a.rill.split(), *base, "hi"],
            "rill --schema 'name, age int'": [
                *a.rill.split(),
                *base,
                "--schema",
                "name, age int",
                "hi",
            ],
        }
        if a.baseline:
            cmds = {"baseline, no --schema": [*a.baseline.split(), *base, "hi"], **cmds}
        env = dict(os.environ, OPENROUTER_API_KEY=server.api_key)
        wall: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        items = list(cmds.items())
        for i in range(a.runs):
            for name, argv in items[i % len(items) :] + items[: i % len(items)]:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
                wall[name].append((time.perf_counter() - t0) * 1000)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0:
                    raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr.decode()}")
                used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                cpu[name].append(used * 1000)
    print(f"load average: {os.getloadavg()[0]:.2f}; {a.runs} runs each, interleaved")
    print("| run | wall median ms | wall min ms | CPU median ms | CPU min ms |")
    print("|---|---|---|---|---|")
    for name in cmds:
        w, c = wall[name], cpu[name]
        print(
            f"| {name} | {statistics.median(w):.0f} | {min(w):.0f} "
            f"| {statistics.median(c):.0f} | {min(c):.0f} |"
        )


if __name__ == "__main__":
    main()
