"""Dynamic shell-completion values: model IDs, chat IDs, template names.

Called by the shell-completion machinery while the user presses Tab, so each function reads only
local files (the models cache, the history index, the templates folder), never the network, and
returns nothing rather than failing.
"""

from __future__ import annotations

import json

from rill.config.settings import resolve_paths

MODELS_CACHE = "models.json"


def complete_model(incomplete: str) -> list[str]:
    paths = resolve_paths()
    try:
        data = json.loads((paths.cache_dir / MODELS_CACHE).read_text(encoding="utf-8"))
        ids = [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
    except (OSError, ValueError, AttributeError, TypeError):
        ids = []
    try:
        from rill.config.settings import load_config

        ids += list(load_config(paths.config_file).get("aliases", {}))
    except Exception:  # noqa: BLE001 - a broken config must not break Tab
        pass
    return sorted({i for i in ids if i.startswith(incomplete)})


def complete_chat(incomplete: str) -> list[str]:
    try:
        from rill.history import HistoryStore

        # Read-only: pressing Tab never creates, rebuilds or settles anything in the history.
        rows = HistoryStore(resolve_paths().history_dir, read_only=True).list_chats(limit=200)
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []
    return [r["id"] for r in rows if str(r.get("id", "")).startswith(incomplete)]


def complete_template(incomplete: str) -> list[str]:
    folder = resolve_paths().templates_dir
    try:
        names = [p.stem for p in folder.glob("*.toml")]
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(incomplete))
