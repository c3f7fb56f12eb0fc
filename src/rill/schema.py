"""``--schema``: what shape an answer must have, and the check of an answer against it.

A schema is given as inline JSON (``'{"type": "object", ...}'``), as ``@FILE`` (a file holding
that JSON), or in the concise form ``name, age int, score float, ok bool, bio: a description``:
fields separated by commas (or by newlines, when there is one, so that a description may hold
commas), each ``NAME [TYPE][: DESCRIPTION]`` with TYPE one of ``str`` (the default), ``int``,
``float`` and ``bool``. Every concise field is required and no other field is allowed, as
OpenAI's strict structured output demands.

The request asks for it as ``response_format: {"type": "json_schema", "json_schema": {"name",
"strict": true, "schema"}}``; once the answer is complete, ``Schema.check`` parses and validates
it. The validator (``jsonschema``) is imported only then, and when a schema is parsed, so that a
run without ``--schema`` never loads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rill.errors import ConfigError, SchemaMismatch, UsageError
from rill.values import has_non_finite, nested_deeper

#: The concise form's types, by every spelling accepted.
TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_FIELD = re.compile(r"\s*([A-Za-z_][\w-]*)(?:\s+(\w+))?\s*(?::(.*))?", re.DOTALL)
#: What a reason quotes of the answer at most (a value can be the whole answer).
_REASON_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Schema:
    """A JSON Schema an answer must match, with the name the request gives it."""

    schema: dict[str, Any]
    name: str = "answer"

    def response_format(self) -> dict[str, Any]:
        """The request's ``response_format`` field."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "strict": True, "schema": self.schema},
        }

    def check(self, text: str) -> Any:
        """The answer parsed, when it is JSON valid for the schema; else ``SchemaMismatch``
        with a one-line reason naming the first failing path (``$.items[0].age``)."""
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SchemaMismatch(f"the answer is not JSON ({_json_reason(exc, text)})") from None
        except RecursionError:
            raise SchemaMismatch("the answer is not JSON rill can read (nested too deep)") from None
        jsonschema = _jsonschema()
        validator = jsonschema.validators.validator_for(self.schema)(self.schema)
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except RecursionError:
            raise SchemaMismatch("the answer is nested too deep to check") from None
        if error is None:
            return value
        message = " ".join(str(error.message).split())
        if len(message) > _REASON_LIMIT:
            message = message[: _REASON_LIMIT - 1] + "…"
        raise SchemaMismatch(
            f"the answer does not match the schema at {error.json_path}: {message}",
            path=error.json_path,
        )


def parse_schema(spec: str | dict[str, Any], *, multi: bool = False) -> Schema:
    """The schema ``spec`` gives (inline JSON, ``@FILE``, the concise form, or a table already
    decoded); ``multi`` asks for a list of them, as ``{"items": [...]}``. A spec that is no
    schema is a usage error naming the problem."""
    if isinstance(spec, dict):
        schema = spec
    elif not isinstance(spec, str):
        raise UsageError("a schema is a JSON object or a string (inline JSON, @FILE, fields)")
    elif spec.startswith("@"):
        schema = _decode(_read(spec[1:]), f"the schema file {spec[1:]}")
    elif spec.lstrip().startswith("{"):
        schema = _decode(spec, "the schema")
    else:
        schema = concise(spec)
    _check_schema(schema)
    if multi:
        return Schema(wrap_multi(schema), name="items")
    name = schema.get("title")
    if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return Schema(schema, name=name)
    return Schema(schema)


def wrap_multi(schema: dict[str, Any]) -> dict[str, Any]:
    """``--schema-multi``: an object whose required ``items`` is a list of ``schema``."""
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": schema}},
        "required": ["items"],
        "additionalProperties": False,
    }


def concise(spec: str) -> dict[str, Any]:
    """``name, age int, bio: a description`` as an object schema (see the module's docs)."""
    parts = spec.split("\n") if "\n" in spec else spec.split(",")
    properties: dict[str, Any] = {}
    for part in parts:
        if not part.strip():
            if "\n" in spec:
                continue  # blank lines between fields
            raise UsageError(f"schema {spec!r}: an empty field (two commas in a row?)")
        match = _FIELD.fullmatch(part)
        if match is None:
            raise UsageError(
                f"schema field {part.strip()!r}: write NAME [TYPE][: description], "
                f"TYPE one of str, int, float, bool"
            )
        name, kind, description = match[1], match[2], match[3]
        if kind is not None and kind.lower() not in TYPES:
            raise UsageError(
                f"schema field {name!r}: unknown type {kind!r} (use str, int, float or bool)"
            )
        if name in properties:
            raise UsageError(f"schema field {name!r} is given twice")
        field: dict[str, Any] = {"type": TYPES[kind.lower()] if kind else "string"}
        if description is not None and description.strip():
            field["description"] = description.strip()
        properties[name] = field
    if not properties:
        raise UsageError("the schema has no fields")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _read(path: str) -> str:
    if not path:
        raise UsageError("--schema @FILE: give a file name after @")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the schema file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the schema file {path} is not UTF-8 text") from None


def _decode(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON ({_json_reason(exc, text)})") from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deep") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object")
    return value


def _check_schema(schema: dict[str, Any]) -> None:
    if has_non_finite(schema) or nested_deeper(schema):
        raise UsageError("the schema holds NaN, Infinity or values nested too deep")
    jsonschema = _jsonschema()
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = exc.json_path if hasattr(exc, "json_path") else "$"
        raise UsageError(f"not a valid JSON Schema at {where}: {exc.message}") from None


def _json_reason(exc: ValueError, text: str) -> str:
    if not text.strip():
        return "it is empty"
    return str(getattr(exc, "msg", exc)) + (
        f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
    )


def _jsonschema() -> Any:
    """The validator package, imported on first use."""
    try:
        import jsonschema
        import jsonschema.exceptions
        import jsonschema.validators
    except ImportError:  # pragma: no cover - a dependency, missing only from a broken install
        raise ConfigError("--schema needs the jsonschema package: pip install jsonschema") from None
    return jsonschema
