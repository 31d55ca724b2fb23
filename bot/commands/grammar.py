"""Midjourney-style inline flags and typed options for generation commands (docs/commands.md).

Users write ``/imagine a cat in a hat --ar 16:9 --seed 5 --no dogs, cats --transparent``; this
module splits such text into the prompt and a :class:`GenerationOptions`, turns Discord's typed
options into the same value (:func:`options_from_typed`), and writes options back as text
(:func:`format_flags`) so a job can be shown and re-run exactly.

Grammar:

* Tokens are separated by whitespace. A *flag* is a token that starts with ``--`` (or ``—``, the
  em dash phones make of ``--``) followed by an ASCII letter; ``state-of-the-art`` or ``a--b``
  are words, not flags.
* Text before the first flag is the prompt (whitespace normalised to single spaces). The value of
  a flag is the text up to the next flag.
* Each field has one validator shared by the flag and the typed path, so both give the same
  one-sentence :class:`~bot.errors.InvalidInput` naming the valid values and the closest ones.

Nothing in here raises anything but :class:`~bot.errors.InvalidInput` on any input text.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError

from bot.errors import InvalidInput
from bot.ideogram.models import (
    AspectRatioV3,
    ColorPaletteMember,
    ColorPalettePresetName,
    ColorPaletteWithMembers,
    ColorPaletteWithPresetName,
    MagicPromptOption,
    RenderingSpeed,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
)

__all__ = [
    "ASPECT_RATIO_CHOICES",
    "FLAG_HELP",
    "FLAG_NAMES",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "PALETTE_PRESET_CHOICES",
    "RESOLUTION_CHOICES",
    "STYLE_PRESET_CHOICES",
    "TYPED_OPTION_FLAGS",
    "GenerationOptions",
    "aspect_ratio_label",
    "check_options",
    "format_flags",
    "is_flag_token",
    "normalize_text",
    "options_from_typed",
    "parse_prompt",
    "style_preset_label",
    "suggest",
    "typed_option_help",
]

MAX_PROMPT_CHARS = 2000
"""Longest prompt (and ``--no`` text) accepted, in characters after whitespace normalisation."""

MAX_SEED = 2147483647
"""Largest ``seed`` the API accepts (``--seed`` takes 0 … 2147483647)."""

_MIN_COLOR_WEIGHT = 0.05
_MAX_COLOR_WEIGHT = 1.0
_MAX_SHOWN_VALUE = 60  # characters of a bad value quoted back in an error message
_SUGGEST_CUTOFF = 0.5

_E = TypeVar("_E", bound=StrEnum)

_STYLE_CODE = re.compile(r"[0-9A-Fa-f]{8}")
#: ``--v`` values: ``3`` (the default, Ideogram 3.0) and the legacy models.
VERSION_CHOICES: tuple[str, ...] = ("3", "2a", "2a-turbo", "2", "2-turbo", "1", "1-turbo")
#: Flags only Ideogram 3.0 has: refused with a legacy ``--v``.
_V3_ONLY = ("sref", "cref", "cref-mask", "speed", "preset", "transparent", "res", "model")
#: Most ``--sref`` references (the API takes several style images or style codes).
MAX_STYLE_REFERENCES = 10
_FLAG_TOKEN = re.compile(r"(?:--|—)[A-Za-z]")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_HEX_MEMBER = re.compile(r"#?([0-9A-Fa-f]{6})(?::(.*))?", re.DOTALL)
_RATIO_SEPARATORS = re.compile(r"[:×✕xX*/]")
_PRESET_SEPARATORS = re.compile(r"[\s_\-]+")


# --------------------------------------------------------------------------------------------
# The options value


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Generation options of one command, each ``None`` when the user did not set it.

    Field names and enums are the Ideogram API's (``bot.ideogram.models``); ``transparent``
    selects ``POST /v1/ideogram-v3/generate-transparent`` in the API spec. Values are validated by
    :func:`parse_prompt` / :func:`options_from_typed`; constructing one directly does not check
    cross-field rules (see :func:`check_options`).
    """

    aspect_ratio: AspectRatioV3 | None = None
    resolution: ResolutionV3 | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    rendering_speed: RenderingSpeed | None = None
    style_type: StyleTypeV3 | None = None
    style_preset: StylePresetV3 | None = None
    magic_prompt: MagicPromptOption | None = None
    num_images: int | None = None
    color_palette: ColorPaletteWithPresetName | ColorPaletteWithMembers | None = None
    image_weight: int | None = None
    transparent: bool = False
    #: ``--sref``: 8-hex style codes, or image references (file paths, ``JOBID[:k]``).
    sref: tuple[str, ...] | None = None
    #: ``--cref`` / ``--cref-mask``: a character reference image and its mask (references).
    cref: str | None = None
    cref_mask: str | None = None
    #: ``--v``: the model version (``3`` or a legacy model: ``2a``, ``2-turbo`` …).
    version: str | None = None
    #: ``--model``: a custom model's name (parsed and kept; no command takes it yet).
    model: str | None = None

    @property
    def style_codes(self) -> tuple[str, ...] | None:
        """``--sref`` values when they are style codes (8 hex digits each), upper-case."""
        if self.sref and all(_STYLE_CODE.fullmatch(r) for r in self.sref):
            return tuple(r.upper() for r in self.sref)
        return None

    @property
    def style_references(self) -> tuple[str, ...]:
        """``--sref`` values when they are image references."""
        return () if not self.sref or self.style_codes else self.sref

    @property
    def legacy(self) -> bool:
        """True when ``--v`` names a legacy model (anything but ``3``)."""
        return self.version is not None and self.version != "3"

    def merged(self, override: GenerationOptions) -> GenerationOptions:
        """Return these options with every field set in ``override`` replacing ours.

        ``transparent`` is true if either side is. ``aspect_ratio`` and ``resolution`` are
        exclusive (the API takes one), so when ``override`` sets exactly one of them the other
        one of ours is dropped: a user's ``--res`` beats a server default aspect ratio.

        Args:
            override: options that win, e.g. the user's flags over typed options or defaults.

        Returns:
            A new :class:`GenerationOptions`; neither input changes.
        """
        values: dict[str, Any] = {}
        for f in fields(self):
            mine = getattr(self, f.name)
            theirs = getattr(override, f.name)
            values[f.name] = theirs if theirs is not None else mine
        values["transparent"] = self.transparent or override.transparent
        if override.resolution is not None and override.aspect_ratio is None:
            values["aspect_ratio"] = None
        if override.aspect_ratio is not None and override.resolution is None:
            values["resolution"] = None
        return GenerationOptions(**values)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the set fields, for persistence.

        Enums become their API value (``"16x9"``, ``"TURBO"``), the palette its API shape
        (``{"name": "EMBER"}`` or ``{"members": [{"color_hex": "#AABBCC", "color_weight":
        0.5}]}``), ``transparent`` is present only when true. :meth:`from_json` restores an equal
        value.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            if isinstance(value, StrEnum):
                out[f.name] = value.value
            elif isinstance(value, ColorPaletteWithPresetName | ColorPaletteWithMembers):
                out[f.name] = value.model_dump(mode="json", exclude_none=True)
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerationOptions:
        """Rebuild options stored with :meth:`to_json`; unknown keys are ignored.

        Raises:
            ValueError: a value is not of the stored shape (a corrupt record, not user input).
        """

        def enum_or_none(enum: type[_E], key: str) -> _E | None:
            raw = data.get(key)
            return None if raw is None else enum(raw)

        def int_or_none(key: str) -> int | None:
            raw = data.get(key)
            if raw is None:
                return None
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"{key} must be an integer")
            return raw

        negative = data.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            raise ValueError("negative_prompt must be a string")
        palette_raw = data.get("color_palette")
        palette: ColorPaletteWithPresetName | ColorPaletteWithMembers | None = None
        if palette_raw is not None:
            if not isinstance(palette_raw, Mapping):
                raise ValueError("color_palette must be an object")
            if "name" in palette_raw:
                palette = ColorPaletteWithPresetName.model_validate(dict(palette_raw))
            else:
                palette = ColorPaletteWithMembers.model_validate(dict(palette_raw))
        transparent = data.get("transparent", False)
        if not isinstance(transparent, bool):
            raise ValueError("transparent must be a boolean")

        def text_or_none(key: str) -> str | None:
            raw = data.get(key)
            if raw is not None and not isinstance(raw, str):
                raise ValueError(f"{key} must be a string")
            return raw

        sref_raw = data.get("sref")
        if sref_raw is not None and not (
            isinstance(sref_raw, list | tuple) and all(isinstance(r, str) for r in sref_raw)
        ):
            raise ValueError("sref must be a list of strings")
        return cls(
            sref=tuple(sref_raw) if sref_raw is not None else None,
            cref=text_or_none("cref"),
            cref_mask=text_or_none("cref_mask"),
            version=text_or_none("version"),
            model=text_or_none("model"),
            aspect_ratio=enum_or_none(AspectRatioV3, "aspect_ratio"),
            resolution=enum_or_none(ResolutionV3, "resolution"),
            negative_prompt=negative,
            seed=int_or_none("seed"),
            rendering_speed=enum_or_none(RenderingSpeed, "rendering_speed"),
            style_type=enum_or_none(StyleTypeV3, "style_type"),
            style_preset=enum_or_none(StylePresetV3, "style_preset"),
            magic_prompt=enum_or_none(MagicPromptOption, "magic_prompt"),
            num_images=int_or_none("num_images"),
            color_palette=palette,
            image_weight=int_or_none("image_weight"),
            transparent=transparent,
        )


