"""Where rill keeps its files, and the settings of one run.

Precedence, per key: command-line flag > environment > ``config.toml`` > built-in default.
``RILL_HOME`` puts config, history, cache and templates in one folder; without it the XDG base
directories are used. Nothing here runs at import time: settings are resolved inside a command.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import SplitResult, urlsplit

from rill.errors import ConfigError, UsageError
from rill.urls import display_url
from rill.values import MAX_NESTING, has_non_finite, nested_deeper

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
#: OpenRouter routes this meta-model to a suitable model; other servers get no default model.
OPENROUTER_DEFAULT_MODEL = "openrouter/auto"
#: OpenRouter's pre-flight credit check assumes the model's full output length when max_tokens
#: is absent and can refuse with a spurious 402, so rill always sends an explicit limit there.
OPENROUTER_DEFAULT_MAX_TOKENS = 8192

#: Keys ``config.toml`` understands, with the type each value must have.
CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "base_url": str,
    "system": str,
    "timeout": (int, float),
    "connect_timeout": (int, float),
    "first_token_timeout": (int, float),
    "total_timeout": (int, float),
    "retries": int,
    "max_tokens": int,
    "temperature": (int, float),
    "history_format": str,
    "history": bool,
    "api_key": str,
    "api_key_cmd": str,
    "stats": bool,
    "markdown": bool,
    "show_reasoning": bool,
    "color": str,
    "aliases": dict,
    "provider": dict,
    "openrouter": bool,
    "mcp": dict,  # [mcp.NAME] command = [argv]: stdio MCP servers for --mcp (rill.tools.mcp)
}
CHOICES = {
    "history_format": ("json", "toml"),
    "color": ("auto", "always", "never"),
}


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def history_dir(self) -> Path:
        return self.data_dir / "history"

    @property
    def templates_dir(self) -> Path:
        return self.config_dir / "templates"


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    home = env.get("RILL_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root, root, root / "cache")
    user_home = Path.home()

    def xdg(var: str, default: str) -> Path:
        value = env.get(var)
        return Path(value) if value and os.path.isabs(value) else user_home / default

    return Paths(
        xdg("XDG_CONFIG_HOME", ".config") / "rill",
        xdg("XDG_DATA_HOME", ".local/share") / "rill",
        xdg("XDG_CACHE_HOME", ".cache") / "rill",
    )


def load_config(path: Path) -> dict[str, Any]:
    """Read and validate ``config.toml``; a missing file is an empty config."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    import tomllib  # deferred, like ipaddress and subprocess below: only some runs need them

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: a value is nested too deeply to read") from None
    for key, value in data.items():
        check_config_value(key, value, source=str(path))
    return data


def check_config_value(key: str, value: Any, *, source: str = "config") -> None:
    expected = CONFIG_KEYS.get(key)
    if expected is None:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
    # bool is an int subclass: `timeout = true` must not pass as a number.
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
    if not ok:
        names = expected if isinstance(expected, tuple) else (expected,)
        kind = " or ".join(t.__name__ for t in names)
        raise ConfigError(f"{source}: {key} must be {kind}, not {type(value).__name__}")
    if nested_deeper(value):
        raise ConfigError(f"{source}: {key} is nested more than {MAX_NESTING} deep")
    if has_non_finite(value):
        if isinstance(value, float):
            raise ConfigError(f"{source}: {key} must be a finite number, not {value}")
        raise ConfigError(f"{source}: {key} holds nan or inf: every number must be finite")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{source}: {key} must be one of {', '.join(CHOICES[key])}")
    if key in ("timeout", "connect_timeout", "first_token_timeout", "total_timeout") and value < 0:
        raise ConfigError(f"{source}: {key} must not be negative")
    if key in ("retries", "max_tokens") and value < 0:
        raise ConfigError(f"{source}: {key} must not be negative")
    if key == "aliases":
        for alias, target in value.items():
            if not isinstance(target, str):
                raise ConfigError(f"{source}: aliases.{alias} must be a model ID string")


