"""What history is made of: chat files, their checks, index lines, ids and small helpers.

Pure functions and constants; no file is touched here (see ``files`` for that).
"""

from __future__ import annotations

import gc
import json
import json.scanner
import re
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import tomli_w

from rill.errors import ExitCode, RillError
from rill.files import read_private
from rill.history.normalise import is_number
from rill.values import compact_json, pretty_json

if TYPE_CHECKING:
    from rill.stream.protocol import Request

SCHEMA_VERSION = 1
Format = Literal["json", "toml"]

SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TITLE_CHARS = 60
_SNIPPET_CHARS = 40


class HistoryError(RillError):
    """A chat file cannot be read back (bad JSON/TOML, wrong types) or the store cannot be changed.

    It exits 3 like an unreadable config file: the user's own files need attention; it is not a
    bug in rill (exit 1) and not a bad argument (exit 2).
    """

    exit_code = ExitCode.CONFIG


def new_id() -> str:
    """A new chat id: 12 random lowercase hex characters."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class ExchangeStart:
    """What ``HistoryStore.begin`` records before the request is sent."""

    chat_id: str | None
    """The chat to continue; None creates a new chat."""
    messages: list[dict[str, Any]]
    """The messages this turn adds (an optional system message, then the user's)."""
    requested_model: str | None
    request: dict[str, Any]
    """Request options sent besides the messages; never the API key."""
    base_url: str
    tool_results: list[dict[str, Any]] | None = None
    """A tool round: how each call whose ``tool`` message is in ``messages`` ended (``id``,
    ``name``, ``exit_code``; null when it was not run)."""
    sent: bool = True
    """False for tool results recorded without a request (a cancel, the round limit): a
    continued chat sends them, ``rill usage`` does not count them as a request."""

    @classmethod
    def of(
        cls,
        request: Request,
        *,
        chat_id: str | None,
        messages: list[dict[str, Any]],
        base_url: str,
        tool_results: list[dict[str, Any]] | None = None,
        sent: bool = True,
    ) -> ExchangeStart:
        """What ``begin`` records for ``request``: its model and its options (never the key)."""
        return cls(
            chat_id, messages, request.model, request.options(), base_url, tool_results, sent
        )


# --- small pure helpers -------------------------------------------------------------------------


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    # One fixed-width UTC spelling, so timestamps compare correctly as strings in the index.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def without_none(value: Any) -> Any:
    """Drop None recursively: TOML has no null (tomli_w raises), and JSON files stay alike."""
    if isinstance(value, dict):
        return {str(k): without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_none(v) for v in value if v is not None]
    return value


def _has_crlf(value: Any) -> bool:
    if isinstance(value, str):
        return "\r\n" in value
    if isinstance(value, dict):
        return any(_has_crlf(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_crlf(v) for v in value)
    return False


def dump_chat(chat: dict[str, Any], suffix: str) -> bytes:
    data = without_none(chat)
    if suffix == ".toml":
        # tomli_w turns CRLF into LF inside multi-line strings; such text is kept byte-exact by
        # falling back to escaped one-line strings.
        text = tomli_w.dumps(data, multiline_strings=not _has_crlf(data))
    else:
        text = pretty_json(data) + "\n"
    return text.encode("utf-8", "replace")


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_exchange(ex: Any) -> str | None:
    if not isinstance(ex, dict):
        return "an exchange is not a table"
    if not isinstance(ex.get("id"), str) or not SAFE_ID.fullmatch(ex["id"]):
        return "an exchange has no valid id"  # ids name journal files: no paths
    messages = ex.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return f"exchange {ex['id']}: messages is not a list of tables"
    for key in ("answer", "usage", "timings", "error", "request"):
        if key in ex and not isinstance(ex[key], dict):
            return f"exchange {ex['id']}: {key} is not a table"
    answer = ex.get("answer", {})
    for key in ("content", "reasoning"):
        if key in answer and not isinstance(answer[key], str):
            return f"exchange {ex['id']}: answer.{key} is not a string"
    for key in ("started_at", "finished_at", "status", "finish_reason", "served_model"):
        if key in ex and not isinstance(ex[key], str):
            return f"exchange {ex['id']}: {key} is not a string"
    return None


def _check_chat(data: Any) -> str | None:
    """Why ``data`` is not a chat record this version can use, or None."""
    if not isinstance(data, dict):
        return "not a table"
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return f"unsupported schema_version {version!r}"
    if not isinstance(data.get("id"), str):
        return "no string id"
    for key in ("title", "created", "updated"):
        if key in data and not isinstance(data[key], str):
            return f"{key} is not a string"
    if not isinstance(data.get("exchanges"), list):
        return "exchanges is not a list"
    return None


class Chat(dict[str, Any]):
    """A chat as read: its ``exchanges`` are the usable ones; ``skipped`` holds the damaged ones
    (problem, exchange as stored), shown nowhere and written back unchanged."""

    skipped: list[tuple[str, Any]]


def _split_exchanges(data: dict[str, Any]) -> Chat:
    chat = Chat(data)
    good, chat.skipped = [], []
    for ex in data["exchanges"]:
        problem = _check_exchange(ex)
        if problem:
            chat.skipped.append((problem, ex))
        else:
            good.append(ex)
    chat["exchanges"] = good
    return chat


def read_chat(path: Path) -> Chat:
    """A chat file, checked: HistoryError naming the file when damaged; FileNotFoundError passes."""
    try:
        raw = read_private(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HistoryError(f"cannot read chat file {path}: {os_reason(exc)}") from None
    return parse_chat(path, raw)


def parse_chat(path: Path, raw: bytes) -> Chat:
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # JSON, TOML and UTF-8 decoding errors are all ValueErrors
        raise HistoryError(f"damaged chat file {path}: {_first_line(str(exc))}") from None
    except RecursionError:
        raise HistoryError(f"damaged chat file {path}: nested too deeply") from None
    problem = _check_chat(data)
    if problem:
        raise HistoryError(f"damaged chat file {path}: {problem}")
    return _split_exchanges(data)


def text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (p.get("text") for p in content if isinstance(p, dict))
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def title_of(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            lines = [line.strip() for line in text_of(message.get("content")).splitlines()]
            line = next((line for line in lines if line), "")
            return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1].rstrip() + "…"
    return ""


def snippet(text: str, start: int, end: int) -> str:
    lo, hi = max(0, start - _SNIPPET_CHARS), min(len(text), end + _SNIPPET_CHARS)
    middle = " ".join(text[lo:hi].split())
    return ("…" if lo else "") + middle + ("…" if hi < len(text) else "")


def number_or_zero(value: Any) -> int | float:
    """``value`` when it is a finite number, else 0."""
    return value if is_number(value) else 0


def _usage_numbers(usage: Any) -> dict[str, int | float]:
    """Token counts and cost from an OpenAI/OpenRouter usage object (flat or with *_details)."""
    if not isinstance(usage, dict):
        return {}
    details = usage.get("completion_tokens_details")
    prompt_details = usage.get("prompt_tokens_details")
    found = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "reasoning_tokens": usage.get("reasoning_tokens")
        or (details.get("reasoning_tokens") if isinstance(details, dict) else None),
        "cached_tokens": usage.get("cached_tokens")
        or (prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None),
        "cost": usage.get("cost"),
    }
    numbers = {key: number_or_zero(value) for key, value in found.items() if number_or_zero(value)}
    if is_number(found["cost"]):
        # a cost of 0 is known; a missing one is not
        numbers["cost"] = number_or_zero(found["cost"])
    return numbers


def index_record(chat_id: str, ex: dict[str, Any], ev: str, title: str | None) -> dict[str, Any]:
    """One index line; ``ev`` is "begin" (exchange begun), "end" (finished) or "full" (written by
    ``reindex``, in start order). Its first four keys are fixed (see ``INDEX_HEAD``); the title is
    only on lines of the chat's first exchange. Removing a chat appends ``{"chat", "ev": "rm",
    "at"}``."""
    record = {
        "ex": ex["id"],
        "chat": chat_id,
        "ev": ev,
        "at": ex.get("started_at") or "",
        "end": ex.get("finished_at"),
        "model": ex.get("requested_model"),
        "served": ex.get("served_model"),
        "finish": ex.get("finish_reason"),
        "sent": False if ex.get("sent") is False else None,
        **_usage_numbers(ex.get("usage")),
        "title": title,
    }
    cleaned: dict[str, Any] = without_none(record)
    return cleaned


def encode_line(record: dict[str, Any]) -> bytes:
    return (compact_json(record) + "\n").encode("utf-8", "replace")


# Lines this module writes start with these four keys in this order, so one regex pass over the
# whole index finds every line's exchange, chat, event and start time, and only the lines a query
# needs are decoded. Anything else (a tombstone, an edited line) is decoded in full.
INDEX_HEAD = re.compile(
    r'^\{"ex":"([^"\\\n]*)","chat":"([^"\\\n]*)","ev":"(\w*)","at":"([^"\\\n]*)"[^\n]*\}$', re.M
)
# Decodes in place, without copying each line out of the index text. (typeshed types the
# argument as a scanner context; any JSONDecoder is one.)
_scan_once = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def decode_at(text: str, start: int) -> dict[str, Any] | None:
    """The index record starting at ``text[start]``, or None when it does not decode."""
    try:
        record, _end = _scan_once(text, start)
    except (ValueError, StopIteration):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("chat"), str) else None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while a scan builds ~100,000 long-lived tuples: they hold no
    cycles, and collecting would walk them again and again (a third of the scan's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def failed_path(exc: OSError, default: Path) -> str:
    return str(exc.filename) if exc.filename else str(default)
