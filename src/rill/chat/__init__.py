"""``rill chat``: a conversation on a terminal, one ``ChatStream`` per turn.

- ``turn.py`` streams one answer into the terminal renderer and words its outcome;
- ``session.py`` is the loop: the chat's state, the slash commands, signals at its edge;
- ``editor.py`` reads a message (prompt_toolkit: keys, history, paste, ``\"\"\"``, ``/edit``);
- ``show.py`` renders exchanges already in history (a resumed chat, ``/history``).

Only ``rill chat`` imports this package; ``editor.py`` is the one place prompt_toolkit is used.
"""
