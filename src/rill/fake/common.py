"""Constants and small helpers shared by the fake server's modules."""

from __future__ import annotations

import json
import random
import string
from typing import Any, Literal

DEFAULT_API_KEY = "sk-or-v1-test"
DEFAULT_MODEL = "openai/gpt-4o"
KEEPALIVE_TEXT = ": OPENROUTER PROCESSING"
MSG_NO_AUTH = "No cookie auth credentials found"
MSG_USER_NOT_FOUND = "User not found."
DEMO_CONTENT = ["Hello", "!", " This", " is", " a", " demo", " answer", " from", " rill's"]
DEMO_CONTENT += [" local", " test", " server", "."]
LONG_CHUNKS = 100_000
DEEP_DEPTH = 100_000  # default nesting of the hostile deep-JSON modes
LONG_WORDS = ["lorem ", "ipsum ", "dolor ", "sit ", "amet ", "consectetur ", "adipiscing "]
LONG_WORDS += ["elit ", "sed ", "do\n"]
PERSONAS = ("openrouter", "openai", "llamacpp-legacy", "vllm-old", "ollama")
Persona = Literal["openrouter", "openai", "llamacpp-legacy", "vllm-old", "ollama"]

POLL = 0.05  # seconds between disconnect checks while idle
_ALNUM = string.ascii_letters + string.digits
JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
JSON_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
USER_ID = "user_2zFakeUser00000000000000"
SIGNATURE = "EqQBCkgIBxABGAIiQFakeSignatureForTestsOnly0123456789abcdefABCDEF=="
REASONS = {524: "A Timeout Occurred", 529: "Site Overloaded"}


def rand(n: int, alphabet: str = _ALNUM, rng: Any = random) -> str:
    return "".join(rng.choices(alphabet, k=n))


def seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def nested_arrays(depth: int) -> str:
    """JSON text of arrays nested ``depth`` deep: ``[[[…]]]`` (no encoder can build it)."""
    return "[" * depth + "]" * depth
