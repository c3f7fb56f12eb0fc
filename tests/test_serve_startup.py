"""``rill serve``'s start-up in process: what exists once the server has started (modules, the
app) is frozen out of the cyclic collector, so that a full collection under load looks only at
what requests made and stops the event loop for milliseconds, not tens of them."""

from __future__ import annotations

import asyncio
import gc

import uvicorn
from starlette.applications import Starlette

from rill.serve.registry import Registry
from rill.serve.server import Server, bind


def test_start_up_freezes_what_exists_out_of_the_collector() -> None:
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(Starlette(), lifespan="off", log_level="warning")
    server = Server(config, Registry())
    gc.unfreeze()
    before = gc.get_freeze_count()

    async def main() -> int:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(20):
                while not server.started:
                    await asyncio.sleep(0.01)
            return gc.get_freeze_count()
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 20)

    try:
        frozen = asyncio.run(main())
    finally:
        gc.unfreeze()
        sock.close()
    assert before == 0
    assert frozen > 10_000  # the interpreter's, pytest's and rill's modules at least
