"""``rill serve`` under load: added per-event latency for many concurrent streaming clients, and
its memory over a soak of repeated requests.

    python bench/serve_bench.py                      # 50 clients, 3 rounds, 60 s soak
    python bench/serve_bench.py --soak 600           # the 10-minute soak

The upstream is ``bench/server.py``'s paced route: ``--events`` content chunks ``--interval``
seconds apart, each carrying its own send time (``monotonic_ns``, system-wide on Linux). Each
round starts ``--clients`` streaming clients at once, first straight against that server
(*direct*), then through ``rill serve``'s ``POST /v1/chat/completions`` (*served*, history on, in a
temporary ``RILL_HOME``). A client records when each event's line arrives; arrival − send is that
event's latency, and the served percentiles minus the direct ones are what the server adds. Every
client must get every event, in order, or the run stops with exit 2.

The soak then keeps ``--clients`` clients asking again and again for ``--soak`` seconds (shorter
answers) while the server's resident memory (``VmRSS``) is sampled once a second; the table
compares the first and the last tenth of the soak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import BenchServer  # noqa: E402

RILL = Path(sys.executable).with_name("rill")


async def stream_once(host: str, port: int, path: str, expected: int) -> list[int]:
    """POST one streaming chat request; the latency (ns) of each content event, in order."""
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps(
        {"model": "x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    latencies: list[int] = []
    sent_last = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        if not line.startswith(b"data: {"):
            continue
        now = time.monotonic_ns()
        event = json.loads(line[6:])
        choices = event.get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
        if not content:
            continue
        sent = int(content)
        if sent <= sent_last:
            raise SystemExit(f"out of order on {path}")
        sent_last = sent
        latencies.append(now - sent)
    writer.close()
    if len(latencies) != expected:
        raise SystemExit(f"{path}: {len(latencies)} of {expected} events arrived")
    return latencies


async def wave(host: str, port: int, path: str, clients: int, expected: int) -> list[list[int]]:
    """Each client's latencies, in the order its events came."""
    return list(
        await asyncio.gather(*(stream_once(host, port, path, expected) for _ in range(clients)))
    )


