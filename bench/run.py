"""Benchmark rill against its floors: a minimal httpx script and curl.

    python bench/run.py [--quick] [--out bench/results.json] [--strict]

Starts a local server (``bench/server.py``) and measures, for ``rill -f text``, ``rill -f
jsonl``, the minimal httpx script (``bench/floor_httpx.py``, the Python floor) and ``curl -N``
(the transport floor):

1. start-up: ``Popen`` → the request fully received by the server (median of the runs);
2. throughput: a stream of ``--chunks`` content chunks served from memory as fast as possible;
   wall and CPU seconds, events per second (chunks / wall), output checked byte for byte;
3. added latency: chunks sent ``--interval`` apart, each carrying its send time; the time each
   one appears on the tool's stdout, minus that send time (p50, p99);
4. peak memory: the largest resident set of the throughput runs (``ru_maxrss``).

Commands are interleaved run by run (in a rotating order), so drift hits all of them alike.
Prints a table, the ratios against the floors and the targets of issue #8, and writes the whole
result, samples included, as JSON. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from server import BenchServer, Stream, build_stream  # noqa: E402

KEY = "sk-or-v1-bench"
PROMPT = "hi"


# -- the tools ---------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    output: str  # what stdout holds: "text", "jsonl" or "sse"
    argv: Callable[[str], list[str]]  # base URL → command line


def rill_command(spec: str | None) -> list[str]:
    if spec:
        return spec.split()
    beside = Path(sys.executable).with_name("rill")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("rill")
    return [found] if found else [sys.executable, "-m", "rill"]


def make_tools(rill: list[str], curl: str) -> list[Tool]:
    def rill_argv(fmt: str) -> Callable[[str], list[str]]:
        return lambda url: [*rill, "--base-url", url, "-m", "x", "--no-history", "-f", fmt, PROMPT]

    body = json.dumps(
        {"model": "x", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    )

    def curl_argv(url: str) -> list[str]:
        return [
            curl,
            "-sN",
            "-X",
            "POST",
            f"{url}/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-H",
            f"Authorization: Bearer {KEY}",
            "-d",
            body,
        ]

    floor = [sys.executable, str(HERE / "floor_httpx.py")]
    return [
        Tool("rill text", "text", rill_argv("text")),
        Tool("rill jsonl", "jsonl", rill_argv("jsonl")),
        Tool("httpx floor", "text", lambda url: [*floor, url, PROMPT]),
        Tool("curl", "sse", curl_argv),
    ]


def child_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RILL_")}
    env.update(
        OPENROUTER_API_KEY=KEY,
        RILL_HOME=home,
        NO_PROXY="127.0.0.1,localhost",
        PYTHONIOENCODING="utf-8",
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    # An installed package has its byte code compiled (pip does it at install; an editable
    # install writes it on first use). With PYTHONDONTWRITEBYTECODE inherited, every run of a
    # tool whose source has no .pyc yet would compile it again and start-up would measure the
    # compiler: the warm-up run writes the caches instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# -- measuring ---------------------------------------------------------------------------------


class BenchError(Exception):
    """A tool failed or printed the wrong bytes: the numbers would mean nothing."""


#: Runs one command per line of JSON on stdin and answers with its timings and resource use.
#: It is a separate, small process (``python -I -S``, about 8 MB) because on Linux a child's
#: ``ru_maxrss`` starts from the high-water mark of the process it was forked or vforked from:
#: spawned from this benchmark, which holds the whole stream in memory, every tool would show
#: this process's peak instead of its own.
SPAWNER = r"""
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    mode = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, job["stdout"], mode, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, job["stderr"], mode, 0o644),
    ]
    t0 = time.perf_counter()
    pid = os.posix_spawnp(job["argv"][0], job["argv"], os.environ, file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    end_ns = time.monotonic_ns()
    own = __import__("resource").getrusage(0).ru_maxrss
    sys.stdout.write(json.dumps({
        "exit": os.waitstatus_to_exitcode(status), "wall_s": wall, "end_ns": end_ns,
        "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
        "spawner_maxrss_kib": own,
    }) + "\n")
    sys.stdout.flush()
"""


class Spawner:
    """A lean helper process that runs commands and reports ``wait4``'s figures for each."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def run(self, argv: list[str], stdout: Path, stderr: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"argv": argv, "stdout": str(stdout), "stderr": str(stderr)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the spawner died running {argv[0]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@dataclass
class Context:
    server: BenchServer
    env: dict[str, str]
    scratch: Path
    spawner: Spawner
    counter: int = 0

    def tag(self) -> str:
        self.counter += 1
        return f"r{self.counter}"


def _wait(proc: subprocess.Popen[bytes], timeout: float, name: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError(f"{name}: still running after {timeout:g} s") from None


def _stderr_of(path: Path) -> str:
    return path.read_text(errors="replace").strip()[-500:]


def measure_startup(ctx: Context, tool: Tool, route: str) -> float:
    """Milliseconds from just before ``Popen`` to the request arriving at the server."""
    tag = ctx.tag()
    argv = tool.argv(ctx.server.base_url(route, tag))
    err = ctx.scratch / "stderr"
    with err.open("wb") as stderr:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=ctx.env
        )
        code = _wait(proc, 60, tool.name)
    arrived = ctx.server.arrival_ns(tag)
    if code != 0 or arrived is None:
        raise BenchError(
            f"{tool.name}: exit {code}, request seen: {arrived is not None}; {_stderr_of(err)}"
        )
    return (arrived - t0) / 1e6


def measure_throughput(ctx: Context, tool: Tool, route: str, stream: Stream) -> dict[str, float]:
    tag = ctx.tag()
    argv = tool.argv(ctx.server.base_url(route, tag))
    out, err = ctx.scratch / "stdout", ctx.scratch / "stderr"
    run = ctx.spawner.run(argv, out, err)
    if run["exit"] != 0:
        raise BenchError(f"{tool.name}: exit {run['exit']}; {_stderr_of(err)}")
    check_output(tool, out.read_bytes(), stream)
    arrived = ctx.server.arrival_ns(tag)
    stream_s = (run["end_ns"] - arrived) / 1e9 if arrived else float("nan")
    return {
        "wall_s": run["wall_s"],
        "stream_s": stream_s,
        "cpu_s": run["user_s"] + run["sys_s"],
        "user_s": run["user_s"],
        "sys_s": run["sys_s"],
        "peak_rss_mb": run["maxrss_kib"] / 1024,
    }


def check_output(tool: Tool, data: bytes, stream: Stream) -> None:
    if tool.output == "text":
        expected = stream.content.encode()
        if data != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(data, expected, strict=False)) if a != b),
                min(len(data), len(expected)),
            )
            raise BenchError(
                f"{tool.name}: stdout differs from the streamed content at byte {at} "
                f"({len(data)} bytes, expected {len(expected)}): {data[at : at + 40]!r}"
            )
    elif tool.output == "sse":
        if data != stream.sse:
            raise BenchError(
                f"{tool.name}: printed {len(data)} bytes, expected the {len(stream.sse)}-byte body"
            )
    else:
        events = [json.loads(line) for line in data.splitlines()]
        chunks = [e["content"] for e in events if e.get("event") == "chunk"]
        names = [e.get("event") for e in events]
        problems = []
        if len(chunks) != stream.count:
            problems.append(f"{len(chunks)} chunk events, expected {stream.count}")
        if "".join(chunks) != stream.content:
            problems.append("chunk contents differ from the streamed content")
        if names[:1] != ["start"] or names[-1:] != ["done"]:
            problems.append(f"first/last events are {names[:1]}/{names[-1:]}")
        elif events[-1]["message"]["content"] != stream.content:
            problems.append("the done event's message differs from the streamed content")
        if problems:
            raise BenchError(f"{tool.name}: " + "; ".join(problems))


