"""Small output helpers shared by the subcommands (never used by the streaming path)."""

from __future__ import annotations

import json
import sys
from typing import Any


def write_json(obj: Any, *, lines: bool = False) -> None:
    """Pretty JSON for ``--json`` (or one compact line per item with ``lines``)."""
    if lines:
        for item in obj:
            sys.stdout.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def console(stderr: bool = False) -> Any:
    """A rich console honouring NO_COLOR / FORCE_COLOR (imported only when a table is shown)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def warn(message: str) -> None:
    sys.stderr.write(f"rill: {message}\n")
    sys.stderr.flush()
