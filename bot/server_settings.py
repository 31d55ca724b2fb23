"""Per-server admin settings: keys, defaults, parsing and validation (docs/commands.md).

Values are stored as text in ``server_settings`` (one row per changed key) and parsed into a
typed :class:`ServerSettings` on every use, so a key that was never set follows the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.commands.grammar import suggest
from bot.errors import InvalidInput
from bot.ideogram.models import (
    AspectRatioV3,
    MagicPromptOption,
    RenderingSpeed,
    StyleTypeV3,
    enum_values,
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The settings in force for one server (Discord guild / Slack team / console)."""

    default_speed: RenderingSpeed = RenderingSpeed.TURBO
    default_style: StyleTypeV3 = StyleTypeV3.AUTO
    default_magic_prompt: MagicPromptOption = MagicPromptOption.AUTO
    default_aspect_ratio: AspectRatioV3 = AspectRatioV3.R_1x1
    default_num_images: int = 1
    max_num_images: int = 4
    daily_quota: int = 0
    monthly_budget_usd: float = 0.0
    allowed_channels: frozenset[str] = frozenset()
    blocked_words: tuple[str, ...] = ()
    vary_subtle_weight: int = 80
    vary_strong_weight: int = 35


def _enum(enum: Any, key: str) -> Callable[[str], Any]:
    values = enum_values(enum)

    def parse(text: str) -> Any:
        raw = text.strip().upper().replace(":", "x").replace("X", "x")
        for value in values:
            if value.upper().replace("X", "x") == raw:
                return enum(value)
        hint = suggest(text.strip().lower(), [v.lower() for v in values], 1)
        did = f" Did you mean `{hint[0]}`?" if hint else ""
        shown = ", ".join(v.lower() for v in values)
        raise InvalidInput(f"`{text}` is not a valid {key}.{did} Valid: {shown}.")

    return parse


def _int(low: int, high: int, key: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise InvalidInput(f"{key} takes a whole number from {low} to {high}.") from None
        if not low <= value <= high:
            raise InvalidInput(f"{key} takes a whole number from {low} to {high}.")
        return value

    return parse


def _money(text: str) -> float:
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise InvalidInput(
            "monthly_budget_usd takes an amount in USD, e.g. `25` or `12.50`."
        ) from None
    if not 0 <= value <= 1_000_000:
        raise InvalidInput("monthly_budget_usd takes an amount from 0 to 1000000 USD.")
    return round(value, 2)


def _ids(text: str) -> frozenset[str]:
    parts = text.replace(",", " ").split()
    # Accept pasted Discord channel mentions (<#123>) as well as bare ids.
    return frozenset(p.strip("<#>") for p in parts if p.strip("<#>"))


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.strip().lower() for w in text.split(",") if w.strip()))


@dataclass(frozen=True, slots=True)
class SettingKey:
    """One settings key: its parser, how to show a value, and its one-line meaning."""

    name: str
    parse: Callable[[str], Any]
    meaning: str


KEYS: dict[str, SettingKey] = {
    k.name: k
    for k in (
        SettingKey(
            "default_speed",
            _enum(RenderingSpeed, "speed"),
            "rendering speed when the user gives none",
        ),
        SettingKey(
            "default_style", _enum(StyleTypeV3, "style"), "style type when the user gives none"
        ),
        SettingKey(
            "default_magic_prompt",
            _enum(MagicPromptOption, "magic prompt option"),
            "magic prompt: auto / on / off",
        ),
        SettingKey(
            "default_aspect_ratio",
            _enum(AspectRatioV3, "aspect ratio"),
            "aspect ratio when the user gives none, e.g. 1x1",
        ),
        SettingKey("default_num_images", _int(1, 8, "default_num_images"), "images per /imagine"),
        SettingKey("max_num_images", _int(1, 8, "max_num_images"), "upper bound for --n"),
        SettingKey(
            "daily_quota",
            _int(0, 100_000, "daily_quota"),
            "images per user per UTC day, 0 = unlimited",
        ),
        SettingKey(
            "monthly_budget_usd",
            _money,
            "server-wide cap on estimated cost per UTC month, 0 = unlimited",
        ),
        SettingKey(
            "allowed_channels",
            _ids,
            "channel ids where the bot answers (comma-separated); empty = all",
        ),
        SettingKey(
            "blocked_words",
            _words,
            "comma-separated words; prompts containing them are refused",
        ),
        SettingKey(
            "vary_subtle_weight",
            _int(1, 100, "vary_subtle_weight"),
            "image_weight of V1…Vn and Vary (Subtle)",
        ),
        SettingKey(
            "vary_strong_weight",
            _int(1, 100, "vary_strong_weight"),
            "image_weight of Vary (Strong)",
        ),
    )
}


def check_key(key: str) -> SettingKey:
    """Return the :class:`SettingKey` named ``key``.

    Raises:
        InvalidInput: unknown key, naming the closest one and listing all keys.
    """
    normal = key.strip().lower().replace("-", "_")
    if normal in KEYS:
        return KEYS[normal]
    hint = suggest(normal, list(KEYS), 1)
    did = f" Did you mean `{hint[0]}`?" if hint else ""
    raise InvalidInput(f"Unknown setting `{key}`.{did} Settings: {', '.join(KEYS)}.")


def normalise_value(key: str, value: str) -> str:
    """Validate ``value`` for ``key`` and return its canonical text form for storage.

    Raises:
        InvalidInput: unknown key or a value the key does not accept.
    """
    spec = check_key(key)
    return format_value(spec.parse(value))


def format_value(value: Any) -> str:
    """Return the canonical text of a parsed setting value."""
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, tuple):
        return ",".join(value)
    if hasattr(value, "value"):
        return str(value.value).lower()
    return str(value)


def operator_defaults(*, daily_quota: int, monthly_budget_usd: float) -> ServerSettings:
    """The settings a server has before its admins change anything: the built-in defaults with
    the operator's limits (``DEFAULT_DAILY_QUOTA`` images per user per UTC day,
    ``DEFAULT_MONTHLY_BUDGET_USD`` per server per UTC month; 0 = unlimited)."""
    return ServerSettings(daily_quota=daily_quota, monthly_budget_usd=monthly_budget_usd)


def load(stored: Mapping[str, str], defaults: ServerSettings | None = None) -> ServerSettings:
    """Build the :class:`ServerSettings` in force from stored text values.

    Args:
        stored: key → text as stored; keys a server's admins set win.
        defaults: what applies to keys never set (:func:`operator_defaults`); the built-in
            defaults when ``None``.

    Unknown or unreadable stored values are ignored (the default applies), so an old row can
    never break a server.
    """
    base = defaults or ServerSettings()
    values: dict[str, Any] = {f: getattr(base, f) for f in KEYS}
    for key, text in stored.items():
        spec = KEYS.get(key)
        if spec is None:
            continue
        try:
            values[key] = spec.parse(text)
        except InvalidInput:
            continue
    settings = ServerSettings(**values)
    if settings.default_num_images > settings.max_num_images:
        values["default_num_images"] = settings.max_num_images
        settings = ServerSettings(**values)
    return settings


def as_rows(settings: ServerSettings) -> list[tuple[str, str, str]]:
    """Return ``(key, value text, meaning)`` for every key, for ``/settings show``."""
    return [
        (name, format_value(getattr(settings, name)) or "(empty)", spec.meaning)
        for name, spec in KEYS.items()
    ]
