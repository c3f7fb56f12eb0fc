"""Subcommands of ``rill``, one module per command group.

Each module exposes ``register(app)`` and imports only typer and the standard library at module
level; the work (history files, rich tables, HTTP) is imported inside the command bodies, so a
plain ``rill "prompt"`` never pays for it.
"""
