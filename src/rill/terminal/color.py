"""One colour policy for both streams, rich or not: ``color_enabled``; and the two styles rill
writes itself (``DIM``, ``RESET``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rill.env import isatty

DIM = "\x1b[2m"
RESET = "\x1b[0m"


def color_enabled(stream: Any, setting: str = "auto", env: Mapping[str, str] | None = None) -> bool:
    """Whether styles may be written to ``stream``.

    ``--color always|never`` (or ``color`` in config.toml) decides outright. With ``auto``: a
    non-empty ``NO_COLOR`` turns colour off, then a non-empty ``FORCE_COLOR`` turns it on even
    for a pipe; otherwise colour is on for a terminal whose ``TERM`` is not ``dumb``.
    """
    if setting == "always":
        return True
    if setting == "never":
        return False
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    return env.get("TERM") != "dumb" and isatty(stream)


def terminal_size(stream: Any, env: Mapping[str, str]) -> tuple[int, int]:
    """Columns and lines: ``COLUMNS``/``LINES`` when set, else the terminal's, else 80×24."""
    try:
        size = os.get_terminal_size(stream.fileno())
        width, height = size.columns or 80, size.lines or 24
    except (AttributeError, ValueError, OSError):
        width, height = 80, 24
    columns, lines = env.get("COLUMNS", ""), env.get("LINES", "")
    width = int(columns) if columns.isdigit() and int(columns) else width
    height = int(lines) if lines.isdigit() and int(lines) else height
    return width, height
