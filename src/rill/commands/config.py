"""``rill config path|show|get|set|unset``: read and change ``config.toml``.

Values on the command line are TOML values when they parse (``30``, ``true``, ``"text"``, ``{a =
"b"}``) and strings otherwise, so ``rill config set model openai/gpt-4o`` needs no quotes. A key
that expects a string keeps the words as typed (``rill config set system 1984``). ``aliases.NAME``
reaches into the ``[aliases]`` table, ``provider.KEY`` into ``[provider]`` (OpenRouter's routing
defaults: ``rill config set provider.order openai,anthropic``). The file is rewritten atomically
with mode 0600, since it may hold ``api_key``; other keys are kept, comments are not (TOML
writers do not keep them).

``get`` prints the value in effect: the environment's, else the file's, else rill's default
(``--show-origin`` says which). A key with no value at all prints nothing and exits 0: exit 1
means a bug in rill, and an unset key is not one (an unknown key is a usage error, exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rill.commands import options as opt
from rill.commands.completion import complete_config_key, complete_config_value
from rill.commands.output import piped, warn

config_app = typer.Typer(
    name="config",
    help="Show and change config.toml: path, show, get KEY, set KEY VALUE, unset KEY.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

KeyArg = Annotated[
    str,
    typer.Argument(
        metavar="KEY",
        help="A config key, or aliases.NAME for an alias.",
        autocompletion=complete_config_key,
    ),
]
#: Keys the environment can set, and the variable that does (it beats config.toml).
ENV_VARS = {"model": "RILL_MODEL", "base_url": "RILL_BASE_URL", "api_key": "OPENROUTER_API_KEY"}


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
    except RecursionError:
        raise ConfigError(f"{path}: a value is nested too deeply to read") from None


def save(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    from rill.config.models import write_private

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, tomli_w.dumps(data))


#: Tables whose entries are set one by one: ``aliases.NAME`` (any name) and ``provider.KEY``.
TABLES = ("aliases", "provider")


def split_key(key: str) -> tuple[str, str | None]:
    """``"aliases.fast"`` → ``("aliases", "fast")``; ``"provider.sort"`` → ``("provider",
    "sort")``; ``"model"`` → ``("model", None)``."""
    from rill.config.settings import CONFIG_KEYS
    from rill.errors import UsageError
    from rill.input.routing import TABLE_KEYS

    name, dot, entry = key.partition(".")
    if dot and name == "aliases" and entry:
        return name, entry
    if dot and name == "provider" and entry in TABLE_KEYS:
        return name, entry
    if dot and name == "provider":
        known = ", ".join(f"provider.{k}" for k in sorted(TABLE_KEYS))
        raise UsageError(f"unknown config key {key!r} (known: {known})")
    if dot or name not in CONFIG_KEYS:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise UsageError(
            f"unknown config key {key!r} (known keys: {known}, aliases.NAME, provider.KEY)"
        )
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
    except RecursionError:
        raise UsageError(f"{key}: the value is nested too deeply to read") from None
    if key == "provider" and alias is not None:
        return _provider_value(alias, value, text)
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


def _provider_value(entry: str, value: Any, text: str) -> Any:
    """A ``provider.KEY`` value, checked as the ``[provider]`` table is: a list may be given as
    TOML (``["openai", "anthropic"]``) or as comma-separated names."""
    from rill.errors import ConfigError, UsageError
    from rill.input.routing import TABLE_KEYS, check_table

    expected = TABLE_KEYS[entry]
    if expected is list and isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    elif expected is str and not isinstance(value, str):
        value = text
    try:
        check_table({entry: value}, source=f"provider.{entry}")
    except ConfigError as exc:
        raise UsageError(exc.message) from None
    return value


def format_value(value: Any) -> str:
    """Strings as they are; other values (numbers, booleans, tables) as TOML."""
    import tomli_w

    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return tomli_w.dumps(value).rstrip("\n")
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        import json  # one line; for strings and numbers JSON is TOML's inline array too

        return json.dumps(value, ensure_ascii=False)
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def shown_value(name: str, value: Any) -> Any:
    """A value as it may be printed: a base URL without its ``user:password@`` part."""
    from rill.urls import display_url

    return display_url(value) if name == "base_url" and isinstance(value, str) else value


@config_app.command("path", cls=opt.Command)
def config_path() -> None:
    """Print the path of config.toml (it may not exist yet)."""
    with piped():
        typer.echo(str(_config_file()))


@config_app.command("show", cls=opt.Command)
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
    shown = {name: shown_value(name, value) for name, value in data.items()}
    with piped():
        sys.stdout.write(redact(tomli_w.dumps(shown), key if isinstance(key, str) else None))


def in_effect(name: str, alias: str | None, path: Path) -> tuple[Any, str]:
    """The value of a key that a run would use, and where it comes from."""
    import os

    from rill.config.settings import (
        DEFAULT_BASE_URL,
        OPENROUTER_DEFAULT_MAX_TOKENS,
        OPENROUTER_DEFAULT_MODEL,
        is_openrouter,
        load_config,
    )

    data = load_config(path)
    if alias is not None:
        table = data.get(name)
        found = table.get(alias) if isinstance(table, dict) else None
        return found, f"config file {path}" if found is not None else "default"
    variable = ENV_VARS.get(name)
    if variable and os.environ.get(variable, "").strip():
        return os.environ[variable].strip(), f"environment {variable}"
    if name == "color" and (os.environ.get("NO_COLOR") or os.environ.get("FORCE_COLOR")):
        return "auto", "environment " + (
            "NO_COLOR" if os.environ.get("NO_COLOR") else "FORCE_COLOR"
        )
    if name in data:
        return data[name], f"config file {path}"
    base_url = in_effect("base_url", None, path)[0] if name in ("model", "max_tokens") else ""
    if name == "base_url":
        return DEFAULT_BASE_URL, "default"
    if name == "model" and is_openrouter(base_url):
        return OPENROUTER_DEFAULT_MODEL, "default (for OpenRouter)"
    if name == "max_tokens" and is_openrouter(base_url):
        return OPENROUTER_DEFAULT_MAX_TOKENS, "default (for OpenRouter)"
    return _defaults().get(name), "default"


def _defaults() -> dict[str, Any]:
    import dataclasses

    from rill.config.settings import Settings

    return {
        f.name: f.default
        for f in dataclasses.fields(Settings)
        if f.default is not dataclasses.MISSING and f.default is not None
    }


@config_app.command("get", cls=opt.Command)
def config_get(
    key: KeyArg,
    show_origin: Annotated[
        bool,
        typer.Option(
            "--show-origin", help="Say where the value comes from: environment, file or default."
        ),
    ] = False,
) -> None:
    """Print the value of KEY in effect: from the environment, config.toml or the default
    (nothing, and exit 0, when it has none). The API key is shown redacted."""
    from rill.stream.protocol import redact

    name, alias = split_key(key)
    value, origin = in_effect(name, alias, _config_file())
    shown = "" if value is None else format_value(shown_value(name, value))
    if name == "api_key" and isinstance(value, str):
        shown = redact(shown, value)
    with piped():
        if show_origin:
            typer.echo(f"{origin}\t{shown}")
        elif value is not None:
            typer.echo(shown)


@config_app.command("set", cls=opt.Command)
def config_set(
    key: KeyArg,
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE",
            help="The value: a TOML value, or plain text.",
            autocompletion=complete_config_value,
        ),
    ],
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


@config_app.command("unset", cls=opt.Command)
def config_unset(key: KeyArg) -> None:
    """Remove KEY from config.toml (nothing to do when it is not set)."""
    path = _config_file()
    data = read_raw(path)
    name, dot, alias = key.partition(".")
    if not (key in data or (dot and name in TABLES and alias)):
        split_key(key)  # an unknown name is an error; a known one that is unset is a no-op
        return
    if alias and name in TABLES:
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
