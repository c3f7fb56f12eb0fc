"""A fake OpenRouter: a scriptable local stand-in for ``https://openrouter.ai/api/v1``.

For trying rill offline, for testing scripts that call OpenRouter (or any OpenAI-compatible
server), and for rill's own tests and benchmarks. It uses the standard library only::

    $ rill fake-server --port 0            # or: python -m rill.fake --port 0
    http://127.0.0.1:40123/api/v1

The first line on stdout is the base URL; SIGINT or SIGTERM stops the server. In-process::

    with FakeOpenRouter() as server:
        server.enqueue(Scenario(content=["Hel", "lo"]), Scenario.error(429, retry_after=0))
        ...  # POST f"{server.url}/chat/completions" with "Authorization: Bearer sk-or-v1-test"
        assert server.chat_requests[0].body["stream"] is True

Routes are matched on the path suffix, so ``/api/v1/...``, ``/v1/...`` (the prefix generic
OpenAI-compatible servers use) and bare paths all work: ``POST /chat/completions``,
``GET /models`` (no key needed), ``GET /generation?id=``, ``GET /key``, ``GET /auth/key``,
``GET /credits``.

Which answer a chat request gets: the next queued scenario (``enqueue``, first in first out;
``Scenario.repeat`` serves one entry several times); with an empty queue, a request whose
``model`` is ``fake/NAME`` for a canned scenario NAME (``CATALOGUE``, ``--list-scenarios``) gets
that scenario; anything else gets ``server.default_scenario`` (the demo answer, or the
``--scenario`` given, served under the requested model name). The "openrouter" persona then
honours the request's ``models`` (a ``fake/down…`` model is unavailable, the next one serves and
is named in the chunks), ``provider`` preferences and ``cache_control`` breakpoints (a repeated
prefix reports ``cached_tokens``, its first use ``cache_write_tokens``).

Personas reproduce the dialects of other OpenAI-compatible servers: "openrouter" (default),
"openai", "llamacpp-legacy", "vllm-old" and "ollama" (see ``Scenario.persona``).

Modules: ``scenario`` (what to answer), ``canned`` and ``hostile`` (the named scenarios),
``pieces`` and ``chunks`` (building the answer), ``error_bodies``, ``models``, ``wire`` (sockets
and HTTP), ``respond`` (writing one answer), ``endpoints`` (the side endpoints), ``server`` and
``cli`` (the command line). rill's command line never imports this package except for
``rill fake-server``.
"""

from __future__ import annotations

from rill.fake.canned import CATALOGUE, canned_scenario
from rill.fake.cli import main
from rill.fake.common import (
    DEEP_DEPTH,
    DEFAULT_API_KEY,
    DEMO_CONTENT,
    KEEPALIVE_TEXT,
    LONG_CHUNKS,
    LONG_WORDS,
    MSG_NO_AUTH,
    MSG_USER_NOT_FOUND,
    PERSONAS,
)
from rill.fake.error_bodies import ERROR_KINDS, build_error
from rill.fake.models import default_models
from rill.fake.records import Gate, Generation, Headers, Recorded
from rill.fake.scenario import Scenario
from rill.fake.server import FakeOpenRouter

__all__ = [
    "CATALOGUE",
    "DEEP_DEPTH",
    "DEFAULT_API_KEY",
    "DEMO_CONTENT",
    "ERROR_KINDS",
    "KEEPALIVE_TEXT",
    "LONG_CHUNKS",
    "LONG_WORDS",
    "MSG_NO_AUTH",
    "MSG_USER_NOT_FOUND",
    "PERSONAS",
    "FakeOpenRouter",
    "Gate",
    "Generation",
    "Headers",
    "Recorded",
    "Scenario",
    "build_error",
    "canned_scenario",
    "default_models",
    "main",
]
