"""Declared tools: ``tools/NAME.toml`` in the config folder, read and checked.

A tool file holds ``description``, ``parameters`` (a JSON Schema table, an object schema),
``command`` (an argv list, run without a shell) and an optional ``timeout`` in seconds (30 by
default). Only tools the user declared there (or an MCP server they configured) are ever offered
to a model, and only those are run. An unknown tool or a file that is not a valid definition is a
usage error (exit 2) naming it.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rill.errors import UsageError
from rill.values import has_non_finite, nested_deeper

#: Function names the chat-completions API accepts (OpenAI's rule).
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_TIMEOUT = 30.0
_KEYS = {"description", "parameters", "command", "timeout"}
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Tool:
    """One tool the model may call. ``command`` runs it (a declared tool); ``call`` is set
    instead for a tool that another program serves (an MCP server's)."""

    name: str
    description: str
    parameters: dict[str, Any]
    command: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    source: str = ""
    """Where it is declared: the tool file, or ``mcp:NAME``."""
    call: Callable[[dict[str, Any]], tuple[int, str]] | None = field(default=None, compare=False)
    """For a served tool: arguments → (exit code, text)."""

    def as_function(self) -> dict[str, Any]:
        """The request's ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def as_dict(self) -> dict[str, Any]:
        """What ``rill tools show`` prints."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.command:
            out["command"] = list(self.command)
        out["timeout"] = self.timeout
        out["source"] = self.source
        return out


def tools_dir(config_dir: Path) -> Path:
    return config_dir / "tools"


def tool_names(directory: Path) -> list[str]:
    """The names of the tool files in ``directory`` (none when it does not exist)."""
    try:
        files = sorted(directory.glob("*.toml"))
    except OSError:
        return []
    return [p.stem for p in files if NAME.fullmatch(p.stem)]


def load_tool(directory: Path, name: str) -> Tool:
    """The tool ``name`` declared in ``directory``; UsageError naming it when it is unknown or
    its file is not a valid definition."""
    if not NAME.fullmatch(name):
        raise UsageError(f"unknown tool {name!r}: a tool name is letters, digits, _ and -")
    path = directory / f"{name}.toml"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"unknown tool {name!r}: there is no {path}") from None
    except OSError as exc:
        raise UsageError(f"tool {name!r}: cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"tool {name!r}: {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"tool {name!r}: {path} is nested too deeply to read") from None
    return parse_tool(name, data, str(path))


def parse_tool(name: str, data: Mapping[str, Any], source: str) -> Tool:
    """A ``Tool`` from a tool file's table; UsageError saying what is wrong with it."""

    def bad(why: str) -> UsageError:
        return UsageError(f"invalid tool {name!r} ({source}): {why}")

    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise bad("description must be a string")
    command = data.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(a, str) and a and "\0" not in a for a in command)
    ):
        raise bad('command must be a non-empty list of strings (an argv, e.g. ["jq", "."])')
    timeout = data.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise bad("timeout must be a positive number of seconds")
    if timeout != timeout or timeout == float("inf"):
        raise bad("timeout must be a finite number of seconds")
    parameters = check_parameters(data.get("parameters", EMPTY_SCHEMA), bad)
    return Tool(name, description, parameters, tuple(command), float(timeout), source)


def check_parameters(
    parameters: Any, bad: Callable[[str], UsageError] = UsageError
) -> dict[str, Any]:
    """A tool's ``parameters``: an object schema that is itself a valid JSON Schema."""
    if not isinstance(parameters, dict):
        raise bad("parameters must be a table (a JSON Schema)")
    if nested_deeper(parameters) or has_non_finite(parameters):
        raise bad("parameters is nested too deep or holds nan or inf")
    if parameters.get("type", "object") != "object":
        raise bad('parameters must describe an object (type = "object")')
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(parameters).check_schema(parameters)
    except SchemaError as exc:
        raise bad(f"parameters is not a valid JSON Schema: {exc.message}") from None
    return {"type": "object", **parameters}


def load_tools(directory: Path, names: list[str]) -> list[Tool]:
    """The tools ``--tool`` named, in order, each once."""
    seen: dict[str, Tool] = {}
    for name in names:
        if name not in seen:
            seen[name] = load_tool(directory, name)
    return list(seen.values())


def check_arguments(tool: Tool, text: str) -> tuple[dict[str, Any] | None, str | None]:
    """A call's arguments (JSON text) checked against the tool's schema: ``(arguments, None)``
    when they are valid, else ``(None, why not)`` in one line the model can act on."""
    try:
        arguments = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        return None, f"the arguments are not JSON ({exc})"
    except RecursionError:
        return None, "the arguments are nested too deeply"
    if not isinstance(arguments, dict):
        return None, "the arguments must be a JSON object"
    from jsonschema import validators

    validator = validators.validator_for(tool.parameters)(tool.parameters)
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        at = f" at {where}" if where else ""
        return None, f"the arguments do not match the tool's schema{at}: {first.message}"
    return arguments, None
