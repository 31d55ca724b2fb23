"""Request and response models of the Ideogram API, named as the spec names them.

Source: the API spec vendored at ``tests/ideogram/ideogram-openapi.yaml`` (the API contract of
record), components/schemas and the ``requestBody`` of each path used by the bot. Field names and
enum values are the spec's exactly; the Python class names follow the spec's ``title`` where it
has one.

Request models serialise to the multipart parts the API expects with :func:`form_fields`:
scalars as text parts, ``color_palette`` as one JSON part, ``style_codes`` repeated.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ResolutionV3(StrEnum):
    """``ResolutionV3``: the width x height pairs Ideogram 3.0 renders (pixels)."""

    R_512x1536 = "512x1536"
    R_576x1408 = "576x1408"
    R_576x1472 = "576x1472"
    R_576x1536 = "576x1536"
    R_640x1344 = "640x1344"
    R_640x1408 = "640x1408"
    R_640x1472 = "640x1472"
    R_640x1536 = "640x1536"
    R_704x1152 = "704x1152"
    R_704x1216 = "704x1216"
    R_704x1280 = "704x1280"
    R_704x1344 = "704x1344"
    R_704x1408 = "704x1408"
    R_704x1472 = "704x1472"
    R_736x1312 = "736x1312"
    R_768x1088 = "768x1088"
    R_768x1216 = "768x1216"
    R_768x1280 = "768x1280"
    R_768x1344 = "768x1344"
    R_800x1280 = "800x1280"
    R_832x960 = "832x960"
    R_832x1024 = "832x1024"
    R_832x1088 = "832x1088"
    R_832x1152 = "832x1152"
    R_832x1216 = "832x1216"
    R_832x1248 = "832x1248"
    R_864x1152 = "864x1152"
    R_896x960 = "896x960"
    R_896x1024 = "896x1024"
    R_896x1088 = "896x1088"
    R_896x1120 = "896x1120"
    R_896x1152 = "896x1152"
    R_960x832 = "960x832"
    R_960x896 = "960x896"
    R_960x1024 = "960x1024"
    R_960x1088 = "960x1088"
    R_1024x832 = "1024x832"
    R_1024x896 = "1024x896"
    R_1024x960 = "1024x960"
    R_1024x1024 = "1024x1024"
    R_1088x768 = "1088x768"
    R_1088x832 = "1088x832"
    R_1088x896 = "1088x896"
    R_1088x960 = "1088x960"
    R_1120x896 = "1120x896"
    R_1152x704 = "1152x704"
    R_1152x832 = "1152x832"
    R_1152x864 = "1152x864"
    R_1152x896 = "1152x896"
    R_1216x704 = "1216x704"
    R_1216x768 = "1216x768"
    R_1216x832 = "1216x832"
    R_1248x832 = "1248x832"
    R_1280x704 = "1280x704"
    R_1280x768 = "1280x768"
    R_1280x800 = "1280x800"
    R_1312x736 = "1312x736"
    R_1344x640 = "1344x640"
    R_1344x704 = "1344x704"
    R_1344x768 = "1344x768"
    R_1408x576 = "1408x576"
    R_1408x640 = "1408x640"
    R_1408x704 = "1408x704"
    R_1472x576 = "1472x576"
    R_1472x640 = "1472x640"
    R_1472x704 = "1472x704"
    R_1536x512 = "1536x512"
    R_1536x576 = "1536x576"
    R_1536x640 = "1536x640"

    @property
    def size(self) -> tuple[int, int]:
        """Return ``(width, height)`` in pixels."""
        w, h = self.value.split("x")
        return int(w), int(h)


class AspectRatioV3(StrEnum):
    """``AspectRatioV3``: ``WxH`` ratios; exclusive with ``resolution``."""

    R_1x3 = "1x3"
    R_3x1 = "3x1"
    R_1x2 = "1x2"
    R_2x1 = "2x1"
    R_9x16 = "9x16"
    R_16x9 = "16x9"
    R_10x16 = "10x16"
    R_16x10 = "16x10"
    R_2x3 = "2x3"
    R_3x2 = "3x2"
    R_3x4 = "3x4"
    R_4x3 = "4x3"
    R_4x5 = "4x5"
    R_5x4 = "5x4"
    R_1x1 = "1x1"

    @property
    def ratio(self) -> float:
        """Return width / height."""
        w, h = self.value.split("x")
        return int(w) / int(h)


class RenderingSpeed(StrEnum):
    """``RenderingSpeed``. ``generate-transparent`` refuses ``FLASH`` (400)."""

    FLASH = "FLASH"
    TURBO = "TURBO"
    DEFAULT = "DEFAULT"
    QUALITY = "QUALITY"


class MagicPromptOption(StrEnum):
    """``MagicPromptOption``."""

    AUTO = "AUTO"
    ON = "ON"
    OFF = "OFF"


class StyleTypeV3(StrEnum):
    """``StyleTypeV3``."""

    AUTO = "AUTO"
    GENERAL = "GENERAL"
    REALISTIC = "REALISTIC"
    DESIGN = "DESIGN"
    FICTION = "FICTION"


class StylePresetV3(StrEnum):
    """``StylePresetV3``: named artistic presets."""

    P_80S_ILLUSTRATION = "80S_ILLUSTRATION"
    P_90S_NOSTALGIA = "90S_NOSTALGIA"
    ABSTRACT_ORGANIC = "ABSTRACT_ORGANIC"
    ANALOG_NOSTALGIA = "ANALOG_NOSTALGIA"
    ART_BRUT = "ART_BRUT"
    ART_DECO = "ART_DECO"
    ART_POSTER = "ART_POSTER"
    AURA = "AURA"
    AVANT_GARDE = "AVANT_GARDE"
    BAUHAUS = "BAUHAUS"
    BLUEPRINT = "BLUEPRINT"
    BLURRY_MOTION = "BLURRY_MOTION"
    BRIGHT_ART = "BRIGHT_ART"
    C4D_CARTOON = "C4D_CARTOON"
    CHILDRENS_BOOK = "CHILDRENS_BOOK"
    COLLAGE = "COLLAGE"
    COLORING_BOOK_I = "COLORING_BOOK_I"
    COLORING_BOOK_II = "COLORING_BOOK_II"
    CUBISM = "CUBISM"
    DARK_AURA = "DARK_AURA"
    DOODLE = "DOODLE"
    DOUBLE_EXPOSURE = "DOUBLE_EXPOSURE"
    DRAMATIC_CINEMA = "DRAMATIC_CINEMA"
    EDITORIAL = "EDITORIAL"
    EMOTIONAL_MINIMAL = "EMOTIONAL_MINIMAL"
    ETHEREAL_PARTY = "ETHEREAL_PARTY"
    EXPIRED_FILM = "EXPIRED_FILM"
    FLAT_ART = "FLAT_ART"
    FLAT_VECTOR = "FLAT_VECTOR"
    FOREST_REVERIE = "FOREST_REVERIE"
    GEO_MINIMALIST = "GEO_MINIMALIST"
    GLASS_PRISM = "GLASS_PRISM"
    GOLDEN_HOUR = "GOLDEN_HOUR"
    GRAFFITI_I = "GRAFFITI_I"
    GRAFFITI_II = "GRAFFITI_II"
    HALFTONE_PRINT = "HALFTONE_PRINT"
    HIGH_CONTRAST = "HIGH_CONTRAST"
    HIPPIE_ERA = "HIPPIE_ERA"
    ICONIC = "ICONIC"
    JAPANDI_FUSION = "JAPANDI_FUSION"
    JAZZY = "JAZZY"
    LONG_EXPOSURE = "LONG_EXPOSURE"
    MAGAZINE_EDITORIAL = "MAGAZINE_EDITORIAL"
    MINIMAL_ILLUSTRATION = "MINIMAL_ILLUSTRATION"
    MIXED_MEDIA = "MIXED_MEDIA"
    MONOCHROME = "MONOCHROME"
    NIGHTLIFE = "NIGHTLIFE"
    OIL_PAINTING = "OIL_PAINTING"
    OLD_CARTOONS = "OLD_CARTOONS"
    PAINT_GESTURE = "PAINT_GESTURE"
    POP_ART = "POP_ART"
    RETRO_ETCHING = "RETRO_ETCHING"
    RIVIERA_POP = "RIVIERA_POP"
    SPOTLIGHT_80S = "SPOTLIGHT_80S"
    STYLIZED_RED = "STYLIZED_RED"
    SURREAL_COLLAGE = "SURREAL_COLLAGE"
    TRAVEL_POSTER = "TRAVEL_POSTER"
    VINTAGE_GEO = "VINTAGE_GEO"
    VINTAGE_POSTER = "VINTAGE_POSTER"
    WATERCOLOR = "WATERCOLOR"
    WEIRD = "WEIRD"
    WOODBLOCK_PRINT = "WOODBLOCK_PRINT"


class ColorPalettePresetName(StrEnum):
    """``ColorPalettePresetName``."""

    EMBER = "EMBER"
    FRESH = "FRESH"
    JUNGLE = "JUNGLE"
    MAGIC = "MAGIC"
    MELON = "MELON"
    MOSAIC = "MOSAIC"
    PASTEL = "PASTEL"
    ULTRAMARINE = "ULTRAMARINE"


class DescribeModelVersion(StrEnum):
    """``DescribeModelVersion``."""

    V_2 = "V_2"
    V_3 = "V_3"


class UpscaleFactor(StrEnum):
    """``UpscaleFactor`` of ``generate-transparent``."""

    X1 = "X1"
    X2 = "X2"
    X4 = "X4"


_Frozen = ConfigDict(frozen=True, extra="forbid")


class ColorPaletteMember(BaseModel):
    """``ColorPaletteMember``: ``color_hex`` like ``#AABBCC``, ``color_weight`` in 0.05..1.0."""

    model_config = _Frozen
    color_hex: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    color_weight: float | None = Field(default=None, ge=0.05, le=1.0)


