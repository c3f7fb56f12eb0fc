"""URLs as they may be shown: without the ``user:password@`` part a base URL may carry.

A base URL such as ``https://user:secret@proxy.example/v1`` is a credential. rill sends it where
the user pointed it, but every line it prints (a dry run, an error, ``config show``) goes
through ``display_url`` or ``display_urls`` first. Pure string work, no parsing that can fail:
the URLs that need hiding most are often the malformed ones an error is about.
"""

from __future__ import annotations

import re

__all__ = ["display_url", "display_urls"]

#: ``scheme://`` then an authority holding an ``@``: the userinfo ends at its last ``@``.
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@'\"]*@")


def display_url(url: str) -> str:
    """``url`` without its userinfo: ``https://u:p@host/v1`` → ``https://host/v1``.

    Anything before the first ``/``, ``?`` or ``#`` of the authority and up to its last ``@``
    is dropped, with or without a scheme (``u:p@host/v1`` → ``host/v1``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cuts = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    end = min(cuts, default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{rest[end:]}"


def display_urls(text: str) -> str:
    """``text`` with the userinfo of every ``scheme://…@`` URL in it dropped (an error message
    that quotes a URL)."""
    if "@" not in text:
        return text
    while True:
        cleaned = _USERINFO_IN_TEXT.sub(r"\1", text)
        if cleaned == text:
            return cleaned
        text = cleaned
