"""Start-up of ``rill chat``: process start → its first prompt on a pseudo-terminal.

    python bench/chat_startup.py [--runs 15] [--out bench/chat_startup.json]

In the same run, interleaved run by run so that drift hits all alike, and on the same clock:

- ``rill chat``: fork → the prompt drawn (prompt_toolkit's "bracketed paste on" sequence, sent
  when the prompt is ready for keys);
- ``rill chat -c``: the same, resuming a chat of one exchange (its last exchange is rendered
  first, so rich's markdown is in the path);
- ``rill --version``: fork → exit, the CLI's own floor;
- ``python -c "import httpx"``: fork → exit, the floor of any Python client of the API.

Nothing is sent: the chat waits at its prompt and is then ended with Ctrl-D. Prints a table of
medians (and p90) in milliseconds and writes the samples as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPT_READY = b"\x1b[?2004h"


def rill() -> list[str]:
    beside = Path(sys.executable).with_name("rill")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("rill")
    return [found] if found else [sys.executable, "-m", "rill"]


def until_prompt(argv: list[str], env: dict[str, str], timeout: float = 20.0) -> float:
    """Milliseconds from fork to the prompt being ready; then Ctrl-D and reap."""
    t0 = time.monotonic_ns()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    seen = b""
    deadline = time.monotonic() + timeout
    elapsed = None
    try:
        while elapsed is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"no prompt from {argv} after {timeout} s: {seen[-500:]!r}")
            if select.select([fd], [], [], 0.5)[0]:
                data = os.read(fd, 65536)
                if not data:
                    raise SystemExit(f"{argv} ended before its prompt: {seen[-500:]!r}")
                seen += data
                if b"\x1b[6n" in data:  # a cursor-position query, answered as a terminal would
                    os.write(fd, b"\x1b[1;1R")
                if PROMPT_READY in seen:
                    elapsed = (time.monotonic_ns() - t0) / 1e6
        os.write(fd, b"\x04")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    if not os.read(fd, 65536):
                        break
                except OSError:
                    break
            if os.waitpid(pid, os.WNOHANG)[0]:
                pid = 0
                break
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    return elapsed


def until_exit(argv: list[str], env: dict[str, str]) -> float:
    import subprocess

    t0 = time.monotonic_ns()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.monotonic_ns() - t0) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", default=str(Path(__file__).with_name("chat_startup.json")))
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="rill-chat-bench-")
    env = {
        **os.environ,
        "RILL_HOME": home,
        "OPENROUTER_API_KEY": "sk-or-v1-bench",
        "RILL_BASE_URL": "http://127.0.0.1:9/api/v1",  # never reached: nothing is sent
        "TERM": "xterm-256color",
    }
    # One chat of one exchange, for the resumed case (written as rill writes it).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    os.environ["RILL_HOME"] = home
    from rill.config.settings import resolve_paths
    from rill.history import ExchangeStart, HistoryStore

    store = HistoryStore(resolve_paths().history_dir)
    recorder = store.begin(
        ExchangeStart(None, [{"role": "user", "content": "hi"}], "x", {}, env["RILL_BASE_URL"])
    )
    recorder.add("Hello! **How** can I help?\n\n- a list\n- of things\n")
    recorder.finish({"content": "Hello! **How** can I help?\n\n- a list\n- of things\n"})

    exe = rill()
    cases = {
        "rill chat → prompt": lambda: until_prompt([*exe, "chat", "-m", "x"], env),
        "rill chat -c → prompt": lambda: until_prompt([*exe, "chat", "-c"], env),
        "rill --version → exit": lambda: until_exit([*exe, "--version"], env),
        "python -c 'import httpx' → exit": lambda: until_exit(
            [sys.executable, "-c", "import httpx"], env
        ),
    }
    for case in cases.values():  # warm the byte-code cache and the page cache
        case()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(args.runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(cases[name]())
    print(f"{'case':34} {'median ms':>10} {'p90 ms':>8}")
    for name, values in samples.items():
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(f"{name:34} {statistics.median(values):10.1f} {p90:8.1f}")
    Path(args.out).write_text(json.dumps({"runs": args.runs, "samples": samples}, indent=1) + "\n")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
