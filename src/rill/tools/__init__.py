"""Tools the model may call: commands the user declared (and MCP servers' tools), run only with
the user's consent. ``definitions`` reads them, ``run`` runs one call, ``consent`` asks, ``loop``
runs the rounds over ``ChatStream``, ``mcp`` offers a stdio MCP server's tools."""