# --------------------------------------------------------------------------------------------
# Display helpers and choices


def aspect_ratio_label(ratio: AspectRatioV3) -> str:
    """Return ``ratio`` as users write it: ``AspectRatioV3("16x9")`` → ``"16:9"``."""
    return ratio.value.replace("x", ":")


def style_preset_label(preset: StylePresetV3) -> str:
    """Return the human name of ``preset``: ``OIL_PAINTING`` → ``"Oil Painting"``.

    Numbers stay lowercase (``"80s Illustration"``), roman numerals and ``C4D`` upper case.
    """
    words = []
    for word in preset.value.split("_"):
        if word in {"I", "II", "C4D"}:
            words.append(word)
        elif word[:1].isdigit():
            words.append(word.lower())
        else:
            words.append(word.capitalize())
    return " ".join(words)


ASPECT_RATIO_CHOICES: list[str] = [aspect_ratio_label(r) for r in AspectRatioV3]
"""Aspect ratios as ``"W:H"`` in spec order, for Discord choices and help."""

RESOLUTION_CHOICES: list[str] = [r.value for r in ResolutionV3]
"""Resolutions as ``"WxH"`` in spec order."""

STYLE_PRESET_CHOICES: list[str] = [style_preset_label(p) for p in StylePresetV3]
"""Human names of the style presets (``"Oil Painting"``), for autocomplete; all parse back."""