class ColorPaletteWithPresetName(BaseModel):
    """``ColorPaletteWithPresetName``."""

    model_config = _Frozen
    name: ColorPalettePresetName


class ColorPaletteWithMembers(BaseModel):
    """``ColorPaletteWithMembers``."""

    model_config = _Frozen
    members: tuple[ColorPaletteMember, ...] = Field(min_length=1)


ColorPalette = ColorPaletteWithPresetName | ColorPaletteWithMembers


class _Request(BaseModel):
    model_config = _Frozen


class GenerateRequestV3(_Request):
    """Body of ``POST /v1/ideogram-v3/generate`` (multipart/form-data). ``prompt`` is required."""

    prompt: str = Field(min_length=1)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    resolution: ResolutionV3 | None = None
    aspect_ratio: AspectRatioV3 | None = None
    rendering_speed: RenderingSpeed | None = None
    magic_prompt: MagicPromptOption | None = None
    negative_prompt: str | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    color_palette: ColorPalette | None = None
    style_codes: tuple[str, ...] | None = None
    style_type: StyleTypeV3 | None = None
    style_preset: StylePresetV3 | None = None
    # "model/<id>/version/<n>": a trained custom model; exclusive with style_type.
    custom_model_uri: str | None = Field(default=None, min_length=1)