def is_openrouter(base_url: str) -> bool:
    try:
        host = (urlsplit(base_url).hostname or "").lower()
    except ValueError:  # a malformed URL: check_transport says so
        return False
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_key(key: str, source: str = "the settings") -> str:
    """``key``, if an HTTP header can carry it; a ``ConfigError`` saying where it came from
    otherwise, before any request. The message never shows the key, nor any part of it."""
    if not key.isascii():
        raise ConfigError(
            f"the API key from {source} holds a non-ASCII character, which an HTTP header "
            "cannot carry: check for a typographic quote or a stray character"
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ConfigError(
            f"the API key from {source} holds spaces, line breaks or control characters"
        )
    return key


def _key_from_config(config: Mapping[str, Any], config_file: Path, warn: Any) -> str | None:
    command = config.get("api_key_cmd")
    if command:
        import subprocess

        try:
            done = subprocess.run(
                command, shell=True, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"api_key_cmd failed: {exc}") from None
        if done.returncode != 0:
            raise ConfigError(f"api_key_cmd exited with status {done.returncode}")
        return check_api_key(done.stdout.strip(), "the output of api_key_cmd") or None
    key = config.get("api_key")
    if not isinstance(key, str) or not key.strip():
        return None
    try:
        mode = stat.S_IMODE(config_file.stat().st_mode)
    except OSError:
        mode = 0
    if mode & 0o077:
        warn(
            f"warning: {config_file} holds an API key but is readable by others; "
            f"ignoring it (run: chmod 600 {config_file})"
        )
        return None
    return check_api_key(key.strip(), f"api_key in {config_file}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one prompt run needs, resolved once at the edge."""

    base_url: str
    model: str | None
    api_key: str | None = field(repr=False)
    system: str | None = None
    timeout: float | None = 60.0  # idle: longest silence between two reads (keep-alives count)
    connect_timeout: float | None = 10.0
    first_token_timeout: float | None = None
    total_timeout: float | None = None
    retries: int = 2
    max_tokens: int | None = None
    temperature: float | None = None
    history_format: str = "json"
    history: bool = True
    stats: bool = False
    markdown: bool | None = None
    show_reasoning: bool | None = None
    color: str = "auto"
    aliases: Mapping[str, str] = field(default_factory=dict)
    provider: Mapping[str, Any] = field(default_factory=dict)
    """The ``[provider]`` table: default OpenRouter routing preferences (``rill.input.routing``)."""
    speaks_openrouter: bool = False
    """The base URL is OpenRouter behind another host name (``openrouter = true`` in config.toml
    or ``RILL_OPENROUTER=1``): a gateway or proxy in front of it, or a stand-in for tests."""
    paths: Paths = field(default_factory=resolve_paths)

    @property
    def openrouter(self) -> bool:
        return self.speaks_openrouter or is_openrouter(self.base_url)

    def check_url(self) -> SplitResult:
        """The base URL's parts; a ``ConfigError`` (its credentials not shown) when it is not a
        well-formed http(s) URL."""
        try:
            parts = urlsplit(self.base_url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            shown = display_url(self.base_url)
            raise ConfigError(f"base URL {shown!r} is not valid: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base URL {display_url(self.base_url)!r} is not an http(s) URL")
        return parts

    def check_transport(self) -> None:
        """Refuse configurations that would leak the key or cannot authenticate."""
        parts = self.check_url()
        if self.api_key:
            check_api_key(self.api_key)  # resolve_settings checked it; a caller may replace it
        if self.openrouter and not self.api_key:
            raise ConfigError(
                "no API key: set OPENROUTER_API_KEY (or api_key_cmd in config.toml) "
                "to use OpenRouter"
            )
        host = parts.hostname or ""
        if self.api_key and parts.scheme == "http" and not is_loopback(host):
            raise ConfigError(
                f"refusing to send the API key over plain http to {host}: "
                "use https, or a loopback address"
            )


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    return number


def check_flags(flags: Mapping[str, Any]) -> None:
    """Numbers given by the caller (command-line flags, ``stream_chat`` arguments) are finite:
    a usage error otherwise, before anything else is read."""
    for name, value in flags.items():
        if has_non_finite(value):
            raise UsageError(f"{name} must be a finite number, not {value!r}")


class SettingFlags(TypedDict, total=False):
    """What a command's flags say about the settings; a missing key or None means "not given",
    so the environment, config.toml and the defaults decide (see ``resolve_settings``)."""

    model: str | None
    system: str | None
    base_url: str | None
    temperature: float | None
    max_tokens: int | None
    timeout: float | None
    connect_timeout: float | None
    first_token_timeout: float | None
    total_timeout: float | None
    retries: int | None
    stats: bool | None
    color: str | None
    markdown: bool | None
    show_reasoning: bool | None


def resolve_settings(
    flags: SettingFlags,
    env: Mapping[str, str] | None = None,
    warn: Any = None,
) -> Settings:
    """Merge flags (None = not given), environment, config file and defaults."""
    env = os.environ if env is None else env
    warn = warn or (lambda _msg: None)
    check_flags(flags)
    paths = resolve_paths(env)
    config = load_config(paths.config_file)

    given: Mapping[str, Any] = flags

    def pick(name: str, env_var: str | None = None, default: Any = None) -> Any:
        if given.get(name) is not None:
            return given[name]
        if env_var and env.get(env_var):
            return env[env_var]
        if name in config:
            return config[name]
        return default

    base_url = str(pick("base_url", "RILL_BASE_URL", DEFAULT_BASE_URL)).rstrip("/")
    flag = env.get("RILL_OPENROUTER", "").strip().lower()
    speaks_openrouter = flag in ("1", "true", "yes") if flag else bool(config.get("openrouter"))
    openrouter = speaks_openrouter or is_openrouter(base_url)
    aliases: dict[str, str] = dict(config.get("aliases", {}))
    model = pick("model", "RILL_MODEL")
    if model is not None:
        model = aliases.get(model, model)
    elif openrouter:
        model = OPENROUTER_DEFAULT_MODEL
    max_tokens = pick("max_tokens")
    if max_tokens is None and openrouter:
        max_tokens = OPENROUTER_DEFAULT_MAX_TOKENS
    # Keys pasted from files often carry a trailing newline or CR: that is never part of a key.
    from_env = (env.get("OPENROUTER_API_KEY") or "").strip()
    api_key = (
        check_api_key(from_env, "OPENROUTER_API_KEY")
        if from_env
        else _key_from_config(config, paths.config_file, warn)
    )

    def seconds(name: str, default: float | None) -> float | None:
        value = pick(name, None, default)
        if value is None:
            return None
        value = _number(str(value), name) if isinstance(value, str) else float(value)
        return None if value == 0 else value  # 0 means no limit

    return Settings(
        base_url=base_url,
        model=model,
        api_key=api_key,
        system=pick("system"),
        timeout=seconds("timeout", 60.0),
        connect_timeout=seconds("connect_timeout", 10.0),
        first_token_timeout=seconds("first_token_timeout", None),
        total_timeout=seconds("total_timeout", None),
        retries=int(pick("retries", None, 2)),
        max_tokens=int(max_tokens) if max_tokens else None,
        temperature=pick("temperature"),
        history_format=str(pick("history_format", None, "json")),
        history=bool(pick("history", None, True)),
        stats=bool(pick("stats", None, False)),
        markdown=pick("markdown"),
        show_reasoning=pick("show_reasoning"),
        # NO_COLOR / FORCE_COLOR are the environment's say on colour: they beat config.toml.
        color=str(
            flags.get("color")
            or ("auto" if env.get("NO_COLOR") or env.get("FORCE_COLOR") else None)
            or config.get("color", "auto")
        ),
        aliases=aliases,
        provider=dict(config.get("provider", {})),
        speaks_openrouter=speaks_openrouter,
        paths=paths,
    )