PALETTE_PRESET_CHOICES: list[str] = [p.value.lower() for p in ColorPalettePresetName]
"""Colour palette preset names as users type them (``"ember"``)."""

_SPEED_CHOICES = [s.value.lower() for s in RenderingSpeed]
_STYLE_CHOICES = [s.value.lower() for s in StyleTypeV3]
_MAGIC_CHOICES = [m.value.lower() for m in MagicPromptOption]


def suggest(value: str, choices: Sequence[str], n: int = 2) -> list[str]:
    """Return up to ``n`` of ``choices`` closest to ``value``, best first (may be empty).

    Matching is case-insensitive (``difflib.get_close_matches``, cutoff 0.5); the choices are
    returned as spelled in ``choices``. Used for "did you mean" in errors and for autocomplete.
    """
    if n <= 0 or not choices:
        return []
    by_key: dict[str, str] = {}
    for choice in choices:
        by_key.setdefault(choice.casefold(), choice)
    matches = difflib.get_close_matches(value.casefold(), list(by_key), n=n, cutoff=_SUGGEST_CUTOFF)
    return [by_key[m] for m in matches]


def normalize_text(text: str) -> str:
    """Return ``text`` with runs of whitespace collapsed to one space and the ends trimmed."""
    return " ".join(text.split())


def is_flag_token(token: str) -> bool:
    """Return whether one whitespace-free ``token`` is a flag (``--x…`` or ``—x…``, x a letter)."""
    return _FLAG_TOKEN.match(token) is not None


def _quote(text: str) -> str:
    """Return ``text`` safe inside a Markdown code span, shortened for an error message."""
    text = normalize_text(text.replace("`", "'"))
    if len(text) > _MAX_SHOWN_VALUE:
        text = text[: _MAX_SHOWN_VALUE - 1] + "…"
    return text


def _did_you_mean(value: str, choices: Sequence[str]) -> str:
    """Return ``" Did you mean A or B?"`` for the closest choices, or ``""`` if none is close."""
    found = suggest(value, choices)
    if not found:
        return ""
    return f" Did you mean {' or '.join(found)}?"


# --------------------------------------------------------------------------------------------
# One validator per field, shared by flags and typed options. Each takes the raw text and how
# the user wrote it (``shown``, already in backticks) and returns the typed value or raises.


def _parse_int(raw: str, shown: str, low: int, high: int, noun: str) -> int:
    value = raw.strip()
    if _DIGITS.fullmatch(value) and len(value) <= len(str(high)) + 2:
        number = int(value)
        if low <= number <= high:
            return number
    raise InvalidInput(f"{shown} is not valid: {noun} must be a whole number from {low} to {high}.")


