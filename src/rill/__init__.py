"""rill: stream LLM completions from OpenRouter or any OpenAI-compatible server into the shell.

The package can be used as a library: ``rill.stream_chat(...)`` yields the typed events
``Start``, ``Chunk``, ``Reasoning``, ``ToolCall`` and finally ``Done`` or ``Error``. They are
loaded on first use, so ``import rill`` stays cheap for the command line.
"""

from __future__ import annotations

import sys
from typing import Any

# httpx imports its own command line (click, rich, pygments: about 50 ms) whenever click can be
# imported, and uvicorn, which `rill serve` runs on, brings click along. rill never uses httpx's
# command line: a None entry makes that one import fail at once (httpx then skips it), so every
# rill command starts as fast with the serve extra installed as without it.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"

_LAZY = {
    "stream_chat": "rill.api",
    "Start": "rill.events",
    "Chunk": "rill.events",
    "Reasoning": "rill.events",
    "ToolCall": "rill.events",
    "Done": "rill.events",
    "Error": "rill.events",
    "RillError": "rill.errors",
    "ExitCode": "rill.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rill' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
