"""The streaming pipeline: network reads → chunked → SSE → chunk rules → transcript → events.

Nothing here imports typer or rich, reads flags, or writes to the terminal.
"""
