"""``rill serve``: the streaming core behind a local HTTP server, for browsers and for every
app that speaks OpenAI's API.

Modules: ``context`` (what the endpoints share, request bodies, OpenAI-shaped errors),
``registry`` (the active requests), ``streaming`` (a ``ChatStream`` pulled from the thread pool
into an ASGI response, cancelled when the client goes away), ``gateway`` (``/v1``), ``chats``
(``/api``), ``app`` (routes, token and size guard, CORS, the page ``page.html``) and ``server``
(uvicorn on rill's own socket, signals). Starlette and uvicorn come from the optional ``serve``
extra; only ``rill serve`` imports this package.
"""