def flat(streams: list[list[int]], part: slice = slice(None)) -> list[int]:
    return [x for stream in streams for x in stream[part]]


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_serve(
    upstream: str, home: str, history: bool = True, launcher: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str, int]:
    """``rill serve`` on a free port (``launcher``: what runs ``rill``, the command itself by
    default); the process, its host and port."""
    env = {**os.environ, "RILL_HOME": home, "OPENROUTER_API_KEY": "sk-bench"}
    extra = [] if history else ["--no-history"]
    command = launcher or [str(RILL)]
    proc = subprocess.Popen(
        [*command, "serve", "--port", "0", "--base-url", upstream, "-m", "x", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        raise SystemExit(f"rill serve did not start: {proc.stderr.read().decode()[-2000:]}")
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return proc, host, int(port)


async def soak(
    host: str, port: int, pid: int, seconds: float, clients: int, expected: int
) -> tuple[list[int], int]:
    samples: list[int] = []
    done = 0
    end = time.monotonic() + seconds

    async def sampler() -> None:
        while time.monotonic() < end:
            samples.append(rss_kib(pid))
            await asyncio.sleep(1)

    async def client() -> None:
        nonlocal done
        while time.monotonic() < end:
            await stream_once(host, port, "/v1/chat/completions", expected)
            done += 1

    await asyncio.gather(sampler(), *(client() for _ in range(clients)))
    return samples, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=float, default=60.0, help="seconds; 0: no soak")
    parser.add_argument("--soak-events", type=int, default=20)
    parser.add_argument(
        "--no-history", action="store_true", help="serve with --no-history (to compare)"
    )
    args = parser.parse_args()

    with BenchServer() as upstream, tempfile.TemporaryDirectory() as home:
        upstream.add_paced("paced", args.events, args.interval)
        upstream.add_paced("soak", args.soak_events, 0.001)
        proc, host, port = start_serve(
            upstream.base_url("paced", "serve"), home, not args.no_history
        )
        try:
            direct: list[list[int]] = []
            served: list[list[int]] = []
            spreads: list[tuple[float, float]] = []  # (direct, served) ms per round
            for n in range(args.rounds):
                direct += asyncio.run(
                    wave(
                        "127.0.0.1",
                        upstream.port,
                        f"/paced/direct{n}/v1/chat/completions",
                        args.clients,
                        args.events,
                    )
                )
                upstream.forget("serve")
                served += asyncio.run(
                    wave(host, port, "/v1/chat/completions", args.clients, args.events)
                )
                spreads.append(
                    (
                        (upstream.arrival_spread_ns(f"direct{n}") or 0) / 1e6,
                        (upstream.arrival_spread_ns("serve") or 0) / 1e6,
                    )
                )
            rss_after_rounds = rss_kib(proc.pid)
            soak_samples: list[int] = []
            soak_requests = 0
            if args.soak > 0:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                proc, host, port = start_serve(
                    upstream.base_url("soak", "serve"), home, not args.no_history
                )
                soak_samples, soak_requests = asyncio.run(
                    soak(host, port, proc.pid, args.soak, args.clients, args.soak_events)
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        if upstream.errors:
            print(f"upstream errors: {upstream.errors[:3]}", file=sys.stderr)

    events = args.clients * args.events * args.rounds
    print(
        f"{args.clients} concurrent clients x {args.events} events x {args.rounds} rounds "
        f"({events} events each way), {args.interval * 1000:g} ms apart; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print()
    print("| path | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, streams in (("direct (bench server)", direct), ("through rill serve", served)):
        samples = flat(streams)
        row = [pct(samples, q) for q in (0.5, 0.9, 0.99)] + [max(samples) / 1e6]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    added = [pct(flat(served), q) - pct(flat(direct), q) for q in (0.5, 0.9, 0.99)]
    print("| **added by rill serve** | " + " | ".join(f"{v:.2f}" for v in added) + " | |")
    print()
    # Where the added latency comes from: a stream's first events arrive while the other
    # requests are being set up, its last ones while their answers are being recorded.
    edge = max(1, args.events // 20)
    parts = {
        f"first {edge} events": slice(0, edge),
        "middle": slice(edge, args.events - edge),
        f"last {edge} events": slice(args.events - edge, None),
    }
    print("| part of each stream | added p50 ms | added p90 ms | added p99 ms |")
    print("|---|---|---|---|")
    for name, part in parts.items():
        cells = [pct(flat(served, part), q) - pct(flat(direct, part), q) for q in (0.5, 0.9, 0.99)]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    print()
    # How long the clients' requests took to reach the upstream, first to last: the set-up of
    # every stream, during which the first events of the others arrive.
    shown = ", ".join(f"{d:.0f} / {s:.0f}" for d, s in spreads)
    print(f"requests reaching the upstream, first to last, direct / served (ms): {shown}")
    print(f"rill serve RSS after the rounds: {rss_after_rounds / 1024:.1f} MiB; exit {code}")
    if soak_samples:
        tenth = max(1, len(soak_samples) // 10)
        first = statistics.mean(soak_samples[:tenth]) / 1024
        last = statistics.mean(soak_samples[-tenth:]) / 1024
        print(
            f"soak: {args.soak:g} s, {soak_requests} requests ({args.clients} clients, "
            f"{args.soak_events} events each); RSS first tenth {first:.1f} MiB, last tenth "
            f"{last:.1f} MiB, max {max(soak_samples) / 1024:.1f} MiB"
        )
        step = max(1, len(soak_samples) // 10)
        trace = ", ".join(f"{v / 1024:.1f}" for v in soak_samples[::step])
        print(f"soak RSS every {step} s (MiB): {trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
