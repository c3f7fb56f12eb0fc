"""``rill batch``: many independent prompts, run concurrently, one JSON line per finished item.

The input is read whole and checked before anything is sent (duplicate ids are a usage error; a
line that cannot be sent becomes a failed item, exit 2, without stopping the others). Each item
becomes one ``Request`` and one ``ChatStream`` pulled on a worker thread, exactly as the prompt
command pulls one — same retries, same time limits (idle, first token, total: kept by the
stream's own reads, so they hold on any thread), same history record (one chat per item) — and
the line written for it is its terminal event (``Done`` or ``Error``) with ``"id"`` put first.

All workers share one ``httpx.Client`` whose pool keeps one connection per job, and one
``BackoffGate``: a 429 or a ``Retry-After`` on any item pushes the gate's deadline, and every
worker waits at the gate before its next send (``GatedPolicy``, the client's retry policy), so the
whole batch slows down instead of each worker running into the limit on its own.

Lines are written whole, one write each, under a lock: in completion order, or in input order with
``ordered`` (early results wait in a buffer). With an output file, ids whose ``done`` line is
already in it are skipped, which makes a killed batch resumable and lets shards be merged by id;
lines are appended as items finish, and at the end the file is rewritten (atomically) with one
line per id, the latest outcome of each, so a re-run replaces the lines of the items it retried.
Stopping (SIGINT, SIGTERM, SIGHUP, a closed stdout) raises one flag: no new item starts, and every
running stream is cancelled, which shuts its socket down and wakes its worker at once; the stream
records the partial answer with finish reason ``cancelled``. A cancelled item writes no line: the
next run picks it up. No typer or rich here.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO

import httpx

from rill.config.settings import Settings
from rill.env import isatty
from rill.errors import APIError, Cancelled, ExitCode, RillError, UsageError
from rill.events import Done, Error, Terminal
from rill.process import cancel_on_signals, silence_stdout
from rill.stream.client import ChatClient, RetryPolicy, make_http_client
from rill.stream.control import Control, Limits
from rill.stream.pipeline import ChatStream, ExchangeSink, NullSink
from rill.stream.protocol import Request

if TYPE_CHECKING:
    from rill.history import HistoryStore
    from rill.input.routing import RoutingFlags

ItemId = str | int
#: Failure messages shown on stderr before the rest are left to the output lines.
SHOWN_FAILURES = 10


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One input line. ``problem`` says why it cannot be sent (it is then reported as failed)."""

    line: int
    id: ItemId | None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    model: str | None = None
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def key(self) -> str | None:
        return None if self.id is None else id_key(self.id)


def id_key(value: ItemId) -> str:
    """Ids compare by their JSON spelling: ``1`` and ``"1"`` are different items."""
    return json.dumps(value, ensure_ascii=False)


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value != "")