def measure_latency(ctx: Context, tool: Tool, route: str, count: int) -> list[float]:
    """Per chunk: ms from the server's send to the read that brought its line from stdout."""
    tag = ctx.tag()
    argv = tool.argv(ctx.server.base_url(route, tag))
    err = ctx.scratch / "stderr"
    reads: list[tuple[int, bytes]] = []
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=ctx.env
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()

        def reader() -> None:
            while data := os.read(fd, 1 << 16):
                reads.append((time.monotonic_ns(), data))

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        code = _wait(proc, 120, tool.name)
        thread.join(timeout=10)
        proc.stdout.close()
    if code != 0:
        raise BenchError(f"{tool.name}: exit {code}; {_stderr_of(err)}")
    samples = []
    pending = b""
    for seen, data in reads:
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sent = _sent_ns(tool.output, line)
            if sent is not None:
                samples.append((seen - sent) / 1e6)
    if len(samples) != count:
        raise BenchError(f"{tool.name}: found {len(samples)} timestamps, expected {count}")
    return samples


def _sent_ns(output: str, line: bytes) -> int | None:
    if output == "text":
        return int(line) if line else None
    if output == "sse":
        if not line.startswith(b"data: {"):
            return None
        choices = json.loads(line[6:]).get("choices") or []
        content = choices[0]["delta"].get("content") if choices else ""
    else:
        event = json.loads(line)
        content = event.get("content") if event.get("event") == "chunk" else ""
    return int(content) if content else None


