"""Benchmark: ``rill batch`` throughput against the fake server, with a fixed latency per item.

The fake OpenRouter server (``rill.fake``, in this process) answers every request after
``--delay`` seconds (default 50 ms, ``Scenario(delay_headers=...)``) with a short streamed answer.
For each ``-j`` value, ``rill batch`` runs ``--items`` prompts (default 1,000) as a subprocess
and the wall time is compared with the ideal ``items × delay / jobs``. ``startup`` is the wall time
of the same command on an empty input (interpreter start, imports, settings), so ``batch`` =
wall − startup is the time the items themselves took. Every run must exit 0 with one line per item
and exactly one request per item at the server.

    python bench/batch_bench.py [--items 1000] [--delay 0.05] [--jobs 8 32] [--history] [--repeat 1]

``--history`` records every item in history (a temporary ``RILL_HOME``), as a real run does;
without it the runs use ``--no-history``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rill.fake import FakeOpenRouter, Scenario  # noqa: E402 - needs the path above

_EXE = shutil.which("rill")
RILL = [_EXE] if _EXE else [sys.executable, "-m", "rill"]


def _inputs(n: int) -> bytes:
    return b"".join(json.dumps({"id": i, "prompt": f"item {i}"}).encode() + b"\n" for i in range(n))


def _run(server: FakeOpenRouter, data: bytes, jobs: int, history: bool) -> tuple[float, bytes]:
    args = [*RILL, "batch", "-j", str(jobs), "--base-url", server.url]
    if not history:
        args.append("--no-history")
    started = time.perf_counter()
    done = subprocess.run(args, input=data, capture_output=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rill batch -j {jobs} exited {done.returncode}: {done.stderr.decode()}")
    return wall, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per item")
    parser.add_argument("--jobs", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--history", action="store_true", help="record items in history")
    parser.add_argument("--repeat", type=int, default=1, help="runs per -j value (best kept)")
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="rill-batch-bench-")
    data = _inputs(args.items)
    with FakeOpenRouter() as server:
        os.environ.update(
            RILL_HOME=home, OPENROUTER_API_KEY=server.api_key, NO_PROXY="127.0.0.1,localhost"
        )
        for name in ("RILL_MODEL", "RILL_BASE_URL"):
            os.environ.pop(name, None)
        startup = min(_run(server, b"", 1, args.history)[0] for _ in range(3))
        mode = "history on" if args.history else "--no-history"
        print(
            f"rill batch: {args.items} items, {args.delay * 1000:g} ms each, {mode}; "
            f"startup {startup:.3f} s"
        )
        print(
            f"{'jobs':>5} {'ideal s':>8} {'wall s':>8} {'batch s':>8} {'ratio':>6} {'items/s':>8}"
        )
        for jobs in args.jobs:
            best = None
            for _ in range(args.repeat):
                server.reset()
                server.default_scenario = Scenario(content=["ok"], delay_headers=args.delay)
                wall, out = _run(server, data, jobs, args.history)
                lines = out.count(b"\n")
                requests = len(server.chat_requests)
                if lines != args.items or requests != args.items:
                    raise SystemExit(f"-j {jobs}: {lines} lines, {requests} requests")
                best = wall if best is None else min(best, wall)
            assert best is not None
            ideal = args.items * args.delay / jobs
            work = best - startup
            print(
                f"{jobs:>5} {ideal:>8.3f} {best:>8.3f} {work:>8.3f} {work / ideal:>6.2f} "
                f"{args.items / work:>8.1f}"
            )
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
