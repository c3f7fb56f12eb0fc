"""Turn what the user typed into a request: prompt text, templates, ``-o`` fields, messages.

Pure functions; the CLI reads stdin and files, this module only combines what it is given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rill.errors import UsageError
from rill.values import MAX_NESTING, has_non_finite, nested_deeper

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


def join_prompt(words: list[str], stdin_text: str | None) -> str:
    """Prompt words first, then a blank line, then stdin; ``-`` alone means stdin only."""
    if words == ["-"]:
        words = []
    parts = []
    if words:
        parts.append(" ".join(words))
    if stdin_text:
        parts.append(stdin_text)
    return "\n\n".join(parts)


def parse_option(item: str, *, base_dir: Path | None = None) -> tuple[list[str], Any]:
    """``KEY=VALUE`` → (key path, value). VALUE is JSON when it parses; ``@file`` reads a file.

    A dotted key sets a nested field: ``-o provider.order='["openai"]'``.
    """
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"a request option must be KEY=VALUE, got {item!r}")
    parsed: Any
    if value.startswith("@") and len(value) > 1:
        path = Path(value[1:]).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"-o {key}: cannot read {path}: {exc.strerror}") from None
        parsed = _json_or_text(key, text)
    else:
        parsed = _json_or_text(key, value)
    if nested_deeper(parsed):
        raise UsageError(f"-o {key}: the value is nested more than {MAX_NESTING} deep")
    if has_non_finite(parsed):
        # Python's json reads NaN, Infinity and 1e999; no request body can carry them.
        raise UsageError(f"-o {key}: NaN and Infinity cannot be sent (JSON has no such numbers)")
    return key.split("."), parsed


def _json_or_text(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise UsageError(f"-o {key}: the value is nested too deeply to read") from None


def parse_params(items: list[str]) -> dict[str, str]:
    """Template parameters given as ``KEY=VALUE`` (the CLI turns ``-p KEY VALUE`` into that)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"a template parameter must be KEY VALUE or KEY=VALUE, got {item!r}")
        params[key] = value
    return params


#: Request fields an option may not set: rill owns them (use the matching flag instead).
RESERVED_FIELDS = {"model": "-m/--model", "messages": "the prompt", "stream": "--no-stream"}


def check_extra(extra: dict[str, Any]) -> None:
    for key, instead in RESERVED_FIELDS.items():
        if key in extra:
            raise UsageError(f"the request field {key!r} cannot be set as an option: use {instead}")


def merge_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        path, value = parse_option(item)
        target = out
        for part in path[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = target[part] = {}
            target = nxt
        target[path[-1]] = value
    return out


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    system: str | None = None
    prompt: str | None = None
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def placeholders(self) -> list[str]:
        seen: list[str] = []
        for text in (self.system or "", self.prompt or ""):
            for name in _PLACEHOLDER.findall(text):
                if name not in seen:
                    seen.append(name)
        return seen


def template_path(templates_dir: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"invalid template name {name!r}")
    return templates_dir / f"{name}.toml"


def load_template(templates_dir: Path, name: str) -> Template:
    import tomllib  # only templates need it: not every run pays for the import

    path = template_path(templates_dir, name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no template named {name!r} (looked for {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read template {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"template {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"template {path}: a value is nested too deeply to read") from None
    options = data.get("options", {})
    for key in ("system", "prompt", "model"):
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"template {path}: {key} must be a string")
    if not isinstance(options, dict):
        raise UsageError(f"template {path}: options must be a table")
    if nested_deeper(options, MAX_NESTING - 1):  # options is itself a level
        raise UsageError(f"template {path}: options are nested more than {MAX_NESTING} deep")
    if has_non_finite(options):
        raise UsageError(f"template {path}: options hold nan or inf, which JSON cannot send")
    return Template(name, data.get("system"), data.get("prompt"), data.get("model"), options)


def fill(text: str, params: dict[str, str]) -> str:
    """Replace ``{{name}}`` placeholders; a placeholder without a value is a usage error."""
    missing = [n for n in _PLACEHOLDER.findall(text) if n not in params]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise UsageError(
            f"template placeholder without a value: {names} "
            "(give it with -p NAME VALUE or --param NAME=VALUE)"
        )
    return _PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


def apply_template(
    template: Template, params: dict[str, str], user_text: str
) -> tuple[str | None, str]:
    """(system, prompt) from a template: its prompt, then the user's text after a blank line."""
    system = fill(template.system, params) if template.system else None
    prompt = fill(template.prompt, params) if template.prompt else ""
    if user_text:
        prompt = f"{prompt}\n\n{user_text}" if prompt else user_text
    return system, prompt


def build_messages(
    prompt: str, system: str | None, history: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages to send, messages this turn adds). A new system prompt replaces an older one."""
    earlier = list(history or [])
    if system is not None:
        earlier = [m for m in earlier if m.get("role") != "system"]
    turn: list[dict[str, Any]] = []
    if system:
        turn.append({"role": "system", "content": system})
    turn.append({"role": "user", "content": prompt})
    if system:
        return [turn[0], *earlier, turn[1]], turn
    return [*earlier, *turn], turn
