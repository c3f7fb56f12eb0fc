"""What rill does differently when a person watches: colour, spinner, live markdown, safe text.

Only runs whose stdout or stderr is a terminal import this package; a pipe never pays for it.
"""
