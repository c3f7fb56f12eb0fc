"""Consent: a tool call runs only when the user said yes.

On a terminal (stdin and stderr both terminals) each call is shown, tool and arguments, and the
user answers yes, no, or yes to all (for the rest of this run). Without a terminal a call runs
only with ``--yes``; otherwise it is not run and the model is told it was not approved.
"""

from __future__ import annotations

from rill.env import Environment
from rill.output.diagnostics import PREFIX, safe_for

#: How much of the arguments the question shows.
_SHOWN = 2000


class Consent:
    def __init__(self, env: Environment, *, yes: bool = False) -> None:
        self.env = env
        self.yes = yes
        self.all = False

    @property
    def can_ask(self) -> bool:
        env = self.env
        return env.stdin is not None and env.stdin_isatty and env.stderr_isatty

    def approve(self, name: str, arguments: str) -> bool:
        """Whether this call may run: ``--yes``, an earlier "all", or the user's answer now."""
        if self.yes or self.all:
            return True
        if not self.can_ask:
            return False
        shown = arguments if len(arguments) <= _SHOWN else arguments[:_SHOWN] + "…"
        safe = safe_for(True)
        question = f"{PREFIX}run tool {safe(name)} {safe(shown)}? [y]es / [n]o / [a]ll: "
        stdin, stderr = self.env.stdin, self.env.stderr
        assert stdin is not None
        while True:
            stderr.write(question)
            stderr.flush()
            line = stdin.readline()
            if not line:  # end of input: no
                stderr.write("\n")
                return False
            answer = line.decode("utf-8", "replace").strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("a", "all"):
                self.all = True
                return True
            if answer in ("n", "no", ""):
                return False
