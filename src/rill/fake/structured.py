"""Structured output and code blocks: the canned answers ``--schema`` and ``-x`` are shown with.

- ``fake/schema`` answers a ``response_format: json_schema`` request with an instance generated
  from its schema (every property, the first ``enum`` value, two items per list), streamed in
  small pieces; ``fake/schema-invalid`` answers with the same instance broken at its first leaf
  (a string where a number should be, and the reverse);
- ``fake/no-structured-output`` refuses such a request the way OpenRouter relays a provider that
  cannot do it: HTTP 400, "Provider returned error", the provider's text in ``metadata.raw``;
- ``fake/code`` answers with prose around two fenced code blocks (a ``python`` one, then a
  ``~~~`` one holding a nested ````` ``` ````` fence), one character per delta.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rill.fake.scenario import Scenario

CATALOGUE: list[tuple[str, str]] = [
    ("schema", "a JSON instance of the request's response_format json_schema, in small pieces"),
    ("schema-invalid", "the same instance with its first leaf of the wrong type"),
    ("no-structured-output", "HTTP 400 for a request with response_format (provider's words)"),
    ("code", "prose around a ```python block and a ~~~ block, one character per delta"),
]

#: What ``fake/code`` answers; ``CODE_FIRST`` and ``CODE_LAST`` are its blocks' contents.
CODE_FIRST = 'def greet(name):\n    return f"hello {name}"\n'
CODE_LAST = "echo start\n```\nnot a fence here\n```\necho end\n"
CODE_ANSWER = (
    "Here is the function:\n\n```python\n"
    + CODE_FIRST
    + "```\n\nAnd a script that prints a fence:\n\n~~~bash\n"
    + CODE_LAST
    + "~~~\n\nThat is all.\n"
)
NO_STRUCTURED_MESSAGE = "This model does not support response_format json_schema"
_PIECE = 6  # characters per content delta of fake/schema


def schema_of(body: Mapping[str, Any] | None) -> Any:
    """The JSON Schema a request asks for (``response_format.json_schema.schema``), or None."""
    fmt = (body or {}).get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    return spec.get("schema") if isinstance(spec, dict) else None


def instance(schema: Any, name: str = "value", depth: int = 0) -> Any:
    """A value valid for the common keywords of ``schema`` (type, properties, items, enum,
    const, anyOf/oneOf, minimum, minItems), deterministic."""
    if not isinstance(schema, dict) or depth > 32:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {key: instance(sub, key, depth + 1) for key, sub in props.items()}
    if kind == "array":
        count = max(2, schema.get("minItems", 0) if isinstance(schema.get("minItems"), int) else 0)
        return [instance(schema.get("items"), f"{name}{i + 1}", depth + 1) for i in range(count)]
    if kind == "integer":
        low = schema.get("minimum")
        return low if isinstance(low, int) and not isinstance(low, bool) and low > 42 else 42
    if kind == "number":
        low = schema.get("minimum")
        return low if isinstance(low, int | float) and low > 3.5 else 3.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"{name} text"


def broken(value: Any) -> Any:
    """``value`` with its first leaf replaced by one of another type."""
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return {**value, first: broken(value[first])}
    if isinstance(value, list) and value:
        return [broken(value[0]), *value[1:]]
    if isinstance(value, str):
        return 12345
    return "not the right type"


def scenario(key: str, body: Mapping[str, Any] | None) -> Scenario | None:
    """The scenario of ``fake/KEY`` for one of this module's keys, else None."""
    if key == "code":
        return Scenario(content=list(CODE_ANSWER))
    if key == "no-structured-output":
        if schema_of(body) is None and not (body or {}).get("response_format"):
            return Scenario(content=["A plain answer: no response_format was asked for."])
        raw = json.dumps({"error": {"message": NO_STRUCTURED_MESSAGE, "type": "invalid_request"}})
        return Scenario.error(
            400,
            error_body={
                "error": {
                    "code": 400,
                    "message": "Provider returned error",
                    "metadata": {"raw": raw, "provider_name": "FakeProvider"},
                }
            },
        )
    if key not in ("schema", "schema-invalid"):
        return None
    schema = schema_of(body)
    if schema is None:
        return Scenario(content=["This model answers requests with a json_schema response_format."])
    value = instance(schema)
    if key == "schema-invalid":
        value = broken(value)
    text = json.dumps(value, ensure_ascii=False)
    return Scenario(content=[text[i : i + _PIECE] for i in range(0, len(text), _PIECE)])