class GenerateTransparentRequestV3(_Request):
    """Body of ``POST /v1/ideogram-v3/generate-transparent``. ``FLASH`` is not accepted."""

    prompt: str = Field(min_length=1)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    upscale_factor: UpscaleFactor | None = None
    aspect_ratio: AspectRatioV3 | None = None
    rendering_speed: RenderingSpeed | None = None
    magic_prompt: MagicPromptOption | None = None
    negative_prompt: str | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)


class RemixRequestV3(_Request):
    """Fields of ``POST /v1/ideogram-v3/remix`` besides the ``image`` part."""

    prompt: str = Field(min_length=1)
    image_weight: int | None = Field(default=None, ge=1, le=100)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    resolution: ResolutionV3 | None = None
    aspect_ratio: AspectRatioV3 | None = None
    rendering_speed: RenderingSpeed | None = None
    magic_prompt: MagicPromptOption | None = None
    negative_prompt: str | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    color_palette: ColorPalette | None = None
    style_codes: tuple[str, ...] | None = None
    style_type: StyleTypeV3 | None = None
    style_preset: StylePresetV3 | None = None


class ReframeRequestV3(_Request):
    """Fields of ``POST /v1/ideogram-v3/reframe`` besides the ``image`` part."""

    resolution: ResolutionV3
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    rendering_speed: RenderingSpeed | None = None
    style_preset: StylePresetV3 | None = None
    color_palette: ColorPalette | None = None
    style_codes: tuple[str, ...] | None = None