# -- statistics and reporting ------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Target:
    name: str
    value: float
    limit: float
    op: str  # "<=" or ">="
    unit: str = ""

    @property
    def measured(self) -> bool:
        return self.value == self.value  # NaN when the phase was skipped

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit


@dataclass
class Results:
    config: dict[str, Any]
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)

    def metric(self, tool: str, *path: str) -> float:
        node: Any = self.tools[tool]
        for key in path:
            node = node[key]
        return float(node)


def targets(r: Results) -> list[Target]:
    floor, curl = "httpx floor", "curl"
    out = []
    for name in ("rill text", "rill jsonl"):
        out.append(
            Target(
                f"{name} start-up / floor",
                r.metric(name, "startup_ms", "median") / r.metric(floor, "startup_ms", "median"),
                1.2,
                "<=",
                "x",
            )
        )
    for name, limit in (("rill text", 3.0), ("rill jsonl", 2.0)):
        out.append(
            Target(
                f"{name} events/s / floor",
                r.metric(name, "throughput", "events_per_s")
                / r.metric(floor, "throughput", "events_per_s"),
                limit,
                ">=",
                "x",
            )
        )
    for name in ("rill text", "rill jsonl"):
        out.append(
            Target(
                f"{name} latency p99 - curl p99",
                r.metric(name, "latency_ms", "p99") - r.metric(curl, "latency_ms", "p99"),
                1.0,
                "<=",
                " ms",
            )
        )
    for name in ("rill text", "rill jsonl"):
        out.append(
            Target(
                f"{name} peak RSS / floor",
                r.metric(name, "throughput", "peak_rss_mb")
                / r.metric(floor, "throughput", "peak_rss_mb"),
                1.5,
                "<=",
                "x",
            )
        )
    return out


def _num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN: the phase was skipped


