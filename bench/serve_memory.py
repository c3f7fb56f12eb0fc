"""What ``rill serve`` keeps per request: the real command runs under ``tracemalloc`` (started by
a small wrapper that also dumps a snapshot on SIGUSR1), clients send gateway requests, and the
Python allocations alive after ``--requests`` more requests are compared with those alive
before, by traceback, with the server's RSS at each point.

    python bench/serve_memory.py                       # 3,000 requests, history on
    python bench/serve_memory.py --requests 6000 --no-history

RSS shows that memory grows; this shows where: the allocation sites at the top of the list, with
a size or count that grows with ``--requests``, are what is kept per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import rss_kib, start_serve, stream_once  # noqa: E402
from server import BenchServer  # noqa: E402

#: Runs ``rill serve`` with tracemalloc on; SIGUSR1 writes a snapshot to the next numbered file.
WRAPPER = """
import gc, signal, sys, tracemalloc
tracemalloc.start(int(sys.argv[1]))
prefix, taken = sys.argv[2], []
def dump(signum, frame):
    gc.collect()
    tracemalloc.take_snapshot().dump(f"{prefix}{len(taken)}")
    taken.append(1)
    open(f"{prefix}{len(taken) - 1}.done", "w").close()
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["rill", *sys.argv[3:]]
from rill.__main__ import main
main()
"""


async def drive(port: int, requests: int, clients: int, events: int) -> None:
    left = [requests]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            await stream_once("127.0.0.1", port, "/v1/chat/completions", events)

    await asyncio.gather(*(client() for _ in range(clients)))


def snapshot(proc: subprocess.Popen[bytes], path: str) -> tuple[tracemalloc.Snapshot, int]:
    time.sleep(0.5)  # the last answers are saved after their clients have read them
    proc.send_signal(signal.SIGUSR1)
    while not Path(f"{path}.done").exists():
        time.sleep(0.05)
    return tracemalloc.Snapshot.load(path), rss_kib(proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--frames", type=int, default=15, help="traceback depth kept")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--no-history", action="store_true")
    args = parser.parse_args()

    with BenchServer() as upstream, tempfile.TemporaryDirectory() as home:
        upstream.add_paced("soak", args.events, 0.001)
        prefix = os.path.join(home, "snapshot-")
        proc, _host, port = start_serve(
            upstream.base_url("soak", "serve"),
            home,
            not args.no_history,
            launcher=[sys.executable, "-c", WRAPPER, str(args.frames), prefix],
        )
        try:
            asyncio.run(drive(port, args.warmup, args.clients, args.events))
            before, rss_before = snapshot(proc, f"{prefix}0")
            began = time.monotonic()
            asyncio.run(drive(port, args.requests, args.clients, args.events))
            took = time.monotonic() - began
            after, rss_after = snapshot(proc, f"{prefix}1")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    grown = sum(s.size_diff for s in diff)
    history = "off" if args.no_history else "on"
    print(
        f"{args.requests} requests ({args.clients} clients, {args.events} events each, history "
        f"{history}) in {took:.1f} s: {grown / 1024:+.1f} KiB more allocated "
        f"({grown / args.requests:+.1f} B/request); RSS {rss_before / 1024:.1f} -> "
        f"{rss_after / 1024:.1f} MiB"
    )
    print("\ngrowing allocation sites:")
    for stat in diff[: args.top]:
        if stat.size_diff <= 0:
            break
        print(f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
        for line in stat.traceback.format(most_recent_first=True):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
