"""Safe output: control characters in upstream text are made visible, so an answer (or an error
message, a model name) cannot set the window title, write the clipboard (OSC 52), plant
hyperlinks, move the cursor or hide text with ``\\r`` / backspace.

Pure string work: no I/O, no rich.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, lone surrogates (undecodable bytes, which
#: would otherwise reach the terminal as raw 8-bit C1 codes), and CRLF (kept as a newline).
_UNSAFE = re.compile("\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    s = m.group()
    if s == "\r\n":
        return "\n"
    code = ord(s)
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode control pictures: ESC is shown as "␛"
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F:
        return "\u241b" + chr(code - 0x40)  # a C1 code as its 7-bit spelling: CSI is "␛["
    return "\ufffd"


def neutralise(text: str) -> str:
    """Make terminal control characters in ``text`` visible; ``\\n`` and ``\\t`` stay."""
    return _UNSAFE.sub(_visible, text) if _UNSAFE.search(text) else text


class SafeText:
    """``neutralise`` for a stream of deltas: a CR at the end of one delta waits for the next,
    which decides whether it is half of a CRLF (a newline) or a bare CR (shown as ``␍``)."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._cr = True
        return neutralise(text)

    def flush(self) -> str:
        if self._cr:
            self._cr = False
            return "\u240d"
        return ""


class Exact:
    """``--raw``: the text as the model sent it."""

    def feed(self, text: str) -> str:
        return text

    def flush(self) -> str:
        return ""
