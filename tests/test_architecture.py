"""``docs/architecture.md`` names only modules that exist, and every package of the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "rill"
DOC = ROOT / "docs" / "architecture.md"


def named_paths() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r"\b([a-z_]+(?:/[a-z_]+)*(?:\.py|/))(?![\w/])", text))


def test_every_module_the_map_names_exists() -> None:
    names = named_paths()
    assert len(names) > 20  # the pattern saw the map's module names
    missing = sorted(n for n in names if not (SRC / n).exists() and not (ROOT / n).exists())
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_map_names_every_package_and_top_level_module() -> None:
    names = named_paths()
    packages = {f"{p.name}/" for p in SRC.iterdir() if (p / "__init__.py").exists()}
    modules = {p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    absent = sorted(
        (packages | modules) - {n.split("/")[0] + "/" if "/" in n else n for n in names} - names
    )
    assert absent == [], f"docs/architecture.md does not mention: {absent}"