class ReplaceBackgroundRequestV3(_Request):
    """Fields of ``POST /v1/ideogram-v3/replace-background`` besides the ``image`` part."""

    prompt: str = Field(min_length=1)
    magic_prompt: MagicPromptOption | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    rendering_speed: RenderingSpeed | None = None
    style_preset: StylePresetV3 | None = None
    color_palette: ColorPalette | None = None
    style_codes: tuple[str, ...] | None = None


class UpscaleInitialImageRequest(_Request):
    """``UpscaleInitialImageRequest``: sent as the JSON part ``image_request`` of ``/upscale``."""

    prompt: str | None = None
    resemblance: int | None = Field(default=None, ge=1, le=100)
    detail: int | None = Field(default=None, ge=1, le=100)
    magic_prompt_option: MagicPromptOption | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)


class DescribeRequest(_Request):
    """Fields of ``POST /describe`` besides the ``image_file`` part."""

    describe_model_version: DescribeModelVersion | None = None


def form_fields(request: BaseModel) -> list[tuple[str, str]]:
    """Return the multipart text parts of ``request`` as ``(name, value)`` pairs.

    Unset (``None``) fields are left out. ``color_palette`` becomes one JSON part, sequences
    (``style_codes``, ``image_urls``) one part per item, enums their value, booleans ``true`` /
    ``false`` (JSON's spelling, which the API's boolean fields read), everything else ``str()``.
    """
    out: list[tuple[str, str]] = []
    for name in type(request).model_fields:
        value = getattr(request, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            out.append((name, json.dumps(value.model_dump(mode="json", exclude_none=True))))
        elif isinstance(value, tuple):
            out.extend((name, str(item)) for item in value)
        elif isinstance(value, StrEnum):
            out.append((name, value.value))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


class _Response(BaseModel):
    # Responses may grow fields; keep what we know, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ImageGenerationObjectV3(_Response):
    """``ImageGenerationObjectV3`` (also covers ``ImageObject`` of ``/upscale``).

    ``url`` is ``None`` when ``is_image_safe`` is false: that image was withheld (and billed).
    """

    url: str | None = None
    prompt: str = ""
    resolution: str = ""
    upscaled_resolution: str | None = None
    is_image_safe: bool = True
    seed: int = 0
    style_type: str | None = None


class ImageGenerationResponseV3(_Response):
    """``ImageGenerationResponseV3`` / ``GenerateImageResponse``: ``created`` + ``data``."""

    created: datetime
    data: tuple[ImageGenerationObjectV3, ...]


class RemoveBackgroundImageObject(_Response):
    """``RemoveBackgroundImageObject``."""

    url: str | None = None
    is_image_safe: bool = True


class RemoveBackgroundResponse(_Response):
    """``RemoveBackgroundResponse``."""

    created: datetime
    data: tuple[RemoveBackgroundImageObject, ...]


class Description(_Response):
    """``Description``."""

    text: str = ""


class DescribeResponse(_Response):
    """``DescribeResponse``."""

    descriptions: tuple[Description, ...] = ()


def enum_values(enum: type[StrEnum]) -> list[str]:
    """Return the spec values of ``enum`` in spec order."""
    return [member.value for member in enum]


def dump(model: BaseModel) -> dict[str, Any]:
    """Return ``model`` as a JSON-ready dict without unset fields."""
    return model.model_dump(mode="json", exclude_none=True)
