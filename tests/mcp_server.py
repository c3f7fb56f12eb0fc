"""A tiny stdio MCP server for the ``--mcp`` end-to-end test, written with the official SDK.

Its one tool, ``shout``, answers its ``text`` in capitals with a "!"; ``fail`` always reports an
error. Run as a script: ``python tests/mcp_server.py``.
"""

from __future__ import annotations

try:  # the SDK's 2.x name
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

server = Server("rill-test")


@server.tool()
def shout(text: str) -> str:
    """Say TEXT in capitals."""
    return text.upper() + "!"


if __name__ == "__main__":
    server.run("stdio")
