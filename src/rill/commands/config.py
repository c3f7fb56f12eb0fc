"""``rill config path|show|get|set|unset``: read and change ``config.toml``.

Values on the command line are TOML values when they parse (``30``, ``true``, ``"text"``, ``{a =
"b"}``) and strings otherwise, so ``rill config set model openai/gpt-4o`` needs no quotes. A key
that expects a string keeps the words as typed (``rill config set system 1984``). ``aliases.NAME``
reaches into the ``[aliases]`` table. The file is rewritten atomically with mode 0600, since it
may hold ``api_key``; other keys are kept, comments are not (TOML writers do not keep them).

``get`` of a key that is not set prints nothing and exits 0: exit 1 means a bug in rill, and an
unset key is not one (an unknown key is a usage error, exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rill.commands.output import warn

config_app = typer.Typer(
    name="config",
    help="Show and change config.toml: path, show, get KEY, set KEY VALUE, unset KEY.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

KeyArg = Annotated[str, typer.Argument(help="A config key, or aliases.NAME for an alias.")]


def _config_file() -> Path:
    from rill.config.settings import resolve_paths

    return resolve_paths().config_file


def read_raw(path: Path) -> dict[str, Any]:
    """The file as TOML, unvalidated (so ``unset`` can remove a key rill does not know)."""
    import tomllib

    from rill.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def save(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    from rill.config.models import write_private

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, tomli_w.dumps(data))


def split_key(key: str) -> tuple[str, str | None]:
    """``"aliases.fast"`` → ``("aliases", "fast")``; ``"model"`` → ``("model", None)``."""
    from rill.config.settings import CONFIG_KEYS
    from rill.errors import UsageError

    name, dot, alias = key.partition(".")
    if dot and name == "aliases" and alias:
        return name, alias
    if dot or name not in CONFIG_KEYS:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise UsageError(f"unknown config key {key!r} (known keys: {known}, aliases.NAME)")
    return name, None


def parse_value(key: str, alias: str | None, text: str) -> Any:
    """VALUE as TOML when it parses and suits the key, else the text itself; then validated."""
    import tomllib

    from rill.config.settings import CONFIG_KEYS, check_config_value
    from rill.errors import ConfigError, UsageError

    value: Any
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    wants_text = alias is not None or CONFIG_KEYS[key] is str
    if wants_text and not isinstance(value, str):
        value = text
    source = "value"
    try:
        if alias is not None:
            check_config_value(key, {alias: value}, source=source)
        else:
            check_config_value(key, value, source=source)
    except ConfigError as exc:
        raise UsageError(exc.message.removeprefix(f"{source}: ")) from None
    return value


def format_value(value: Any) -> str:
    """Strings as they are; other values (numbers, booleans, tables) as TOML."""
    import tomli_w

    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return tomli_w.dumps(value).rstrip("\n")
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


@config_app.command("path")
def config_path() -> None:
    """Print the path of config.toml (it may not exist yet)."""
    typer.echo(str(_config_file()))


@config_app.command("show")
def config_show() -> None:
    """Print the settings in config.toml (the API key redacted)."""
    import tomli_w

    from rill.config.settings import load_config
    from rill.stream.protocol import redact

    path = _config_file()
    data = load_config(path)
    if not path.exists():
        warn(f"no config file yet; rill config set KEY VALUE creates {path}")
        return
    key = data.get("api_key")
    sys.stdout.write(redact(tomli_w.dumps(data), key if isinstance(key, str) else None))
    sys.stdout.flush()


@config_app.command("get")
def config_get(key: KeyArg) -> None:
    """Print the value of KEY (nothing, and exit 0, if it is not set)."""
    name, alias = split_key(key)
    data = read_raw(_config_file())
    value = data.get(name)
    if alias is not None:
        value = value.get(alias) if isinstance(value, dict) else None
    if value is None:
        return
    typer.echo(format_value(value))


@config_app.command("set")
def config_set(
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="The value: a TOML value, or plain text.")],
) -> None:
    """Set KEY to VALUE in config.toml, keeping the other keys."""
    path = _config_file()
    name, alias = split_key(key)
    parsed = parse_value(name, alias, value)
    data = read_raw(path)
    if alias is not None:
        table = data.get(name)
        data[name] = {**(table if isinstance(table, dict) else {}), alias: parsed}
    else:
        data[name] = parsed
    save(path, data)


@config_app.command("unset")
def config_unset(key: KeyArg) -> None:
    """Remove KEY from config.toml (nothing to do when it is not set)."""
    path = _config_file()
    data = read_raw(path)
    name, dot, alias = key.partition(".")
    if not (key in data or (dot and name == "aliases" and alias)):
        split_key(key)  # an unknown name is an error; a known one that is unset is a no-op
        return
    if alias and name == "aliases":
        table = data.get(name)
        if not isinstance(table, dict) or alias not in table:
            return
        del table[alias]
        if not table:
            del data[name]
    else:
        del data[key]
    save(path, data)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)
