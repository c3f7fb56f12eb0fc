"""Input lines: items, their checks, and the ids an output file already answered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rill.errors import UsageError
from rill.values import MAX_NESTING, has_non_finite, nested_deeper

ItemId = str | int


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
    schema: str | dict[str, Any] | None = None
    """``"schema"``: the item's own ``--schema`` (a JSON Schema object, or a string as the flag
    takes it)."""
    attachments: tuple[str, ...] = ()
    """Paths and URLs to attach to the prompt (``rill.input.attachments``)."""

    @property
    def key(self) -> str | None:
        return None if self.id is None else id_key(self.id)


def id_key(value: ItemId) -> str:
    """Ids compare by their JSON spelling: ``1`` and ``"1"`` are different items."""
    return json.dumps(value, ensure_ascii=False)


def valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value != "")


def _item_problem(obj: dict[str, Any]) -> str | None:
    if "id" not in obj:
        return "no id"
    if has_non_finite(obj):
        return "NaN and Infinity cannot be sent (JSON has no such numbers)"
    if nested_deeper(obj):
        return f"nested more than {MAX_NESTING} deep"
    if not valid_id(obj["id"]):
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
    if obj.get("schema") is not None and not isinstance(obj["schema"], dict | str):
        return "schema must be an object or a string"
    attachments = obj.get("attachments")
    if attachments is not None and not (
        isinstance(attachments, list) and all(isinstance(a, str) and a for a in attachments)
    ):
        return "attachments must be a list of paths or URLs"
    return None


def parse_item(line: int, raw: bytes) -> Item:
    """One JSON line: ``{"id", "prompt" | "messages", "model"?, "system"?, "options"?,
    "schema"?, "attachments"?}``."""
    try:
        obj = json.loads(raw)
    except ValueError:  # JSON and UTF-8 errors alike
        return Item(line, None, problem=f"line {line}: not valid JSON")
    except RecursionError:
        return Item(line, None, problem=f"line {line}: JSON nested too deep")
    if not isinstance(obj, dict):
        return Item(line, None, problem=f"line {line}: not a JSON object")
    item_id = obj.get("id") if valid_id(obj.get("id")) else None
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
        schema=obj.get("schema"),
        attachments=tuple(obj.get("attachments") or ()),
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
        and valid_id(obj.get("id"))
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
        except (ValueError, RecursionError):
            continue
        if is_done_line(obj):
            done.add(id_key(obj["id"]))
    return done