def _closest(value: str, choices: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """Return up to 2 choices close to ``value``, also through ``aliases`` (word → choice).

    A second choice is kept only when it is about as close as the first, so a clear typo gets
    one suggestion (``fsat`` → flash via ``fast``) and an ambiguous one two (``sed``).
    """
    scored: dict[str, float] = {}
    key = value.casefold()
    for match in suggest(value, [*choices, *aliases], n=4):
        target = aliases.get(match.casefold(), match)
        ratio = difflib.SequenceMatcher(None, key, match.casefold()).ratio()
        scored[target] = max(scored.get(target, 0.0), ratio)
    ranked = sorted(scored.items(), key=lambda item: -item[1])
    return [target for target, ratio in ranked[:2] if ratio >= ranked[0][1] - 0.15]


def _parse_choice(
    raw: str, shown: str, enum: type[_E], noun: str, aliases: Mapping[str, str]
) -> _E:
    key = raw.strip().upper()
    for member in enum:
        if member.value == key:
            return member
    choices = [m.value.lower() for m in enum]
    close = _closest(raw.strip(), choices, aliases)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise InvalidInput(f"{shown} is not a valid {noun}.{hint} Valid: {', '.join(choices)}.")


# Words people use for a value; they lead to a suggestion, never to the value itself.
_SPEED_ALIASES = {
    "fast": "flash",
    "fastest": "flash",
    "quick": "flash",
    "rapid": "flash",
    "normal": "default",
    "standard": "default",
    "medium": "default",
    "slow": "quality",
    "best": "quality",
    "high": "quality",
    "hq": "quality",
}
_STYLE_ALIASES = {
    "photo": "realistic",
    "photorealistic": "realistic",
    "real": "realistic",
    "fantasy": "fiction",
    "anime": "fiction",
    "graphic": "design",
    "logo": "design",
    "default": "auto",
}
_MAGIC_ALIASES = {
    "yes": "on",
    "true": "on",
    "enable": "on",
    "enabled": "on",
    "no": "off",
    "false": "off",
    "disable": "off",
    "disabled": "off",
    "none": "off",
}


def _ratio_key(raw: str) -> str:
    return _RATIO_SEPARATORS.sub("x", "".join(raw.split()))


def _v_aspect_ratio(raw: str, shown: str, max_num_images: int) -> AspectRatioV3:
    key = _ratio_key(raw)
    for ratio in AspectRatioV3:
        if ratio.value == key:
            return ratio
    typed = key.replace("x", ":")
    raise InvalidInput(
        f"{shown} is not a supported aspect ratio.{_did_you_mean(typed, ASPECT_RATIO_CHOICES)}"
        f" Valid: {', '.join(ASPECT_RATIO_CHOICES)}."
    )


def _v_resolution(raw: str, shown: str, max_num_images: int) -> ResolutionV3:
    key = _ratio_key(raw)
    for resolution in ResolutionV3:
        if resolution.value == key:
            return resolution
    size = re.fullmatch(r"([0-9]{1,5})x([0-9]{1,5})", key)
    if size is not None:
        width, height = int(size.group(1)), int(size.group(2))
        nearest = sorted(
            ResolutionV3, key=lambda r: abs(r.size[0] - width) + abs(r.size[1] - height)
        )
        hint = f" Did you mean {nearest[0].value} or {nearest[1].value}?"
    else:
        hint = _did_you_mean(key, RESOLUTION_CHOICES)
    raise InvalidInput(
        f"{shown} is not a supported resolution.{hint} Valid: {', '.join(RESOLUTION_CHOICES)}."
    )


def _v_negative_prompt(raw: str, shown: str, max_num_images: int) -> str:
    text = normalize_text(raw)
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInput(
            f"The negative prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}."
        )
    return text


def _v_seed(raw: str, shown: str, max_num_images: int) -> int:
    return _parse_int(raw, shown, 0, MAX_SEED, "the seed")


def _v_speed(raw: str, shown: str, max_num_images: int) -> RenderingSpeed:
    return _parse_choice(raw, shown, RenderingSpeed, "rendering speed", _SPEED_ALIASES)


def _v_style(raw: str, shown: str, max_num_images: int) -> StyleTypeV3:
    return _parse_choice(raw, shown, StyleTypeV3, "style", _STYLE_ALIASES)


def _v_magic(raw: str, shown: str, max_num_images: int) -> MagicPromptOption:
    return _parse_choice(raw, shown, MagicPromptOption, "magic prompt setting", _MAGIC_ALIASES)


def _preset_key(raw: str) -> str:
    key = raw.upper().replace("'", "").replace("’", "")
    key = _PRESET_SEPARATORS.sub("_", key).strip("_")
    if key.endswith("_1"):
        key = key[:-2] + "_I"
    elif key.endswith("_2"):
        key = key[:-2] + "_II"
    return key


def _v_preset(raw: str, shown: str, max_num_images: int) -> StylePresetV3:
    key = _preset_key(raw)
    for preset in StylePresetV3:
        if preset.value == key:
            return preset
    keys = [p.value for p in StylePresetV3]
    close = [style_preset_label(StylePresetV3(k)) for k in suggest(key, keys)]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise InvalidInput(
        f"{shown} is not a style preset.{hint} Valid: {', '.join(STYLE_PRESET_CHOICES)}."
    )


def _v_num_images(raw: str, shown: str, max_num_images: int) -> int:
    return _parse_int(raw, shown, 1, max(1, max_num_images), "the number of images")


def _v_image_weight(raw: str, shown: str, max_num_images: int) -> int:
    return _parse_int(raw, shown, 1, 100, "the image weight")


def _v_sref(raw: str, shown: str, max_num_images: int) -> tuple[str, ...]:
    refs = tuple(r.strip() for r in raw.replace(" ", ",").split(",") if r.strip())
    if not refs:
        raise InvalidInput(f"{shown} needs a style code or an image, e.g. `--sref 1A2B3C4D`.")
    if len(refs) > MAX_STYLE_REFERENCES:
        raise InvalidInput(f"{shown} gives {len(refs)} references; at most "
                           f"{MAX_STYLE_REFERENCES} are taken.")  # fmt: skip
    codes = [bool(_STYLE_CODE.fullmatch(r)) for r in refs]
    if any(codes) and not all(codes):
        raise InvalidInput(
            f"{shown} mixes style codes and images; please give either codes (8 hex digits,"
            " e.g. `1A2B3C4D`) or images, not both."
        )
    return refs


def _v_reference(raw: str, shown: str, max_num_images: int) -> str:
    if len(raw.split()) != 1:
        raise InvalidInput(f"{shown} takes one image: a job id like `3kq9x2m4p7ab:1` or a file.")
    return raw


def _v_version(raw: str, shown: str, max_num_images: int) -> str:
    value = raw.strip().lower().replace("_", "-").removeprefix("v")
    if value in VERSION_CHOICES:
        return value
    raise InvalidInput(
        f"{shown} is not a model version.{_did_you_mean(value, VERSION_CHOICES)} "
        f"Versions: {', '.join(VERSION_CHOICES)}."
    )


def _v_model(raw: str, shown: str, max_num_images: int) -> str:
    if len(raw.split()) != 1:
        raise InvalidInput(f"{shown} takes one model name.")
    return raw


_PALETTE_HELP = (
    f"use a preset ({', '.join(PALETTE_PRESET_CHOICES)}) or colours like `#FF5500:0.6,#0055FF`"
    f" with optional weights from {_MIN_COLOR_WEIGHT} to {_MAX_COLOR_WEIGHT:g}"
)


def _v_palette(
    raw: str, shown: str, max_num_images: int
) -> ColorPaletteWithPresetName | ColorPaletteWithMembers:
    compact = "".join(raw.split())
    for preset in ColorPalettePresetName:
        if preset.value == compact.upper():
            return ColorPaletteWithPresetName(name=preset)
    if "#" not in compact and "," not in compact and not _HEX_MEMBER.fullmatch(compact):
        hint = _did_you_mean(compact, PALETTE_PRESET_CHOICES)
        raise InvalidInput(f"{shown} is not a colour palette.{hint} Please {_PALETTE_HELP}.")
    members: list[ColorPaletteMember] = []
    for part in compact.split(","):
        match = _HEX_MEMBER.fullmatch(part)
        if match is None:
            raise InvalidInput(
                f"{shown} is not a colour palette: `{_quote(part) or 'an empty colour'}` is not a"
                f" `#RRGGBB` colour; please {_PALETTE_HELP}."
            )
        color_hex = "#" + match.group(1)
        weight_text = match.group(2)
        try:
            if weight_text is None:
                members.append(ColorPaletteMember(color_hex=color_hex))
                continue
            weight = float(weight_text) if _DECIMAL.fullmatch(weight_text) else math.nan
            if not _MIN_COLOR_WEIGHT <= weight <= _MAX_COLOR_WEIGHT:
                raise ValueError(weight_text)
            members.append(ColorPaletteMember(color_hex=color_hex, color_weight=weight))
        except ValueError:  # also pydantic's ValidationError
            raise InvalidInput(
                f"{shown} is not a colour palette: the weight of {color_hex} must be a number "
                f"from {_MIN_COLOR_WEIGHT} to {_MAX_COLOR_WEIGHT:g}."
            ) from None
    try:
        return ColorPaletteWithMembers(members=tuple(members))
    except ValidationError:
        raise InvalidInput(f"{shown} is not a colour palette; please {_PALETTE_HELP}.") from None


def _format_palette(palette: ColorPaletteWithPresetName | ColorPaletteWithMembers) -> str:
    if isinstance(palette, ColorPaletteWithPresetName):
        return palette.name.value.lower()
    parts = []
    for member in palette.members:
        if member.color_weight is None:
            parts.append(member.color_hex)
        else:
            parts.append(f"{member.color_hex}:{member.color_weight!r}")
    return ",".join(parts)


# --------------------------------------------------------------------------------------------
# The flag table: one row per field, in the canonical order of format_flags.


@dataclass(frozen=True, slots=True)
class _Field:
    flag: str  # without the leading "--"
    field: str  # GenerationOptions attribute
    typed: str  # Discord option name (docs/commands.md lists them)
    syntax: str  # for help: "--ar W:H"
    description: str
    values: str
    example: str
    parse: Callable[[str, str, int], Any] | None  # None: a switch without a value
    format: Callable[[Any], str]
    free_text: bool = False  # the value may be any text (no "trailing text" check)


def _lower_value(value: Any) -> str:
    return str(value.value).lower()


_FIELDS: tuple[_Field, ...] = (
    _Field(
        flag="ar",
        field="aspect_ratio",
        typed="aspect_ratio",
        syntax="--ar W:H",
        description="aspect ratio (also `W x H`, `WxH`); not with --res",
        values=", ".join(ASPECT_RATIO_CHOICES),
        example="16:9",
        parse=_v_aspect_ratio,
        format=aspect_ratio_label,
    ),
    _Field(
        flag="res",
        field="resolution",
        typed="resolution",
        syntax="--res WxH",
        description="exact resolution in pixels; not with --ar",
        values=", ".join(RESOLUTION_CHOICES),
        example="1024x1024",
        parse=_v_resolution,
        format=lambda v: str(v.value),
    ),
    _Field(
        flag="no",
        field="negative_prompt",
        typed="negative_prompt",
        syntax="--no TEXT",
        description="what to leave out of the image (negative prompt)",
        values="free text up to the next flag",
        example="text, watermark",
        parse=_v_negative_prompt,
        format=str,
        free_text=True,
    ),
    _Field(
        flag="seed",
        field="seed",
        typed="seed",
        syntax="--seed N",
        description="seed for repeatable results",
        values=f"0 to {MAX_SEED}",
        example="42",
        parse=_v_seed,
        format=str,
    ),
    _Field(
        flag="speed",
        field="rendering_speed",
        typed="speed",
        syntax="--speed S",
        description="rendering speed (faster is cheaper)",
        values=", ".join(_SPEED_CHOICES),
        example="quality",
        parse=_v_speed,
        format=_lower_value,
    ),
    _Field(
        flag="style",
        field="style_type",
        typed="style",
        syntax="--style S",
        description="style type",
        values=", ".join(_STYLE_CHOICES),
        example="realistic",
        parse=_v_style,
        format=_lower_value,
    ),
    _Field(
        flag="preset",
        field="style_preset",
        typed="preset",
        syntax="--preset P",
        description="style preset (case-insensitive; spaces or hyphens for underscores)",
        values=", ".join(STYLE_PRESET_CHOICES),
        example="oil painting",
        parse=_v_preset,
        format=_lower_value,
    ),
    _Field(
        flag="magic",
        field="magic_prompt",
        typed="magic_prompt",
        syntax="--magic M",
        description="let Ideogram rewrite the prompt",
        values=", ".join(_MAGIC_CHOICES),
        example="off",
        parse=_v_magic,
        format=_lower_value,
    ),
    _Field(
        flag="n",
        field="num_images",
        typed="num_images",
        syntax="--n N",
        description="number of images",
        values="1 to the server's max_num_images (default 4)",
        example="2",
        parse=_v_num_images,
        format=str,
    ),
    _Field(
        flag="palette",
        field="color_palette",
        typed="palette",
        syntax="--palette P",
        description="colour palette",
        values=f"{', '.join(PALETTE_PRESET_CHOICES)}, or #RRGGBB[:weight],… "
        f"(weights {_MIN_COLOR_WEIGHT} to {_MAX_COLOR_WEIGHT:g})",
        example="ember",
        parse=_v_palette,
        format=_format_palette,
    ),
    _Field(
        flag="weight",
        field="image_weight",
        typed="image_weight",
        syntax="--weight N",
        description="how closely /remix follows the input image",
        values="1 to 100",
        example="50",
        parse=_v_image_weight,
        format=str,
    ),
    _Field(
        flag="transparent",
        field="transparent",
        typed="transparent",
        syntax="--transparent",
        description=(
            "transparent background (PNG); not with --speed flash, --res, --style, --preset"
            " or --palette"
        ),
        values="no value",
        example="",
        parse=None,
        format=str,
    ),
    _Field(
        flag="sref",
        field="sref",
        typed="",
        syntax="--sref REF[,REF…]",
        description="style reference: style codes, or images (job id[:n] or a file); not with"
        " --style",
        values="8-hex style codes (1A2B3C4D) or image references, not both",
        example="1A2B3C4D",
        parse=_v_sref,
        format=",".join,
    ),
    _Field(
        flag="cref",
        field="cref",
        typed="",
        syntax="--cref REF",
        description="character reference image (job id[:n] or a file)",
        values="one image reference",
        example="3kq9x2m4p7ab:1",
        parse=_v_reference,
        format=str,
    ),
    _Field(
        flag="cref-mask",
        field="cref_mask",
        typed="",
        syntax="--cref-mask REF",
        description="mask of the character reference (white: the character); needs --cref",
        values="one image reference",
        example="3kq9x2m4p7ab:2",
        parse=_v_reference,
        format=str,
    ),
    _Field(
        flag="v",
        field="version",
        typed="",
        syntax="--v V",
        description="model version: 3, or a legacy model (no --sref, --cref, --speed, --preset,"
        " --res, --transparent)",
        values=", ".join(VERSION_CHOICES),
        example="2a",
        parse=_v_version,
        format=str,
    ),
    _Field(
        flag="model",
        field="model",
        typed="",
        syntax="--model NAME",
        description="a custom model",
        values="a model name",
        example="my-model",
        parse=_v_model,
        format=str,
    ),
)

_BY_FLAG: dict[str, _Field] = {f.flag: f for f in _FIELDS}
# Reference flags have no typed option yet (typed == "").
_BY_TYPED: dict[str, _Field] = {f.typed: f for f in _FIELDS if f.typed}

FLAG_NAMES: tuple[str, ...] = tuple(f.flag for f in _FIELDS)
"""Flag names without the ``--`` prefix, in canonical order; ``allow`` takes these."""

FLAG_HELP: list[tuple[str, str, str]] = [(f.syntax, f.description, f.values) for f in _FIELDS]
"""``(flag syntax, description, valid values)`` per flag, in canonical order, for help text."""

TYPED_OPTION_FLAGS: dict[str, str] = {f.typed: f"--{f.flag}" for f in _FIELDS if f.typed}
"""Typed option name (Discord's slash-command options) → the inline flag it stands for."""


def typed_option_help(name: str) -> str:
    """The one-line description of typed option ``name`` (the flag's own help, capitalised).

    Raises:
        KeyError: ``name`` is not a typed option (see :data:`TYPED_OPTION_FLAGS`).
    """
    description = _BY_TYPED[name].description
    return description[:1].upper() + description[1:]


# Names people try for a flag (Ideogram field names, other bots' flags); used for suggestions
# only, never accepted as the flag itself.
_ALIASES: dict[str, str] = {
    "aspect": "ar",
    "aspect_ratio": "ar",
    "aspect-ratio": "ar",
    "aspectratio": "ar",
    "ratio": "ar",
    "size": "res",
    "resolution": "res",
    "negative": "no",
    "neg": "no",
    "negative_prompt": "no",
    "negative-prompt": "no",
    "without": "no",
    "rendering_speed": "speed",
    "rendering-speed": "speed",
    "mode": "speed",
    "fast": "speed",
    "style_type": "style",
    "style-type": "style",
    "style_preset": "preset",
    "style-preset": "preset",
    "magic_prompt": "magic",
    "magic-prompt": "magic",
    "num": "n",
    "num_images": "n",
    "num-images": "n",
    "images": "n",
    "count": "n",
    "number": "n",
    "color": "palette",
    "colors": "palette",
    "colour": "palette",
    "colours": "palette",
    "color_palette": "palette",
    "iw": "weight",
    "image_weight": "weight",
    "image-weight": "weight",
    "transparency": "transparent",
    "nobg": "transparent",
    "alpha": "transparent",
}

_GLUED_VALUE_START = re.compile(r"[0-9#:=]")


def _flag_list(names: Iterable[str]) -> str:
    return ", ".join(f"--{n}" for n in names)


def _unknown_flag(token: str, prefix: int, allowed: Sequence[str]) -> InvalidInput:
    """Build the error for a token that is not a known flag, with the closest flags."""
    shown = _quote(token)
    name = token[prefix:].lower()
    listing = f"Flags: {_flag_list(allowed)}." if allowed else "This command takes no flags."
    # "--ar16:9" / "--seed=5": a known flag glued to its value.
    for known in sorted(allowed, key=len, reverse=True):
        if name.startswith(known) and _GLUED_VALUE_START.match(name, len(known)):
            value = token[prefix + len(known) :].lstrip("=")
            hint = f"`--{known} {_quote(value)}`" if value else f"`--{known}`"
            return InvalidInput(f"Unknown flag `{shown}`. Did you mean {hint}? {listing}")
    aliases = {alias: flag for alias, flag in _ALIASES.items() if flag in allowed}
    close = _closest(name, allowed, aliases)
    hint = f" Did you mean {' or '.join(f'`--{c}`' for c in close)}?" if close else ""
    return InvalidInput(f"Unknown flag `{shown}`.{hint} {listing}")


def _not_allowed(field: _Field, allowed: Sequence[str], command: str | None) -> InvalidInput:
    where = f"`{command}`" if command else "this command"
    if not allowed:
        return InvalidInput(f"`--{field.flag}` can't be used with {where}, which takes no flags.")
    return InvalidInput(
        f"`--{field.flag}` can't be used with {where}. Flags it takes: {_flag_list(allowed)}."
    )


def _parse_flag_value(field: _Field, words: list[str], max_num_images: int) -> Any:
    """Validate the words after one flag; raise InvalidInput with the flag as the user wrote it."""
    assert field.parse is not None
    value = " ".join(words)
    shown = f"`--{field.flag} {_quote(value)}`"
    try:
        return field.parse(value, shown, max_num_images)
    except InvalidInput as error:
        if field.free_text or len(words) < 2:
            raise
        # "--seed 5 in a hat": a valid value followed by prompt text.
        for cut in range(1, len(words)):
            head = " ".join(words[:cut])
            try:
                field.parse(head, shown, max_num_images)
            except InvalidInput:
                continue
            tail = _quote(" ".join(words[cut:]))
            raise InvalidInput(
                f"Text after `--{field.flag} {_quote(head)}` (`{tail}`) is not part of the flag;"
                " please put your prompt before the flags."
            ) from None
        raise error from None


def check_options(options: GenerationOptions) -> None:
    """Check the rules between fields (docs/commands.md; ``generate-transparent`` in the API spec).

    * ``aspect_ratio`` and ``resolution`` are exclusive.
    * ``transparent`` refuses ``rendering_speed`` FLASH (the API answers 400), ``resolution``
      (it takes an aspect ratio only), and ``style_type`` / ``style_preset`` / ``color_palette``
      (``generate-transparent`` has no such fields).

    Raises:
        InvalidInput: one sentence naming the conflicting flags.
    """
    if options.aspect_ratio is not None and options.resolution is not None:
        raise InvalidInput("Please use either `--ar` or `--res`, not both.")
    _check_references(options)
    if not options.transparent:
        return
    if options.rendering_speed is RenderingSpeed.FLASH:
        raise InvalidInput(
            "`--transparent` does not work with `--speed flash`; please use turbo, default or"
            " quality."
        )
    if options.resolution is not None:
        raise InvalidInput(
            "`--transparent` takes an aspect ratio (`--ar`), not a resolution (`--res`)."
        )
    unsupported = [
        flag
        for flag, value in (
            ("--style", options.style_type),
            ("--preset", options.style_preset),
            ("--palette", options.color_palette),
            ("--sref", options.sref),
            ("--cref", options.cref),
        )
        if value is not None
    ]
    if unsupported:
        names = " or ".join(f"`{u}`" for u in unsupported)
        raise InvalidInput(f"`--transparent` can't be combined with {names}.")


def _check_references(options: GenerationOptions) -> None:
    """The reference and model rules: ``--sref`` excludes ``--style``; ``--cref-mask`` needs
    ``--cref``; a legacy ``--v`` refuses the flags only Ideogram 3.0 has."""
    if options.sref and options.style_type is not None:
        raise InvalidInput(
            "`--sref` and `--style` exclude each other; please keep one of them."
        )  # fmt: skip
    if options.cref_mask is not None and options.cref is None:
        raise InvalidInput("`--cref-mask` needs `--cref`, the character image it masks.")
    if not options.legacy:
        return
    for flag in _V3_ONLY:
        value = getattr(options, _BY_FLAG[flag].field)
        if value is not None and value is not False:
            raise InvalidInput(
                f"`--{flag}` doesn't work with `--v {options.version}` (a legacy model); "
                f"remove it, or use `--v 3`."
            )


def parse_prompt(
    text: str,
    *,
    max_num_images: int = 4,
    allow: frozenset[str] | None = None,
    require_prompt: bool = True,
    command: str | None = None,
) -> tuple[str, GenerationOptions]:
    """Split command text into the prompt and its inline flags (docs/commands.md).

    Example: ``"a cat in a hat --ar 16:9 --seed 5 --no dogs, cats --transparent"`` →
    ``("a cat in a hat", GenerationOptions(aspect_ratio=16x9, seed=5, negative_prompt="dogs,
    cats", transparent=True))``.

    Args:
        text: what the user typed after the command name (any string).
        max_num_images: upper bound of ``--n`` (the server's ``max_num_images``).
        allow: flag names (``"ar"``, ``"seed"`` …, see :data:`FLAG_NAMES`; a leading ``--`` is
            tolerated) this command accepts; ``None`` accepts all.
        require_prompt: refuse text with no prompt before the flags (default); ``False`` for
            commands whose prompt is optional (``/upscale``).
        command: the command as the user knows it (``"/upscale"``), named in errors.

    Returns:
        ``(prompt, options)``: the prompt with whitespace normalised (``""`` only when
        ``require_prompt`` is false) and the options, cross-checked by :func:`check_options`.

    Raises:
        InvalidInput: unknown, disallowed or repeated flag, missing or bad value, conflicting
            flags, empty or too long prompt; one sentence naming the valid values and the
            closest ones. Nothing else is raised for any ``text``.
    """
    if allow is None:
        allowed: list[str] = list(FLAG_NAMES)
    else:
        wanted = {a.lstrip("-").lower() for a in allow}
        allowed = [name for name in FLAG_NAMES if name in wanted]

    prompt_words: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for token in text.split():
        if is_flag_token(token):
            groups.append((token, []))
        elif groups:
            groups[-1][1].append(token)
        else:
            prompt_words.append(token)

    values: dict[str, Any] = {}
    for token, words in groups:
        prefix = 1 if token.startswith("—") else 2
        field = _BY_FLAG.get(token[prefix:].lower())
        if field is None:
            raise _unknown_flag(token, prefix, allowed)
        if field.flag not in allowed:
            raise _not_allowed(field, allowed, command)
        if field.field in values:
            raise InvalidInput(f"`--{field.flag}` is given twice; please give it once.")
        if field.parse is None:
            if words:
                raise InvalidInput(
                    f"`--{field.flag}` takes no value (found `{_quote(' '.join(words))}`);"
                    " please put your prompt before the flags."
                )
            values[field.field] = True
            continue
        if not words:
            raise InvalidInput(
                f"`--{field.flag}` needs a value, e.g. `--{field.flag} {field.example}`."
            )
        values[field.field] = _parse_flag_value(field, words, max_num_images)

    options = GenerationOptions(**values)
    check_options(options)

    prompt = " ".join(prompt_words)
    if not prompt and require_prompt:
        raise InvalidInput(
            "Please describe the image you want before any flags, e.g. "
            "`a lighthouse at dusk, oil painting --ar 16:9`."
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(
            f"Your prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}."
        )
    return prompt, options


def format_flags(prompt: str, options: GenerationOptions) -> str:
    """Return the canonical text of ``prompt`` and ``options``: the prompt, then the set flags.

    Flags come in :data:`FLAG_NAMES` order with canonical values (``--ar 16:9``,
    ``--speed turbo``, ``--preset oil_painting``, ``--palette #FF0000:0.5,#00FF00``), so
    ``parse_prompt(format_flags(p, o)) == (normalize_text(p), o)`` for every valid prompt (no
    flag-like tokens, at most :data:`MAX_PROMPT_CHARS`) and options :func:`parse_prompt` can
    produce.
    """
    parts = [normalize_text(prompt)]
    for field in _FIELDS:
        value = getattr(options, field.field)
        if value is None or value is False:
            continue
        if field.parse is None:
            parts.append(f"--{field.flag}")
        else:
            parts.append(f"--{field.flag} {normalize_text(field.format(value))}")
    return " ".join(p for p in parts if p)


def options_from_typed(values: Mapping[str, Any], *, max_num_images: int = 4) -> GenerationOptions:
    """Build options from typed command options, as Discord passes them.

    Args:
        values: option name → value, names as the Discord commands declare them:
            ``aspect_ratio`` (``"16:9"`` / ``"16x9"``), ``resolution`` (``"1024x1024"``),
            ``negative_prompt``, ``seed`` (int), ``speed``, ``style``, ``preset``,
            ``magic_prompt``, ``num_images`` (int), ``palette`` (str), ``image_weight`` (int),
            ``transparent`` (bool). ``None`` and blank strings mean unset; other names
            (``prompt``, ``image`` …) are ignored.
        max_num_images: upper bound of ``num_images``.

    Returns:
        The options, cross-checked by :func:`check_options`.

    Raises:
        InvalidInput: the same sentences as the matching flag, quoting ``name: value``.
    """
    out: dict[str, Any] = {}
    for name, raw in values.items():
        field = _BY_TYPED.get(name)
        if field is None or raw is None:
            continue
        if field.parse is None:
            if not isinstance(raw, bool):
                raise InvalidInput(f"`{name}` must be true or false.")
            out[field.field] = raw
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise InvalidInput(f"`{name}: {_quote(str(raw))}` is not a valid value.")
        text = str(raw)
        if not text.strip():
            continue
        shown = f"`{name}: {_quote(text)}`"
        out[field.field] = field.parse(text, shown, max_num_images)
    options = GenerationOptions(**out)
    check_options(options)
    return options