def _item_problem(obj: dict[str, Any]) -> str | None:
    if "id" not in obj:
        return "no id"
    if not _valid_id(obj["id"]):
        return "id must be a non-empty string or an integer"
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if prompt is not None and messages is not None:
        return "give prompt or messages, not both"
    if prompt is None and messages is None:
        return "no prompt or messages"
    if prompt is not None and not (isinstance(prompt, str) and prompt.strip()):
        return "prompt must be a non-empty string"
    if messages is not None and not (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        return "messages must be a non-empty list of objects with a role"
    for key in ("model", "system"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"{key} must be a string"
    if obj.get("options") is not None and not isinstance(obj["options"], dict):
        return "options must be an object"
    return None


def parse_item(line: int, raw: bytes) -> Item:
    """One JSON line: ``{"id", "prompt" | "messages", "model"?, "system"?, "options"?}``."""
    try:
        obj = json.loads(raw)
    except ValueError:  # JSON and UTF-8 errors alike
        return Item(line, None, problem=f"line {line}: not valid JSON")
    if not isinstance(obj, dict):
        return Item(line, None, problem=f"line {line}: not a JSON object")
    item_id = obj.get("id") if _valid_id(obj.get("id")) else None
    problem = _item_problem(obj)
    if problem is not None:
        return Item(line, item_id, problem=f"line {line}: {problem}")
    return Item(
        line,
        item_id,
        prompt=obj.get("prompt"),
        messages=obj.get("messages"),
        model=obj.get("model"),
        system=obj.get("system"),
        options=obj.get("options") or {},
    )


def parse_jsonl(data: bytes) -> list[Item]:
    """Every non-blank line of ``data`` as an item, malformed ones included."""
    return [parse_item(n, raw) for n, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]


def parse_lines(data: bytes) -> list[Item]:
    """Plain text, one prompt per non-blank line; the id is the line number."""
    items = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        try:
            items.append(Item(number, number, prompt=raw.decode("utf-8")))
        except UnicodeDecodeError:
            items.append(Item(number, number, problem=f"line {number}: not valid UTF-8"))
    return items


def check_unique(items: list[Item]) -> None:
    seen: dict[str, int] = {}
    for item in items:
        key = item.key
        if key is None:
            continue
        if key in seen:
            raise UsageError(f"duplicate id {key} (lines {seen[key]} and {item.line})")
        seen[key] = item.line


def is_done_line(obj: Any) -> bool:
    """A line of a finished item: a ``done`` object (a finish reason, no ``exit_code``)."""
    return (
        isinstance(obj, dict)
        and _valid_id(obj.get("id"))
        and isinstance(obj.get("finish_reason"), str)
        and obj["finish_reason"] != "cancelled"
        and "exit_code" not in obj
    )


def completed_ids(path: Path) -> set[str]:
    """Keys of the items already answered in an output file; a torn last line is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    done = set()
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if is_done_line(obj):
            done.add(id_key(obj["id"]))
    return done


# --- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the command line (and a template) gives every item that does not say otherwise."""

    model: str | None
    system: str | None
    max_tokens: int | None = None
    temperature: float | None = None
    reasoning_effort: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    template: Any = None  # rill.input.prompting.Template
    params: dict[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    routing: RoutingFlags | None = None
    settings: Settings | None = None
    """With ``routing``: where the ``provider`` table and the OpenRouter check come from."""
    cache_pieces: tuple[str, ...] | None = None
    """``--cache``: the text every prompt shares (prefix, template text); None: no caching."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def build_request(item: Item, d: Defaults) -> tuple[Request, list[dict[str, Any]]]:
    """(request, messages this new chat starts with). The item's fields win over the defaults."""
    from rill.input.prompting import apply_template, build_messages, check_extra

    system = item.system if item.system is not None else d.system
    if item.messages is not None:
        messages = [dict(m) for m in item.messages]
        has_system = any(m.get("role") == "system" for m in messages)
        if item.system is not None:
            messages = [m for m in messages if m.get("role") != "system"]
        if system and (item.system is not None or not has_system):
            messages.insert(0, {"role": "system", "content": system})
    else:
        text = with_prefix(d.prefix, item.prompt or "")
        if d.template is not None:
            _template_system, text = apply_template(d.template, d.params, text)
        messages, _turn = build_messages(text, system)
    model = d.aliases.get(item.model, item.model) if item.model else d.model
    model, extra = _routed(d, model, _merge(d.options, item.options))
    request = Request(
        messages=_cache_marked(d, messages, model),
        model=model,
        stream=True,
        max_tokens=d.max_tokens,
        temperature=d.temperature,
        reasoning_effort=d.reasoning_effort,
        extra=extra,
    )
    check_extra(request.extra)  # an item may not override model, messages or stream
    return request, messages


def with_prefix(prefix: str, text: str) -> str:
    """``--prompt-prefix``: the prefix, a newline, then the item's text; a prefix that already
    ends with whitespace (``"Translate: "``, ``"Context\\n\\n"``) is followed by the text as is."""
    if not prefix or prefix[-1].isspace():
        return prefix + text
    return f"{prefix}\n{text}"


def _routed(d: Defaults, model: str | None, extra: dict[str, Any]) -> tuple[str | None, Any]:
    """The item's model and fields under the routing flags, as the prompt command routes
    them: the ``:online`` variant, then ``provider``/``models`` below the explicit fields."""
    if d.routing is None or d.settings is None:
        return model, extra
    from rill.input.routing import merge_under, routed_model, routing_fields

    model = routed_model(d.routing, model)
    return model, merge_under(extra, routing_fields(d.routing, d.settings, model))


def _cache_marked(
    d: Defaults, messages: list[dict[str, Any]], model: str | None
) -> list[dict[str, Any]]:
    """``--cache``: breakpoints after the system prompt and the shared text (history keeps
    the messages unmarked)."""
    if d.cache_pieces is None:
        return messages
    from rill.input.caching import mark_cache

    fallbacks = d.routing.fallback if d.routing is not None else ()
    return mark_cache(messages, d.cache_pieces, (model, *fallbacks))


# --- stopping, backoff and the shared client -----------------------------------------------------


class Stop:
    """One flag for the whole batch, and the running streams to cancel when it is raised."""

    #: Never true: a stop always has the streams to cancel (see ``rill.process``).
    opening = False

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.code = ExitCode.OK
        self._lock = threading.Lock()
        self._streams: set[ChatStream] = set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def cancel(self, error: Cancelled) -> bool:
        """A signal's cancel (``rill.process.Cancellable``)."""
        self.trigger(error.reason, error.exit_code)
        return True

    def trigger(self, reason: str, code: ExitCode) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.reason, self.code = reason, code
            self.event.set()
            streams = list(self._streams)
        for stream in streams:
            stream.cancel(Cancelled(reason, code))

    def watch(self, stream: ChatStream) -> None:
        """Cancel ``stream`` when the batch stops (at once if it has)."""
        with self._lock:
            stopping = self.event.is_set()
            if not stopping:
                self._streams.add(stream)
        if stopping:
            stream.cancel(Cancelled(self.reason, self.code))

    def forget(self, stream: ChatStream) -> None:
        with self._lock:
            self._streams.discard(stream)


class BackoffGate:
    """A deadline every worker waits for before sending: one 429 slows the whole batch down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def push(self, delay: float) -> bool:
        """Keep everyone waiting ``delay`` seconds from now; True when the gate was open."""
        with self._lock:
            now = self._clock()
            was_open = self._until <= now
            self._until = max(self._until, now + delay)
            return was_open

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self, control: Control) -> None:
        """Wait for the gate to open; a stop or the item's time limit ends the wait."""
        while (left := self.remaining()) > 0:
            control.sleep(left)
        control.check()


class GatedPolicy(RetryPolicy):
    """Every send waits at the shared gate. A wait the server asked for (``Retry-After``) or a
    429 pushes the gate for every worker; other retries (a 502, a refused connection) only pause
    their own item."""

    def __init__(
        self,
        retries: int,
        gate: BackoffGate,
        on_gate: Callable[[float, str], None] = lambda _delay, _why: None,
    ) -> None:
        super().__init__(retries)
        self.gate = gate
        self.on_gate = on_gate

    def before_attempt(self, control: Control) -> None:
        self.gate.wait(control)

    def wait(self, attempt: int, failure: RillError, control: Control) -> None:
        retry_after = failure.retry_after if isinstance(failure, APIError) else None
        status = failure.status if isinstance(failure, APIError) else None
        if retry_after is None and status != 429:
            super().wait(attempt, failure, control)
            return
        delay = self.delay(attempt, failure)
        if self.gate.push(delay):
            self.on_gate(delay, failure.message)


def make_pool(
    settings: Settings, jobs: int, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One client for every worker, with ``jobs`` connections kept alive between items."""
    return make_http_client(settings, transport, connections=jobs)


# --- output --------------------------------------------------------------------------------------


def encode_line(item_id: ItemId | None, terminal: Terminal, line: int | None = None) -> bytes:
    """The item's line: ``id`` first, then the ``json`` format's object. That object's own
    ``id`` (the upstream generation id of a ``done``) is renamed ``generation_id``."""
    obj: dict[str, Any] = {"id": item_id}
    for key, value in terminal.as_dict().items():
        obj["generation_id" if key == "id" else key] = value
    if line is not None:
        obj["line"] = line
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from upstream: \u-escapes keep the line valid
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


class Output:
    """Writes whole lines under a lock; with ``ordered``, holds results back until their turn."""

    def __init__(self, write: Callable[[bytes], None], *, ordered: bool) -> None:
        self._write = write
        self.ordered = ordered
        self.lock = threading.Lock()
        self._pending: dict[int, bytes | None] = {}
        self._next = 0

    def put(self, position: int, line: bytes | None) -> None:
        """The result at ``position`` (input order); None for an item that writes nothing."""
        with self.lock:
            if not self.ordered:
                if line is not None:
                    self._write(line)
                return
            self._pending[position] = line
            while self._next in self._pending:
                ready = self._pending.pop(self._next)
                self._next += 1
                if ready is not None:
                    self._write(ready)

    def drain(self) -> None:
        """After a stop: what is still held back, in input order, past the gaps."""
        with self.lock:
            for position in sorted(self._pending):
                ready = self._pending.pop(position)
                if ready is not None:
                    self._write(ready)


def open_output(path: Path) -> int:
    """An append-only descriptor on ``path`` that holds a shared lock on it until closed, so no
    other run rewrites the file meanwhile (``compact_output``); a torn last line gets its
    newline first."""
    from rill.files import write_all

    fd = _open_locked(path)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            write_all(fd, b"\n")
    except OSError as exc:
        os.close(fd)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return fd


def _open_locked(path: Path) -> int:
    """``path`` opened to append, with a shared lock; opened again when another run replaced
    the file while this one waited for the lock. Without locks (some network file systems)
    the file is appended to all the same, and never rewritten."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass  # replaced, then removed: create it again
        except OSError:
            return fd
        os.close(fd)


def compacted(data: bytes) -> bytes | None:
    """An output file with one line per item, or None when it already has that.

    Each id keeps the place of its first line and the content of its latest one, so a re-run
    that answered a failed item replaces that failure; an id once answered keeps its answer
    (it is skipped as done). Lines of input lines that were not items (no id) are kept once
    each; blank lines, lines torn by a hard kill and lines that are no batch line are dropped.
    """
    kept: dict[str | bytes, bytes] = {}
    answered: set[str] = set()
    for raw in data.split(b"\n"):
        try:
            obj = json.loads(raw)
        except ValueError:  # blank, torn or not UTF-8
            continue
        if not isinstance(obj, dict) or "id" not in obj:
            continue
        if not _valid_id(obj["id"]):
            kept.setdefault(raw, raw)
            continue
        key, done = id_key(obj["id"]), is_done_line(obj)
        if done or key not in answered:
            kept[key] = raw
        if done:
            answered.add(key)
    new = b"".join(line + b"\n" for line in kept.values())
    return None if new == data else new


def compact_output(fd: int, path: Path) -> bool:
    """Rewrite ``path`` (whose descriptor ``fd`` this run appended to) with one line per item,
    atomically, when it has more (``compacted``). False, and nothing done, while another run
    still holds the file open (its own end compacts it) or when locks are not available."""
    from rill.files import fsync_path, write_temporary

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        if not (stat.S_ISREG(held.st_mode) and os.path.samestat(held, os.stat(path))):
            return False
    except OSError:
        return False
    new = compacted(path.read_bytes())
    if new is None:
        return True
    target = Path(os.path.realpath(path))  # a symlinked output file stays a symlink
    tmp = write_temporary(target, new)
    try:
        os.chmod(tmp, stat.S_IMODE(held.st_mode))
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(target.parent)
    return True


def check_output(path: Path, source: str | None) -> None:
    """The output file may not be the input file: rewriting it would lose the items."""
    if source is None or source == "-":
        return
    with suppress(OSError):
        if os.path.samefile(source, path):
            raise UsageError(f"-o {path} is the input file: write the results to another file")


# --- progress and summary ------------------------------------------------------------------------


@dataclass
class Tally:
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    tokens: int = 0
    cost: float | None = None
    shown_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, terminal: Terminal, failed: bool) -> None:
        usage = terminal.usage if isinstance(terminal, Done) else None
        with self.lock:
            self.running -= 1
            if failed:
                self.failed += 1
            else:
                self.done += 1
            if usage:
                self.tokens += int(usage.get("total_tokens") or 0)
                if isinstance(usage.get("cost"), int | float):
                    self.cost = (self.cost or 0.0) + float(usage["cost"])


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _money(cost: float) -> str:
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


class Reporter:
    """stderr: failure messages, rate-limit notes, and a ``\\r`` progress line on a terminal."""

    def __init__(self, err: TextIO, tally: Tally, *, progress: bool) -> None:
        self.err = err
        self.tally = tally
        self.progress = progress
        self.started = time.monotonic()
        self.waiting: Callable[[], float] = lambda: 0.0
        self._lock = threading.Lock()
        self._shown = False

    def say(self, message: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(f"rill: {message}\n")
            self.err.flush()

    def _clear(self) -> None:
        if self._shown:
            self.err.write("\r\x1b[K")
            self._shown = False

    def tick(self) -> None:
        if not self.progress:
            return
        t = self.tally
        with t.lock:
            finished, done, failed, running = t.done + t.failed, t.done, t.failed, t.running
            tokens, cost = t.tokens, t.cost
        elapsed = time.monotonic() - self.started
        parts = [f"{done}/{t.total} done", f"{failed} failed", f"{running} running"]
        parts.append(f"{tokens:,} tokens")
        if cost is not None:
            parts.append(_money(cost))
        waiting = self.waiting()
        if waiting > 0:
            parts.append(f"rate limited, waiting {waiting:.0f} s")
        elif finished and finished < t.total:
            parts.append(f"ETA {_duration(elapsed / finished * (t.total - finished))}")
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = ("rill: " + " · ".join(parts))[:width]
        with self._lock:
            self.err.write(f"\r\x1b[K{text}")
            self.err.flush()
            self._shown = True

    def failure(self, item: Item, terminal: Terminal) -> None:
        with self.tally.lock:
            self.tally.shown_failures += 1
            count = self.tally.shown_failures
        if count > SHOWN_FAILURES:
            return
        message = terminal.message if isinstance(terminal, Error) else "failed"
        status = terminal.status if isinstance(terminal, Error) else None
        suffix = f" (HTTP {status})" if status and status != 200 else ""
        name = f"item {item.key}: " if item.key is not None else ""
        self.say(f"{name}{message}{suffix}")
        if count == SHOWN_FAILURES:
            self.say("further failures are only in the output lines")

    def summary(self, stop: Stop, unfinished: int, resumable: bool, not_saved: int = 0) -> None:
        """The last line. ``not_saved`` counts the items history could not record: their warning
        is shown once, however many there are, so the count is given here."""
        t = self.tally
        parts = [f"{t.done} done, {t.failed} failed, {t.skipped} skipped"]
        if stop.is_set() and unfinished:
            hint = " (run again with the same -o FILE to finish them)" if resumable else ""
            parts[0] += f", {unfinished} not finished{hint}"
        if not_saved:
            parts.append(f"{not_saved} not saved in history")
        parts.append(f"{t.tokens:,} tokens")
        if t.cost is not None:
            parts.append(_money(t.cost))
        parts.append(_duration(time.monotonic() - self.started))
        head = f"batch stopped by {stop.reason}" if stop.is_set() else "batch"
        self.say(f"{head}: " + " · ".join(parts))


# --- running -------------------------------------------------------------------------------------


def _error(code: str, message: str, exit_code: int) -> Error:
    return Error(code, message, None, exit_code, {"role": "assistant", "content": ""})


class Batch:
    """Run items on ``jobs`` threads; ``run`` returns the exit code."""

    def __init__(
        self,
        client: ChatClient,
        defaults: Defaults,
        output: Output,
        reporter: Reporter,
        stop: Stop,
        *,
        jobs: int,
        store: HistoryStore | None = None,
        base_url: str = "",
        limits: Limits | None = None,
    ) -> None:
        self.client = client
        self.defaults = defaults
        self.output = output
        self.reporter = reporter
        self.tally = reporter.tally
        self.stop = stop
        self.jobs = jobs
        self.store = store
        self.base_url = base_url
        self.limits = limits
        self.codes: dict[int, int] = {}
        self._take_lock = threading.Lock()
        self._items: list[Item] = []
        self._next = 0

    def run(self, items: list[Item]) -> int:
        self._items = items
        threads = [
            threading.Thread(target=self._worker, name=f"rill-batch-{n}", daemon=True)
            for n in range(min(self.jobs, len(items)))
        ]
        # A second signal leaves at once, but never in the middle of an output line.
        with cancel_on_signals(self.stop, before_exit=lambda: self.output.lock.acquire(timeout=2)):
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
                    self.reporter.tick()
        self.output.drain()
        if self.stop.is_set():
            return int(self.stop.code)
        failed = [self.codes[p] for p in sorted(self.codes) if self.codes[p] != 0]
        return failed[0] if failed else int(ExitCode.OK)

    @property
    def unfinished(self) -> int:
        return len(self._items) - len(self.codes)

    def _worker(self) -> None:
        while not self.stop.is_set():
            with self._take_lock:
                position = self._next
                if position >= len(self._items):
                    return
                self._next += 1
            self._run_one(position, self._items[position])

    def _run_one(self, position: int, item: Item) -> None:
        with self.tally.lock:
            self.tally.running += 1
        line = None
        try:
            terminal, code, cancelled = self._execute(item)
            bad_input = isinstance(terminal, Error) and terminal.code == "bad_input"
            if not cancelled:
                line = encode_line(item.id, terminal, item.line if bad_input else None)
        except Exception as exc:  # noqa: BLE001 - a bug met by one item must not stop the others
            terminal = _error("internal", f"internal error: {type(exc).__name__}: {exc}", 1)
            code, cancelled = int(ExitCode.INTERNAL), False
            line = encode_line(item.id, terminal)
        if cancelled:
            with self.tally.lock:
                self.tally.running -= 1
        else:
            self.codes[position] = code
            self.tally.add(terminal, failed=code != 0)
        try:
            self.output.put(position, line)
        except BrokenPipeError:
            self.stop.trigger("a closed stdout", ExitCode.BROKEN_PIPE)
        except OSError as exc:
            self.reporter.say(f"cannot write the output: {exc.strerror or exc}")
            self.stop.trigger("a write error", ExitCode.INTERNAL)
        if code != 0 and not cancelled:
            self.reporter.failure(item, terminal)

    def _execute(self, item: Item) -> tuple[Terminal, int, bool]:
        if item.problem is not None:
            return _error("bad_input", item.problem, ExitCode.USAGE), ExitCode.USAGE, False
        try:
            request, messages = build_request(item, self.defaults)
        except RillError as exc:
            return _error("bad_input", exc.message, int(exc.exit_code)), int(exc.exit_code), False
        stream = ChatStream(
            self.client,
            request,
            begin=lambda: self.begin(request, messages),
            limits=self.limits,
        )
        self.stop.watch(stream)
        try:
            for _step in stream.steps():
                pass
        finally:
            self.stop.forget(stream)
        outcome = stream.outcome
        assert outcome is not None  # the steps always end with the terminal event
        cancelled = isinstance(outcome.error, Cancelled)
        return outcome.terminal, int(outcome.exit_code), cancelled

    def begin(self, request: Request, messages: list[dict[str, Any]]) -> ExchangeSink:
        """One new chat per item. The store serialises its own short critical sections, for
        the threads of this process as for concurrent runs; a recorder it could not start has
        ``chat_id`` None, like the ``NullSink`` of ``--no-history``."""
        if self.store is None:
            return NullSink()
        from rill.history import ExchangeStart

        start = ExchangeStart(
            chat_id=None,
            messages=messages,
            requested_model=request.model,
            request=request.options(),
            base_url=self.base_url,
        )
        return self.store.begin(start)


# --- wiring --------------------------------------------------------------------------------------


@dataclass
class BatchArgs:
    """What ``rill batch`` was given; ``flags`` holds the settings flags (None: not given)."""

    input: str | None = None
    jobs: int = 4
    output: str | None = None
    ordered: bool = False
    lines: bool = False
    flags: dict[str, Any] = field(default_factory=dict)
    reasoning_effort: str | None = None
    options: list[str] = field(default_factory=list)
    no_history: bool = False
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    prompt_prefix: str | None = None
    routing: RoutingFlags | None = None
    cache: bool = False
    transport: httpx.BaseTransport | None = None
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None
    stderr: TextIO | None = None
    progress: bool | None = None
    """None: show progress when stderr is a terminal."""


def read_input(source: str | None, stdin: BinaryIO | None) -> bytes:
    if source is None or source == "-":
        if stdin is None or (source is None and isatty(stdin)):
            raise UsageError(
                "no input: give a file of JSON lines or pipe them in (try rill batch --help)"
            )
        return stdin.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def resolve(args: BatchArgs, warn: Callable[[str], None]) -> tuple[Settings, Defaults]:
    """Settings and per-item defaults, with the same precedence as the prompt command."""
    from rill.config.settings import resolve_paths, resolve_settings
    from rill.input.prompting import apply_template, load_template, merge_options

    flags = dict(args.flags)
    template = None
    template_system: str | None = None
    template_text = ""
    options: dict[str, Any] = {}
    if args.template:
        template = load_template(resolve_paths().templates_dir, args.template)
        # Every placeholder must have a value: checked once, before anything is sent.
        template_system, template_text = apply_template(template, args.params, "")
        flags["model"] = flags.get("model") or template.model
        options.update(template.options)
    settings = resolve_settings(flags, warn=warn)
    settings.check_transport()
    system = flags.get("system")
    if system is None:
        system = template_system if template_system is not None else settings.system
    defaults = Defaults(
        model=settings.model,
        system=system,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=args.reasoning_effort,
        options=_merge(options, merge_options(args.options)),
        prefix=args.prompt_prefix or "",
        template=template,
        params=dict(args.params),
        aliases=settings.aliases,
        routing=_checked_routing(args.routing, settings),
        settings=settings,
        cache_pieces=(args.prompt_prefix or "", template_text) if args.cache else None,
    )
    return settings, defaults


def _checked_routing(routing: RoutingFlags | None, settings: Settings) -> RoutingFlags:
    """The routing flags, refused once, before anything is sent, exactly as the prompt
    command refuses them: a flag for a server that is not OpenRouter is a usage error (exit 2),
    a bad ``[provider]`` table a configuration error (exit 3)."""
    from rill.input.routing import RoutingFlags, routed_model, routing_fields

    routing = routing or RoutingFlags()
    routing_fields(routing, settings, routed_model(routing, settings.model))
    return routing


def _stream_writer(out: BinaryIO) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        out.write(line)
        out.flush()

    return write


def _fd_writer(fd: int) -> Callable[[bytes], None]:
    from rill.files import write_all

    return lambda line: write_all(fd, line)


def _tidy(fd: int, path: Path, reporter: Reporter) -> None:
    try:
        compact_output(fd, path)
    except OSError as exc:
        reporter.say(f"cannot rewrite {path} ({exc.strerror or exc}): an id may have two lines")


def run_batch(args: BatchArgs) -> int:
    """Run a whole batch; the exit code (0, the first failed item's, or 130/141/143)."""
    err = args.stderr if args.stderr is not None else sys.stderr
    stdin = args.stdin if args.stdin is not None else getattr(sys.stdin, "buffer", None)
    if args.output:
        check_output(Path(args.output), args.input)
    data = read_input(args.input, stdin)
    items = parse_lines(data) if args.lines else parse_jsonl(data)
    check_unique(items)
    progress = isatty(err) if args.progress is None else args.progress
    tally = Tally(total=len(items))
    reporter = Reporter(err, tally, progress=progress)
    settings, defaults = resolve(args, reporter.say)
    path = Path(args.output) if args.output else None
    done = completed_ids(path) if path is not None else set()
    todo = [item for item in items if item.key is None or item.key not in done]
    tally.total, tally.skipped = len(todo), len(items) - len(todo)

    store = None
    if settings.history and not args.no_history:
        from rill.history import HistoryStore

        fmt: Literal["json", "toml"] = "toml" if settings.history_format == "toml" else "json"
        store = HistoryStore(settings.paths.history_dir, fmt, warn=reporter.say)
    stop = Stop()
    gate = BackoffGate()
    reporter.waiting = gate.remaining

    def on_gate(delay: float, why: str) -> None:
        if not progress:
            reporter.say(f"rate limited ({why}); the whole batch waits {delay:.1f} s")

    fd = open_output(path) if path is not None else None
    stdout = args.stdout if args.stdout is not None else sys.stdout.buffer
    write = _stream_writer(stdout) if fd is None else _fd_writer(fd)
    http = make_pool(settings, args.jobs, args.transport)
    # A body read past h11 would close its connection: the pool keeps them for the next items.
    policy = GatedPolicy(settings.retries, gate, on_gate)
    client = ChatClient(settings, http, policy=policy, direct_body=False)
    limits = Limits(settings.timeout, settings.first_token_timeout, settings.total_timeout)
    output = Output(write, ordered=args.ordered)
    batch = Batch(
        client,
        defaults,
        output,
        reporter,
        stop,
        jobs=args.jobs,
        store=store,
        base_url=settings.base_url,
        limits=limits,
    )
    try:
        code = batch.run(todo)
        if fd is not None and path is not None:
            _tidy(fd, path, reporter)
    finally:
        http.close()
        if fd is not None:
            os.close(fd)
    if stop.code is ExitCode.BROKEN_PIPE:
        if args.stdout is None:
            silence_stdout()
        return code
    not_saved = store.not_saved if store is not None else 0
    reporter.summary(stop, batch.unfinished, resumable=path is not None, not_saved=not_saved)
    return code
