"""Micro-benchmarks of the history recorder: the cost of ``add`` (one per network read) and of
many threads finishing at once (``rill batch -j 64``).

    python bench/history_add_bench.py add [--adds 100000]
    python bench/history_add_bench.py finish [--threads 64] [--per-thread 8] [--fsync-ms 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    from rill.history import ExchangeStart, HistoryStore
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rill.history import ExchangeStart, HistoryStore


def _start() -> ExchangeStart:
    return ExchangeStart(
        chat_id=None,
        messages=[{"role": "user", "content": "benchmark"}],
        requested_model="bench/model",
        request={},
        base_url="http://127.0.0.1",
    )


def bench_add(adds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "history", warn=print)
        recorder = store.begin(_start())
        piece = "token text, "  # a typical delta
        began = time.perf_counter()
        for _ in range(adds):
            recorder.add(piece)
        added = time.perf_counter() - began
        recorder.finish({})
        total = time.perf_counter() - began
    print(
        f"add: {adds} adds in {added:.3f} s = {added / adds * 1e6:.2f} us/add; "
        f"with finish {total:.3f} s"
    )


def _count_fsyncs(latency: float) -> list[int]:
    """Count fsync calls; each also sleeps ``latency`` seconds (a disk whose cache flush costs
    that much: this machine's virtual disk flushes in about 0.1 ms)."""
    calls = [0]
    real = os.fsync

    def fsync(fd: int) -> None:
        calls[0] += 1
        real(fd)
        if latency:
            time.sleep(latency)

    os.fsync = fsync
    return calls


def bench_finish(threads: int, per_thread: int, latency: float) -> None:
    calls = _count_fsyncs(latency)
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "history", warn=print)
        barrier = threading.Barrier(threads)

        def work() -> None:
            recorders = [store.begin(_start()) for _ in range(per_thread)]
            for recorder in recorders:
                recorder.add("an answer")
            barrier.wait()
            for recorder in recorders:
                recorder.finish({"content": "an answer", "usage": {"total_tokens": 3}})

        workers = [threading.Thread(target=work) for _ in range(threads)]
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        fsyncs = calls[0]
        elapsed = time.perf_counter() - began
        count = threads * per_thread
    print(
        f"finish: {threads} threads x {per_thread} = {count} begin+finish in {elapsed:.2f} s "
        f"= {count / elapsed:.0f}/s; {fsyncs} fsyncs ({latency * 1000:g} ms added to each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["add", "finish"])
    parser.add_argument("--adds", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--per-thread", type=int, default=8)
    parser.add_argument("--fsync-ms", type=float, default=0.0, help="added to every fsync")
    args = parser.parse_args()
    if args.what == "add":
        bench_add(args.adds)
    else:
        bench_finish(args.threads, args.per_thread, args.fsync_ms / 1000)


if __name__ == "__main__":
    main()
