"""The package's layers: no module imports a layer above its own, nor another module's privates.

Every module under ``src/rill`` is parsed with ``ast`` (nothing is imported), and each import of a
``rill`` module is checked, whether it sits at the top of the file, inside a function or under
``if TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A module may import its own layer and the layers below it. ``rill`` itself
#: (``__version__``; its lazy attributes import nothing until a library user asks for them) is
#: at the bottom. ``rill.fake`` is a standalone tool (``python -m rill.fake``) that may use
#: anything below the commands, which start it (``rill fake-server``). ``rill.serve`` is
#: ``rill serve``'s server: it answers like the commands (``history --json``, ``usage --json``).
LAYERS: list[tuple[str, ...]] = [
    (
        "rill",
        "rill.errors",
        "rill.events",
        "rill.env",
        "rill.files",
        "rill.process",
        "rill.urls",
        "rill.values",
        "rill.schema",
    ),
    ("rill.config",),
    ("rill.stream",),
    ("rill.history",),
    ("rill.output", "rill.terminal"),
    ("rill.input",),
    ("rill.batch", "rill.api", "rill.chat", "rill.tools"),
    ("rill.fake",),
    ("rill.commands", "rill.serve"),
    ("rill.cli", "rill.__main__"),
]

#: Upward imports that are accepted for now, as (importing module, imported name). Remove an
#: entry once its import is gone (the test says which ones are no longer needed).
ALLOWED_UPWARD: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Imported:
    module: str
    """The importing module."""
    target: str
    """The imported module (``from X import name``: X, or X.name when that is a module)."""
    name: str | None
    """The imported name (``from X import name``), None for ``import X``."""
    line: int

    @property
    def what(self) -> str:
        return f"{self.target}.{self.name}" if self.name else self.target

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.what}"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str, src: Path = SRC) -> bool:
    base = src.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def rill_imports(source: str, module: str, is_package: bool, src: Path = SRC) -> Iterator[Imported]:
    """Every import of a ``rill`` module in ``source``, the source of ``module``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "rill" or alias.name.startswith("rill."):
                    yield Imported(module, alias.name, None, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            if base != "rill" and not base.startswith("rill."):
                continue
            for alias in node.names:
                target = base
                if alias.name != "*" and is_module(f"{base}.{alias.name}", src):
                    target = f"{base}.{alias.name}"
                name = None if target != base else alias.name
                yield Imported(module, target, name, node.lineno)


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of the layer ``module`` belongs to (None: in none of them)."""
    for n, layer in enumerate(LAYERS):
        for prefix in layer:
            # "rill" is the package's own __init__ only; every other entry includes its submodules
            if module == prefix or (prefix != "rill" and module.startswith(prefix + ".")):
                return n
    return None


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def problems(found: Imported) -> list[str]:
    """What is wrong with one import: a higher layer, a private name, an unknown module."""
    out = []
    mine, theirs = layer_of(found.module), layer_of(found.target)
    if mine is None or theirs is None:
        unknown = found.module if mine is None else found.target
        out.append(f"{found}: {unknown} is in no layer (add it to LAYERS)")
    elif theirs > mine:
        out.append(f"{found}: {LAYERS[theirs][0]} is above {LAYERS[mine][0]}")
    private = [p for p in [*found.target.split("."), found.name or ""] if is_private(p)]
    if private:
        out.append(f"{found}: {', '.join(private)} is private to its module")
    return out


def all_imports() -> list[Imported]:
    found: list[Imported] = []
    for path in sorted((SRC / "rill").rglob("*.py")):
        module = module_name(path)
        is_package = path.name == "__init__.py"
        found += rill_imports(path.read_text(encoding="utf-8"), module, is_package)
    return found


def test_the_scan_sees_the_package() -> None:
    found = all_imports()
    assert any(f.module == "rill.cli" and f.target.startswith("rill.commands") for f in found)
    assert any(f.module.startswith("rill.history.") and f.target == "rill.files" for f in found)
    assert len({f.module for f in found}) > 50


def test_no_module_imports_a_higher_layer_or_a_private_name() -> None:
    found = all_imports()
    allowed_seen = {(f.module, f.what) for f in found} & ALLOWED_UPWARD
    wrong = [
        problem
        for f in found
        if (f.module, f.what) not in ALLOWED_UPWARD
        for problem in problems(f)
    ]
    assert wrong == []
    stale = sorted(ALLOWED_UPWARD - allowed_seen)
    assert stale == [], f"no longer imported: remove {stale} from ALLOWED_UPWARD"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("rill.config.models", "from rill.commands.completion import X\n", "is above"),
        ("rill.config.models", "def f():\n    import rill.stream.client\n", "is above"),
        ("rill.history.store", "from rill.history.records import _HEAD\n", "_HEAD is private"),
        ("rill.history.store", "from .records import _clean\n", "_clean is private"),
        ("rill.stream.sse", "from rill.fake import FakeOpenRouter\n", "is above"),
        ("rill.fake.server", "from rill.commands import fake\n", "is above"),
        ("rill.history.store", "from rill.nowhere import x\n", "is in no layer"),
    ],
)
def test_the_check_reports_a_violation(module: str, source: str, expected: str) -> None:
    found = list(rill_imports(source, module, is_package=False))
    assert found
    assert any(expected in problem for f in found for problem in problems(f))


@pytest.mark.parametrize(
    "source",
    [
        "from rill.errors import RillError\n",
        "from rill import __version__\n",
        "from rill.history import index\n",
        "from . import index\n",
        "import rill.history.files\n",
    ],
)
def test_the_check_lets_a_lower_or_same_layer_import_through(source: str) -> None:
    found = list(rill_imports(source, "rill.history.store", is_package=False))
    assert found
    assert [problem for f in found for problem in problems(f)] == []
