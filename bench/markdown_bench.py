"""Benchmark: the cost of one delta in the terminal renderer must not grow with the answer.

Builds a markdown answer of about 20,000 tokens (headings, paragraphs with inline styles, bullet
and numbered lists, fenced code blocks, a few tables), cuts it into one delta per token and
feeds it through ``rill.terminal.renderers.for_terminal`` into a pseudo-terminal
(``pty.openpty()``, 120×40,
with a thread draining the master side, as a terminal emulator would). Each ``deltas()`` call is
timed with ``time.perf_counter`` (wall) and ``time.thread_time`` (CPU of the rendering thread;
``process_time`` would also count the draining thread). Prints the mean cost per delta by tenth
of the answer and the ratio of the last tenth to the first (target: at most 2).

    python bench/markdown_bench.py [--tokens 20000] [--mode live|plain-md|text|all] [--seed 1]

Modes: ``live`` is markdown with colour (raw preview of the open block, redrawn rendered when it
closes), ``plain-md`` markdown without colour (blocks printed once finished), ``text`` is
``--no-markdown`` (safe plain text), for reference.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import os
import pty
import random
import re
import statistics
import struct
import sys
import termios
import threading
import time
from pathlib import Path

try:
    from rill.terminal.renderers import for_terminal
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rill.terminal.renderers import for_terminal

from rill.config.settings import Settings
from rill.events import Chunk, Delta, Done, Start
from rill.output.formats import OutputFormat, TextRenderer
from rill.stream.transcript import Transcript

WORDS = [
    *["the", "stream", "renderer", "keeps", "every", "finished", "block", "on", "screen"],
    *["while", "only", "the", "open", "one", "is", "redrawn", "so", "long", "answers", "stay"],
    *["cheap", "to", "display", "and", "the", "terminal", "never", "flickers", "more", "than"],
    *["one", "paragraph", "at", "a", "time", "because", "each", "delta", "touches", "a"],
    *["bounded", "amount", "of", "text"],
]
CODE = [
    "def handle(event, state):",
    '    """Fold one event into the state."""',
    "    if event.kind == 'chunk':",
    "        state.parts.append(event.text)",
    "    elif event.kind == 'done':",
    "        return finish(state, reason=event.reason)",
    "    for item in state.pending[:]:",
    "        total += len(item) * 2  # weight",
    "    return None",
]
TOKEN = re.compile(r" ?[A-Za-z_]+| ?\d+|\n|\s+|.", re.S)


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    i = rng.randrange(len(words))
    words[i] = rng.choice([f"**{words[i]}**", f"`{words[i]}()`", f"*{words[i]}*", words[i]])
    return " ".join(words).capitalize() + "."


def section(rng: random.Random, n: int) -> str:
    parts = [f"## Part {n}: {rng.choice(WORDS)} {rng.choice(WORDS)}"]
    for _ in range(rng.randint(1, 2)):
        parts.append(" ".join(sentence(rng) for _ in range(rng.randint(2, 5))))
    items = [f"- {sentence(rng)}" for _ in range(rng.randint(3, 6))]
    if rng.random() < 0.5:
        items.insert(2, f"  - {sentence(rng)}")
    parts.append("\n".join(items))
    parts.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 3))))
    lang = rng.choice(["python", "python", "bash", ""])
    body = [rng.choice(CODE) for _ in range(rng.randint(6, 24))]
    parts.append(f"```{lang}\n" + "\n".join(body) + "\n```")
    parts.append("\n".join(f"{i}. {sentence(rng)}" for i in range(1, rng.randint(3, 6))))
    if rng.random() < 0.3:
        rows = [f"| {rng.choice(WORDS)} | {rng.randint(1, 999)} |" for _ in range(4)]
        parts.append("| name | value |\n|------|------:|\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n\n"


def answer_tokens(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    tokens: list[str] = TOKEN.findall("# A long answer\n\n")
    n = 1
    while len(tokens) < count:
        tokens += TOKEN.findall(section(rng, n))
        n += 1
    return tokens[:count]


def open_terminal(cols: int, rows: int) -> tuple[io.BufferedWriter, threading.Thread, list[int]]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    received = [0]

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:
                break
            if not data:
                break
            received[0] += len(data)
        os.close(master)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return os.fdopen(slave, "wb"), reader, received


def run(mode: str, tokens: list[str], cols: int, rows: int) -> dict[str, object]:
    out, reader, received = open_terminal(cols, rows)
    settings = Settings(
        base_url="http://127.0.0.1:1/v1",
        model=None,
        api_key=None,
        markdown=mode != "text",
        color="never" if mode == "plain-md" else "always",
    )
    renderer = for_terminal(
        TextRenderer(out, tty=True),
        fmt=OutputFormat.text,
        settings=settings,
        stdout_tty=True,
        stderr_tty=False,
        raw=False,
        out=out,
        err=io.StringIO(),
        env={"TERM": "xterm-256color"},
    )
    renderer.start(Start(None, "bench"), Transcript())
    wall: list[float] = []
    cpu: list[float] = []
    perf, thread_time = time.perf_counter, time.thread_time
    for token in tokens:
        deltas: list[Delta] = [Chunk(token)]
        raw = token.encode()
        w0, c0 = perf(), thread_time()
        renderer.deltas(raw, deltas)
        cpu.append(thread_time() - c0)
        wall.append(perf() - w0)
    renderer.finish(Done({}, None, "stop", "bench", None, None, None))
    out.close()
    reader.join(10)
    return {"wall": wall, "cpu": cpu, "bytes": received[0]}


def report(mode: str, result: dict[str, object]) -> float:
    wall = result["wall"]
    cpu = result["cpu"]
    assert isinstance(wall, list) and isinstance(cpu, list)
    n = len(wall)
    tenth = max(n // 10, 1)

    def us(values: list[float]) -> float:
        return statistics.fmean(values) * 1e6

    deciles = [us(cpu[i * tenth : (i + 1) * tenth]) for i in range(10)]
    first, last = us(cpu[:tenth]), us(cpu[-tenth:])
    first_wall, last_wall = us(wall[:tenth]), us(wall[-tenth:])
    print(f"\n[{mode}] {n} deltas, {result['bytes']:,} bytes to the terminal")
    worst = max(wall) * 1e3
    print(f"  total: {sum(wall):.2f} s wall, {sum(cpu):.2f} s CPU; worst delta {worst:.2f} ms")
    print("  mean CPU per delta by tenth (µs): " + " ".join(f"{d:.0f}" for d in deciles))
    print(f"  first 10%: {first:.1f} µs CPU ({first_wall:.1f} µs wall)")
    print(f"  last 10%:  {last:.1f} µs CPU ({last_wall:.1f} µs wall)")
    ratio = last / first
    print(f"  ratio last/first: {ratio:.2f} CPU, {last_wall / first_wall:.2f} wall (target ≤ 2)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--mode", choices=["live", "plain-md", "text", "all"], default="all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--rows", type=int, default=40)
    args = parser.parse_args()
    tokens = answer_tokens(args.tokens, args.seed)
    text = "".join(tokens)
    print(f"answer: {len(tokens)} tokens, {len(text):,} characters, {text.count(chr(10))} lines")
    modes = ["live", "plain-md", "text"] if args.mode == "all" else [args.mode]
    worst = 0.0
    for mode in modes:
        worst = max(worst, report(mode, run(mode, tokens, args.cols, args.rows)))
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
