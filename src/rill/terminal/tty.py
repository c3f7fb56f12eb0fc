"""The terminal layer's entry points, kept under their long-standing names.

The work is done in one module per job: ``color`` (colour policy), ``safe`` (neutralising control
characters), ``spinner`` (waiting indicator and stderr guard), ``sinks`` (where text goes) and
``renderers`` (``for_terminal`` and the wrappers it builds).
"""

from __future__ import annotations

from rill.terminal.color import DIM, RESET, color_enabled, terminal_size
from rill.terminal.renderers import TerminalEvents, TerminalText, for_environment, for_terminal
from rill.terminal.safe import Exact, SafeText, neutralise
from rill.terminal.spinner import GuardedStderr, Spinner

__all__ = [
    "DIM",
    "RESET",
    "Exact",
    "GuardedStderr",
    "SafeText",
    "Spinner",
    "TerminalEvents",
    "TerminalText",
    "color_enabled",
    "for_environment",
    "for_terminal",
    "neutralise",
    "terminal_size",
]
