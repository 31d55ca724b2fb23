"""Request models of the API's legacy (Ideogram 1.0 / 2.0 / 2a) endpoints.

Source: the API spec vendored at ``tests/ideogram/ideogram-openapi.yaml``: ``POST /generate``
(JSON ``GenerateImageRequest``), ``POST /remix`` (multipart: ``image_request`` as a JSON
``InitialImageRequest`` part beside ``image_file``), ``POST /edit`` and ``POST /reframe``
(multipart text fields beside ``image_file`` and, for edit, ``mask``). Answers are
``GenerateImageResponse``, read with :class:`bot.ideogram.models.ImageGenerationResponseV3`.
Names and enum values are the spec's.

Model rules the spec states in its descriptions (checked by the offline engine, and by the
grammar before any call): ``/edit`` takes only ``V_2`` and ``V_2_TURBO``; ``negative_prompt``
only ``V_1``, ``V_1_TURBO``, ``V_2``, ``V_2_TURBO``; ``color_palette`` not ``V_1``,
``V_1_TURBO``, ``V_2A``, ``V_2A_TURBO``; ``style_type`` not ``V_1`` / ``V_1_TURBO``;
``resolution`` (2.0 models only) and ``aspect_ratio`` exclude each other.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.ideogram.models import ColorPalette, MagicPromptOption

_Frozen = ConfigDict(frozen=True, extra="forbid")


class ModelEnum(StrEnum):
    """``ModelEnum``: the legacy models (``AUTO`` lets the API choose)."""

    V_1 = "V_1"
    V_1_TURBO = "V_1_TURBO"
    V_2 = "V_2"
    V_2_TURBO = "V_2_TURBO"
    V_2A = "V_2A"
    V_2A_TURBO = "V_2A_TURBO"
    AUTO = "AUTO"


#: Models ``POST /edit`` accepts.
EDIT_MODELS = frozenset({ModelEnum.V_2, ModelEnum.V_2_TURBO})
#: Models that take ``negative_prompt``.
NEGATIVE_PROMPT_MODELS = frozenset(
    {ModelEnum.V_1, ModelEnum.V_1_TURBO, ModelEnum.V_2, ModelEnum.V_2_TURBO}
)
#: Models that refuse ``color_palette``.
NO_PALETTE_MODELS = frozenset(
    {ModelEnum.V_1, ModelEnum.V_1_TURBO, ModelEnum.V_2A, ModelEnum.V_2A_TURBO}
)
#: Models that refuse ``style_type``.
NO_STYLE_MODELS = frozenset({ModelEnum.V_1, ModelEnum.V_1_TURBO})


class StyleType(StrEnum):
    """``StyleType`` of the legacy models (2.0 and above)."""

    AUTO = "AUTO"
    GENERAL = "GENERAL"
    FICTION = "FICTION"
    REALISTIC = "REALISTIC"
    DESIGN = "DESIGN"
    RENDER_3D = "RENDER_3D"
    ANIME = "ANIME"


class AspectRatio(StrEnum):
    """``AspectRatio`` of the legacy models: ``ASPECT_W_H``; exclusive with ``resolution``."""

    ASPECT_10_16 = "ASPECT_10_16"
    ASPECT_16_10 = "ASPECT_16_10"
    ASPECT_9_16 = "ASPECT_9_16"
    ASPECT_16_9 = "ASPECT_16_9"
    ASPECT_3_2 = "ASPECT_3_2"
    ASPECT_2_3 = "ASPECT_2_3"
    ASPECT_4_3 = "ASPECT_4_3"
    ASPECT_3_4 = "ASPECT_3_4"
    ASPECT_1_1 = "ASPECT_1_1"
    ASPECT_1_3 = "ASPECT_1_3"
    ASPECT_3_1 = "ASPECT_3_1"

    @property
    def ratio(self) -> float:
        """Return width / height."""
        _, w, h = self.value.split("_")
        return int(w) / int(h)


class Resolution(StrEnum):
    """``Resolution`` of the legacy 2.0 models: ``RESOLUTION_W_H`` (pixels)."""

    R_512_1536 = "RESOLUTION_512_1536"
    R_576_1408 = "RESOLUTION_576_1408"
    R_576_1472 = "RESOLUTION_576_1472"
    R_576_1536 = "RESOLUTION_576_1536"
    R_640_1024 = "RESOLUTION_640_1024"
    R_640_1344 = "RESOLUTION_640_1344"
    R_640_1408 = "RESOLUTION_640_1408"
    R_640_1472 = "RESOLUTION_640_1472"
    R_640_1536 = "RESOLUTION_640_1536"
    R_704_1152 = "RESOLUTION_704_1152"
    R_704_1216 = "RESOLUTION_704_1216"
    R_704_1280 = "RESOLUTION_704_1280"
    R_704_1344 = "RESOLUTION_704_1344"
    R_704_1408 = "RESOLUTION_704_1408"
    R_704_1472 = "RESOLUTION_704_1472"
    R_720_1280 = "RESOLUTION_720_1280"
    R_736_1312 = "RESOLUTION_736_1312"
    R_768_1024 = "RESOLUTION_768_1024"
    R_768_1088 = "RESOLUTION_768_1088"
    R_768_1152 = "RESOLUTION_768_1152"
    R_768_1216 = "RESOLUTION_768_1216"
    R_768_1232 = "RESOLUTION_768_1232"
    R_768_1280 = "RESOLUTION_768_1280"
    R_768_1344 = "RESOLUTION_768_1344"
    R_832_960 = "RESOLUTION_832_960"
    R_832_1024 = "RESOLUTION_832_1024"
    R_832_1088 = "RESOLUTION_832_1088"
    R_832_1152 = "RESOLUTION_832_1152"
    R_832_1216 = "RESOLUTION_832_1216"
    R_832_1248 = "RESOLUTION_832_1248"
    R_864_1152 = "RESOLUTION_864_1152"
    R_896_960 = "RESOLUTION_896_960"
    R_896_1024 = "RESOLUTION_896_1024"
    R_896_1088 = "RESOLUTION_896_1088"
    R_896_1120 = "RESOLUTION_896_1120"
    R_896_1152 = "RESOLUTION_896_1152"
    R_960_832 = "RESOLUTION_960_832"
    R_960_896 = "RESOLUTION_960_896"
    R_960_1024 = "RESOLUTION_960_1024"
    R_960_1088 = "RESOLUTION_960_1088"
    R_1024_640 = "RESOLUTION_1024_640"
    R_1024_768 = "RESOLUTION_1024_768"
    R_1024_832 = "RESOLUTION_1024_832"
    R_1024_896 = "RESOLUTION_1024_896"
    R_1024_960 = "RESOLUTION_1024_960"
    R_1024_1024 = "RESOLUTION_1024_1024"
    R_1088_768 = "RESOLUTION_1088_768"
    R_1088_832 = "RESOLUTION_1088_832"
    R_1088_896 = "RESOLUTION_1088_896"
    R_1088_960 = "RESOLUTION_1088_960"
    R_1120_896 = "RESOLUTION_1120_896"
    R_1152_704 = "RESOLUTION_1152_704"
    R_1152_768 = "RESOLUTION_1152_768"
    R_1152_832 = "RESOLUTION_1152_832"
    R_1152_864 = "RESOLUTION_1152_864"
    R_1152_896 = "RESOLUTION_1152_896"
    R_1216_704 = "RESOLUTION_1216_704"
    R_1216_768 = "RESOLUTION_1216_768"
    R_1216_832 = "RESOLUTION_1216_832"
    R_1232_768 = "RESOLUTION_1232_768"
    R_1248_832 = "RESOLUTION_1248_832"
    R_1280_704 = "RESOLUTION_1280_704"
    R_1280_720 = "RESOLUTION_1280_720"
    R_1280_768 = "RESOLUTION_1280_768"
    R_1280_800 = "RESOLUTION_1280_800"
    R_1312_736 = "RESOLUTION_1312_736"
    R_1344_640 = "RESOLUTION_1344_640"
    R_1344_704 = "RESOLUTION_1344_704"
    R_1344_768 = "RESOLUTION_1344_768"
    R_1408_576 = "RESOLUTION_1408_576"
    R_1408_640 = "RESOLUTION_1408_640"
    R_1408_704 = "RESOLUTION_1408_704"
    R_1472_576 = "RESOLUTION_1472_576"
    R_1472_640 = "RESOLUTION_1472_640"
    R_1472_704 = "RESOLUTION_1472_704"
    R_1536_512 = "RESOLUTION_1536_512"
    R_1536_576 = "RESOLUTION_1536_576"
    R_1536_640 = "RESOLUTION_1536_640"

    @property
    def size(self) -> tuple[int, int]:
        """Return ``(width, height)`` in pixels."""
        _, w, h = self.value.split("_")
        return int(w), int(h)


class ImageRequest(BaseModel):
    """``ImageRequest``: the ``image_request`` of ``POST /generate``."""

    model_config = _Frozen
    prompt: str = Field(min_length=1)
    aspect_ratio: AspectRatio | None = None
    model: ModelEnum | None = None
    magic_prompt_option: MagicPromptOption | None = None
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    style_type: StyleType | None = None
    negative_prompt: str | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    resolution: Resolution | None = None
    color_palette: ColorPalette | None = None


class GenerateImageRequest(BaseModel):
    """``GenerateImageRequest``: the JSON body of ``POST /generate``."""

    model_config = _Frozen
    image_request: ImageRequest


class InitialImageRequest(ImageRequest):
    """``InitialImageRequest``: the ``image_request`` JSON part of ``POST /remix``."""

    image_weight: int | None = Field(default=None, ge=1, le=100)


class LegacyEditRequest(BaseModel):
    """Fields of ``POST /edit`` besides its ``image_file`` and ``mask`` parts.

    ``model`` is required and must be ``V_2`` or ``V_2_TURBO``.
    """

    model_config = _Frozen
    prompt: str = Field(min_length=1)
    model: ModelEnum
    magic_prompt_option: MagicPromptOption | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    style_type: StyleType | None = None


class LegacyReframeRequest(BaseModel):
    """Fields of ``POST /reframe`` besides its ``image_file`` part."""

    model_config = _Frozen
    resolution: Resolution
    model: ModelEnum
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    style_type: StyleType | None = None
