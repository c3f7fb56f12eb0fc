"""Reading a message: prompt_toolkit's line editor, the one place ``rill chat`` imports it.

Emacs keys; up-arrow history kept in a 0600 file under the cache folder; a bracketed paste is
inserted (newlines included), never sent; ``\"\"\"`` alone on a line starts a multi-line message
that the next ``\"\"\"`` line ends; Ctrl-C clears the line; Ctrl-D on an empty line ends.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.history import FileHistory, InMemoryHistory

from rill.errors import UsageError
from rill.files import append, make_dirs, read_private

PROMPT = "> "
MORE = "… "
FENCE = '"""'


class PrivateHistory(FileHistory):
    """prompt_toolkit's history file format, written 0600 and never through a symlink."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(str(path))

    def load_history_strings(self) -> Iterable[str]:
        try:
            data = read_private(self.path)
        except OSError:
            return []  # a history that cannot be read is only a convenience lost
        return list(_parse(data.decode("utf-8", "replace")))

    def store_string(self, string: str) -> None:
        lines = "".join(f"+{line}\n" for line in string.split("\n"))
        try:
            make_dirs(self.path.parent)
            append(self.path, f"\n# \n{lines}".encode())
        except OSError:
            pass


def _parse(text: str) -> Iterator[str]:
    """Newest first, as prompt_toolkit wants them."""
    items: list[str] = []
    lines: list[str] = []
    for line in text.split("\n"):
        if line.startswith("+"):
            lines.append(line[1:])
        elif lines:
            items.append("\n".join(lines))
            lines = []
    if lines:
        items.append("\n".join(lines))
    return reversed(items)


class SlashCompleter(Completer):
    """``/`` completes a command; ``/model `` completes a cached model ID or an alias."""

    def __init__(self, commands: Iterable[str], models: Callable[[], list[str]]) -> None:
        self.commands = sorted(commands)
        self.models = models

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for name in self.commands:
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text))
            return
        command, _, rest = text.partition(" ")
        if command == "/model" and " " not in rest:
            for model in self.models():
                if model.startswith(rest):
                    yield Completion(model, start_position=-len(rest))


class LineEditor:
    def __init__(
        self, history_file: Path | None, commands: Iterable[str], models: Callable[[], list[str]]
    ) -> None:
        """``history_file`` None: the up-arrow history lasts only as long as the session."""
        history = PrivateHistory(history_file) if history_file is not None else InMemoryHistory()
        self.session: PromptSession[str] = PromptSession(
            history=history,
            completer=SlashCompleter(commands, models),
            complete_while_typing=False,
            editing_mode=EditingMode.EMACS,
            enable_history_search=False,
        )

    def read(self) -> str | None:
        """The next message (a command included), or None at Ctrl-D on an empty line."""
        while True:
            try:
                text = self.session.prompt(PROMPT)
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt: the line is cleared, nothing is sent
            except EOFError:
                return None
            if text.strip() == FENCE:
                block = self._block()
                if block is None:
                    continue
                text = block
            if text.strip():
                return text

    @staticmethod
    def leave(error: BaseException) -> None:
        """End the prompt being read with ``error`` (from a signal handler): a running prompt
        is asked to exit with it, so the terminal is restored first; else it is raised."""
        from prompt_toolkit.application.current import get_app_or_none

        app = get_app_or_none()
        loop = getattr(app, "loop", None) if app is not None else None
        if app is None or not app.is_running or loop is None:
            raise error
        loop.call_soon_threadsafe(lambda: app.exit(exception=error))

    def _block(self) -> str | None:
        """The lines up to the closing ``\"\"\"``; None when Ctrl-C abandons them."""
        lines: list[str] = []
        while True:
            try:
                line = self._more()
            except KeyboardInterrupt:
                return None
            except EOFError:
                break
            if line.strip() == FENCE:
                break
            lines.append(line)
        return "\n".join(lines)

    def _more(self) -> str:
        # A continuation line does not go into the up-arrow history on its own.
        from prompt_toolkit import prompt

        return prompt(MORE)


def edit_message(environ: dict[str, str] | os._Environ[str]) -> str:
    """Compose a message in ``$VISUAL``/``$EDITOR``; the saved text ('' when left empty)."""
    editor = environ.get("VISUAL") or environ.get("EDITOR")
    if not editor:
        raise UsageError("/edit needs $VISUAL or $EDITOR to name an editor")
    fd, name = tempfile.mkstemp(prefix="rill-chat-", suffix=".md")
    os.close(fd)
    try:
        try:
            done = subprocess.run([*shlex.split(editor), name], check=False)
        except OSError as exc:
            raise UsageError(f"cannot run the editor {editor!r}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise UsageError(f"the editor exited with {done.returncode}; nothing was sent")
        return Path(name).read_text(encoding="utf-8", errors="replace").strip()
    finally:
        os.unlink(name)
