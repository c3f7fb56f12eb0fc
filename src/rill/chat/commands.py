"""The slash commands of ``rill chat``; anything else typed is a message to send."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rill.chat.session import ChatSession

HELP = """\
Enter sends. A paste is inserted, not sent; \"\"\" alone on a line starts and ends a multi-line
message. Ctrl-C stops an answer (what arrived is kept) or clears the line; Ctrl-D leaves.
  /model ID      go on with another model (an alias works; Tab completes cached IDs)
  /system TEXT   set the system prompt for the next message
  /attach PATH   attach a file to the next message
  /retry         ask the last message again (the earlier answer stays in history)
  /edit          write the message in $VISUAL or $EDITOR
  /usage         this chat's tokens and cost
  /history       the chat so far
  /help          this help
  /exit          leave"""


def attach(session: ChatSession, path: str) -> None:
    """``/attach PATH``: the file (or an http(s) URL) goes with the next message, after its text;
    without PATH, what is waiting to go. A file that cannot be attached is one line, not sent."""
    from rill.errors import RillError
    from rill.input.attachments import load

    if not path:
        waiting = ", ".join(a.label() for a in session.attached) or "nothing"
        session.say(f"attached to the next message: {waiting}")
        return
    try:
        attachment = load(path)
    except RillError as exc:
        session.say(f"rill: {exc.message}")
        return
    session.attached.append(attachment)
    session.say(f"attached {attachment.label()}; it goes with the next message")


def _model(session: ChatSession, rest: str) -> None:
    if not rest:
        session.say(f"model: {session.settings.model}")
        return
    session.set_model(rest)
    session.say(f"model: {session.settings.model}")


def _system(session: ChatSession, rest: str) -> None:
    if not rest:
        session.say("rill: /system needs the text of the system prompt")
        return
    session.system = rest
    session.say("system prompt set; it goes with the next message")


def _usage(session: ChatSession, _rest: str) -> None:
    rows = session.chat_usage()
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in rows)
    completion = sum(int(u.get("completion_tokens") or 0) for u in rows)
    costs = [u.get("cost") for u in rows if isinstance(u.get("cost"), int | float | str)]
    cost = f" · ${sum(Decimal(str(c)) for c in costs):.6f}" if costs else " · cost unknown"
    session.say(f"{len(rows)} exchanges · {prompt} prompt + {completion} completion tokens{cost}")


def _history(session: ChatSession, _rest: str) -> None:
    session.show_history()


def _help(session: ChatSession, _rest: str) -> None:
    session.say(HELP)


def _noop(session: ChatSession, rest: str) -> None:
    pass


SIMPLE: dict[str, Callable[[ChatSession, str], None]] = {
    "/model": _model,
    "/system": _system,
    "/attach": attach,
    "/usage": _usage,
    "/history": _history,
    "/help": _help,
}
COMMANDS = (*SIMPLE, "/retry", "/edit", "/exit")


def dispatch(session: ChatSession, text: str) -> int | None:
    """Run a command or send a message; an exit code when the session ends."""
    stripped = text.strip()
    word, _, rest = stripped.partition(" ")
    if not _is_command(stripped):
        return session.send(text)
    rest = rest.strip()
    if word == "/exit":
        return 0
    if word == "/retry":
        if session.last_text is None:
            session.say("rill: nothing to retry yet")
            return None
        return session.send(session.last_text, retry=True)
    if word == "/edit":
        from rill.chat.editor import edit_message

        message = edit_message(os.environ)
        if not message:
            session.say("rill: the message was empty; nothing was sent")
            return None
        return session.send(message)
    handler = SIMPLE.get(word)
    if handler is None:
        session.say(f"rill: no command {word}; /help lists them (nothing was sent)")
        return None
    handler(session, rest)
    return None


def _is_command(text: str) -> bool:
    """``/word`` on a single line; a path like ``/etc/hosts is…`` is still a command word, but a
    multi-line message starting with a slash is a message."""
    if "\n" in text or not text.startswith("/") or len(text) < 2:
        return False
    word = text.split(" ", 1)[0]
    return word[1:].replace("-", "").replace("_", "").isalnum()
