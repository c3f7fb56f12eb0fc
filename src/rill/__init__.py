"""rill: stream LLM completions from OpenRouter or any OpenAI-compatible server into the shell.

The package can be used as a library: ``rill.stream_chat(...)`` yields the typed events
``Start``, ``Chunk``, ``Reasoning``, ``ToolCall`` and finally ``Done`` or ``Error``. They are
loaded on first use, so ``import rill`` stays cheap for the command line.
"""

from __future__ import annotations

from typing import Any

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
