"""Run the app under uvicorn on a socket rill binds itself, and stop it on a signal.

SIGINT and SIGTERM (SIGHUP like SIGTERM) stop accepting connections, cancel every active stream
(each keeps its partial answer, marked cancelled) and let the answers end; the exit status is
then 130 or 143. A second SIGINT leaves without waiting.
"""

from __future__ import annotations

import gc
import ipaddress
import signal
import socket
from collections.abc import Callable, Generator
from contextlib import contextmanager, suppress
from types import FrameType

import anyio.lowlevel
import uvicorn

from rill.errors import Cancelled, ExitCode, UsageError
from rill.serve.registry import Registry

_CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}
_NAMES: dict[int, str] = {
    signal.SIGINT: "SIGINT",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); a usage error when it cannot
    be had."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, registry: Registry) -> None:
        super().__init__(config)
        self.registry = registry
        self.signals: list[int] = []

    @contextmanager
    def catch_signals(self) -> Generator[None, None, None]:
        """Signals only set flags here (the loop acts on them at its next tick); unlike
        uvicorn's own handling, the signal is not raised again afterwards: rill exits with
        its status. Installed before the URL is announced, so no signal is missed."""
        caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in caught}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # ``catch_signals`` already holds them

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.signals.append(sig)
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        await anyio.lowlevel.checkpoint()  # anyio's loop backend is loaded now, not by a request
        gc.freeze()  # and joins what ``run`` froze

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        first = self.signals[0] if self.signals else signal.SIGTERM
        code = _CODES.get(signal.Signals(first), ExitCode.TERMINATED)
        self.registry.cancel_all(Cancelled(_NAMES.get(first, "a signal"), code))
        await super().shutdown(sockets)


def run(
    app: object,
    sock: socket.socket,
    registry: Registry,
    *,
    ready: Callable[[], None],
    close: Callable[[], None],
) -> int:
    """Serve until a signal (``ready`` announces the server once signals are caught); the exit
    status it calls for."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = Server(config, registry)
    try:
        with server.catch_signals():
            config.load()
            # What exists now lives as long as the server: modules, classes, the app. The cyclic
            # collector need not look at it again: a full collection then takes a few
            # milliseconds instead of 20-30 ms with the event loop stopped. Collected before the
            # address is announced, so that no request waits for this collection either.
            gc.collect()
            gc.freeze()
            ready()
            server.run(sockets=[sock])
    finally:
        close()
        with suppress(OSError):
            sock.close()
    if not server.signals:
        return 0
    return int(_CODES.get(signal.Signals(server.signals[0]), ExitCode.TERMINATED))
