"""Micro-benchmark: rill.stream.sse.SSEDecoder against httpx-sse (and openai-python, if installed).

Decodes a realistic OpenRouter stream (keep-alive comments, then N ``data: {chunk}`` events of
about 300 bytes, then ``data: [DONE]``) held in memory, read two ways: 64 KiB reads (a busy or
buffered connection) and one read per event (a slow model, one TCP segment per token). A third
row feeds a single 8 MiB data line in 64 KiB reads. Prints the best of several runs.

httpx-sse is timed the way ``EventSource.iter_sse`` runs: an incremental UTF-8 decoder (what
``Response.iter_text`` uses), ``SSELineDecoder`` to split lines, ``SSEDecoder.decode`` per line.

    python bench/sse_micro.py [--events 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import codecs
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    from rill.stream.sse import SSEDecoder
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rill.stream.sse import SSEDecoder

from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder as HttpxLineDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import chunk_event, usage_event  # noqa: E402 - bench/ holds the event builders

READ_SIZE = 64 * 1024
WORDS = ["the", " model", " answer", "Peb", "ble", " is", ",", " naïve", " 😀", "\n\n", " 42", "."]

Decoder = Callable[[list[bytes]], int]


def openrouter_events(count: int, seed: int = 1) -> list[bytes]:
    """Keep-alives, ``count`` chunk events shaped like OpenRouter's, a usage chunk, [DONE]."""
    rng = random.Random(seed)
    events = [b": OPENROUTER PROCESSING\n\n", b": OPENROUTER PROCESSING\n\n"]
    for _ in range(count - 2):
        events.append(chunk_event("".join(rng.choices(WORDS, k=rng.randint(1, 4)))))
    events.append(usage_event(count))
    events.append(b"data: [DONE]\n\n")
    return events


def in_reads(body: bytes, size: int = READ_SIZE) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def run_rill(reads: list[bytes]) -> int:
    decoder = SSEDecoder()
    count = 0
    for chunk in reads:
        count += len(decoder.feed(chunk))
    return count + len(decoder.flush())


def run_httpx_sse(reads: list[bytes]) -> int:
    def lines() -> Iterator[str]:
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        splitter = HttpxLineDecoder()
        for chunk in reads:
            yield from splitter.decode(text.decode(chunk))
        yield from splitter.decode(text.decode(b"", final=True))
        yield from splitter.flush()

    decoder = HttpxSSEDecoder()
    count = 0
    for line in lines():
        if decoder.decode(line.rstrip("\n")) is not None:
            count += 1
    return count


def contenders() -> dict[str, Decoder]:
    found: dict[str, Decoder] = {"rill.stream.sse": run_rill, "httpx-sse 0.4": run_httpx_sse}
    try:
        from openai._streaming import SSEDecoder as OpenAIDecoder
    except ImportError:
        return found

    def run_openai(reads: list[bytes]) -> int:
        return sum(1 for _ in OpenAIDecoder().iter_bytes(iter(reads)))

    found["openai-python"] = run_openai
    return found


def best_time(decode: Decoder, reads: list[bytes], repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = decode(reads)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    events = openrouter_events(args.events)
    body = b"".join(events)
    expected = args.events  # the two keep-alives dispatch nothing
    big_line = b"data: " + b"A" * (8 * 1024 * 1024) + b"\n\n"
    scenarios = {
        "64 KiB reads": in_reads(body),
        "per-event reads": events,
        "8 MiB line, 64 KiB reads": in_reads(big_line),
    }
    print(
        f"python {sys.version.split()[0]}; {args.events:,} events, "
        f"{len(body) / args.events:.0f} bytes/event, best of {args.repeat}"
    )
    print(f"{'decoder':<16}{'reads':<27}{'time':>10}{'events/s':>14}")
    for name, decode in contenders().items():
        for scenario, reads in scenarios.items():
            seconds, count = best_time(decode, reads, args.repeat)
            if scenario.startswith("8 MiB"):
                rate = f"{len(big_line) / seconds / 2**20:,.0f} MiB/s"
            else:
                assert count == expected, (name, scenario, count)
                rate = f"{count / seconds:,.0f}"
            print(f"{name:<16}{scenario:<27}{seconds * 1000:>8.1f}ms{rate:>14}")


if __name__ == "__main__":
    main()