def render_table(r: Results) -> str:
    header = (
        "tool",
        "start-up ms",
        "events/s",
        "wall s",
        "CPU s",
        "peak RSS MB",
        "lat p50 ms",
        "lat p99 ms",
    )
    rows = [header]
    for name, t in r.tools.items():
        tp, lat = t["throughput"], t["latency_ms"]
        rows.append(
            (
                name,
                _num(t["startup_ms"]["median"], ".1f"),
                _num(tp["events_per_s"], ",.0f"),
                _num(tp["wall_s"], ".3f"),
                _num(tp["cpu_s"], ".3f"),
                _num(tp["peak_rss_mb"], ".1f"),
                _num(lat["p50"], ".2f"),
                _num(lat["p99"], ".2f"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_ratios(r: Results) -> str:
    lines = ["ratios (rill / floor):"]
    for floor in ("httpx floor", "curl"):
        f = r.tools[floor]
        for name in ("rill text", "rill jsonl"):
            t = r.tools[name]
            startup = t["startup_ms"]["median"] / f["startup_ms"]["median"]
            rate = t["throughput"]["events_per_s"] / f["throughput"]["events_per_s"]
            cpu = t["throughput"]["cpu_s"] / f["throughput"]["cpu_s"]
            rss = t["throughput"]["peak_rss_mb"] / f["throughput"]["peak_rss_mb"]
            lines.append(
                f"  {name:<10} vs {floor:<11}  start-up {_num(startup, '5.2f')}x  "
                f"events/s {_num(rate, '6.3f')}x  CPU {_num(cpu, '6.2f')}x  "
                f"RSS {_num(rss, '5.2f')}x"
            )
    return "\n".join(lines)


def render_targets(ts: list[Target]) -> str:
    lines = ["targets:"]
    for t in ts:
        mark = ("PASS" if t.passed else "FAIL") if t.measured else "SKIP"
        value = _num(t.value, "8.2f").rjust(8)
        lines.append(f"  {mark}  {t.name:<34} {value}{t.unit}  (target {t.op} {t.limit:g})")
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


def rotated(tools: list[Tool], run: int) -> list[Tool]:
    k = run % len(tools)
    return tools[k:] + tools[:k]


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"unavailable: {exc}"
    return (
        (done.stdout or done.stderr).splitlines()[0].strip() if done.stdout or done.stderr else ""
    )


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return (done.stdout.strip() + ("+dirty" if dirty else "")) or None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer runs, 20,000 chunks")
    p.add_argument("--out", type=Path, default=HERE / "results.json", help="JSON results path")
    p.add_argument("--chunks", type=int, help="content chunks in the throughput stream")
    p.add_argument("--startup-runs", type=int, help="start-up runs per tool (median)")
    p.add_argument("--throughput-runs", type=int, help="throughput runs per tool (median)")
    p.add_argument("--latency-runs", type=int, help="latency runs per tool (pooled)")
    p.add_argument("--latency-chunks", type=int, default=300, help="paced chunks per run")
    p.add_argument(
        "--framing",
        choices=("event", "coalesced"),
        default="event",
        help="HTTP chunks of the throughput stream: one per SSE event, or 64 KiB blocks",
    )
    p.add_argument("--interval", type=float, default=0.005, help="seconds between paced chunks")
    p.add_argument("--rill", help="the rill command line (default: rill beside this python)")
    p.add_argument("--curl", default="curl", help="the curl binary")
    p.add_argument("--only", help="comma-separated phases: startup,throughput,latency")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args(argv)
    a.chunks = a.chunks or (20_000 if a.quick else 100_000)
    a.startup_runs = a.startup_runs or (5 if a.quick else 21)
    a.throughput_runs = a.throughput_runs or (1 if a.quick else 3)
    a.latency_runs = a.latency_runs or (1 if a.quick else 5)
    return a


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    curl = shutil.which(args.curl) or args.curl
    rill = rill_command(args.rill)
    tools = make_tools(rill, curl)
    config = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
        "chunks": args.chunks,
        "framing": args.framing,
        "startup_runs": args.startup_runs,
        "throughput_runs": args.throughput_runs,
        "latency_runs": args.latency_runs,
        "latency_chunks": args.latency_chunks,
        "latency_interval_s": args.interval,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": {
            "rill": tool_version([*rill, "--version"]),
            "curl": tool_version([curl, "--version"]),
            "httpx": tool_version([sys.executable, "-c", "import httpx; print(httpx.__version__)"]),
            "commit": git_commit(),
        },
        "commands": {t.name: t.argv("URL") for t in tools},
    }
    results = Results(config)
    stream = build_stream(args.chunks)
    small = build_stream(20)
    log(f"stream: {args.chunks:,} chunks, {len(stream.sse):,} bytes of SSE")
    with tempfile.TemporaryDirectory(prefix="rill-bench-") as tmp, BenchServer() as server:
        server.add_body("big", stream.response(args.framing))
        server.add_body("small", small.response())
        server.add_paced("paced", args.latency_chunks, args.interval)
        home = Path(tmp, "home")
        home.mkdir()
        env = child_env(str(home))
        spawner = Spawner(env)
        ctx = Context(server, env, Path(tmp), spawner)
        try:
            run_phases(args, ctx, tools, results, small, stream)
        finally:
            spawner.close()
        if server.errors:
            log(f"server: {len(server.errors)} connection errors, e.g. {server.errors[0]}")
    summarize(results, args.chunks)
    elapsed = time.perf_counter() - started
    results.config["elapsed_s"] = round(elapsed, 1)
    config["machine"]["loadavg_end"] = os.getloadavg()
    ts = targets(results)
    report = "\n\n".join(
        [
            f"rill benchmark · {config['date']} · {config['versions']['rill']} "
            f"({config['versions']['commit']}) · Python {config['machine']['python']} · "
            f"{config['machine']['cpus']} CPUs · {args.chunks:,} chunks, {args.framing} framing",
            render_table(results),
            render_ratios(results),
            render_targets(ts),
            f"{elapsed:.0f} s; load average {config['machine']['loadavg_start'][0]:.2f} at the "
            f"start, {config['machine']['loadavg_end'][0]:.2f} at the end; results in {args.out}",
        ]
    )
    print(report)
    payload = {
        **results.config,
        "tools": results.tools,
        "targets": [
            {
                "name": t.name,
                "value": t.value,
                "op": t.op,
                "limit": t.limit,
                "pass": t.passed if t.measured else None,
            }
            for t in ts
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")
    return 1 if args.strict and not all(t.passed for t in ts if t.measured) else 0


def run_phases(
    args: argparse.Namespace,
    ctx: Context,
    tools: list[Tool],
    results: Results,
    small: Stream,
    stream: Stream,
) -> None:
    floor_run = ctx.spawner.run(["true"], ctx.scratch / "stdout", ctx.scratch / "stderr")
    results.config["rss_floor_mb"] = floor_run["maxrss_kib"] / 1024
    phases = set((args.only or "startup,throughput,latency").split(","))
    for tool in tools:  # warm-up: byte-code caches, page cache, first-run effects
        measure_throughput(ctx, tool, "small", small)
        results.tools[tool.name] = {
            "command": tool.argv("URL"),
            "startup_ms": {"median": float("nan"), "samples": []},
            "throughput": {
                "events_per_s": float("nan"),
                "wall_s": float("nan"),
                "cpu_s": float("nan"),
                "peak_rss_mb": float("nan"),
                "runs": [],
            },
            "latency_ms": {"p50": float("nan"), "p99": float("nan"), "samples": []},
        }
    if "startup" in phases:
        log(f"start-up: {args.startup_runs} runs x {len(tools)} commands")
        for run in range(args.startup_runs):
            for tool in rotated(tools, run):
                ms = measure_startup(ctx, tool, "small")
                results.tools[tool.name]["startup_ms"]["samples"].append(ms)
    if "throughput" in phases:
        log(f"throughput: {args.throughput_runs} runs x {len(tools)} commands")
        for run in range(args.throughput_runs):
            for tool in rotated(tools, run):
                sample = measure_throughput(ctx, tool, "big", stream)
                results.tools[tool.name]["throughput"]["runs"].append(sample)
                log(
                    f"  {tool.name:<12} {sample['wall_s']:7.3f} s wall"
                    f"  {sample['cpu_s']:7.3f} s CPU  {sample['peak_rss_mb']:6.1f} MB"
                )
    if "latency" in phases:
        log(
            f"latency: {args.latency_runs} runs x {len(tools)} commands, "
            f"{args.latency_chunks} chunks {args.interval * 1000:g} ms apart"
        )
        for run in range(args.latency_runs):
            for tool in rotated(tools, run):
                samples = measure_latency(ctx, tool, "paced", args.latency_chunks)
                results.tools[tool.name]["latency_ms"]["samples"].extend(samples)


def summarize(results: Results, chunks: int) -> None:
    for t in results.tools.values():
        s = t["startup_ms"]["samples"]
        if s:
            t["startup_ms"]["median"] = statistics.median(s)
            t["startup_ms"]["min"] = min(s)
        runs = t["throughput"]["runs"]
        if runs:
            tp = t["throughput"]
            for key in ("wall_s", "stream_s", "cpu_s", "user_s", "sys_s"):
                tp[key] = statistics.median(r[key] for r in runs)
            tp["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            tp["events"] = chunks
            tp["events_per_s"] = chunks / tp["wall_s"]
            tp["stream_events_per_s"] = chunks / tp["stream_s"]
        lat = t["latency_ms"]["samples"]
        if lat:
            t["latency_ms"].update(
                p50=percentile(lat, 50), p99=percentile(lat, 99), max=max(lat), n=len(lat)
            )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"bench: {exc}")
        sys.exit(2)
