"""Request and response models of the API's edit, inpaint and text-layer endpoints.

Source: the API spec vendored at ``tests/ideogram/ideogram-openapi.yaml``: the ``requestBody``
of ``POST /v1/edit``, ``POST /v1/ideogram-v3/inpaint`` and ``POST /v1/ideogram-v3/layerize-text``
and the schemas ``V1EditImagesResponse`` and ``LayerizeTextResponse``. Field names and enum values
are the spec's. Image parts (``images``, ``image``, ``mask``, the reference images) are not model
fields: the client sends them as file parts beside :func:`bot.ideogram.models.form_fields`.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from bot.ideogram.models import (
    AspectRatioV3,
    ColorPalette,
    ImageGenerationResponseV3,
    MagicPromptOption,
    RenderingSpeed,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
)

#: Most images ``POST /v1/edit`` takes, uploaded and by URL counted separately (spec: "max 10").
MAX_EDIT_IMAGES = 10

_Frozen = ConfigDict(frozen=True, extra="forbid")


class EditRequestV1(BaseModel):
    """Fields of ``POST /v1/edit`` besides its ``images`` parts (1-10 files, or ``image_urls``).

    ``image_urls`` are Ideogram image URLs (from generation responses or uploads), one part each.
    ``resolution`` and ``aspect_ratio`` exclude each other.
    """

    model_config = _Frozen
    prompt: str = Field(min_length=1)
    image_urls: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=10)
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    magic_prompt: MagicPromptOption | None = None
    resolution: ResolutionV3 | None = None
    aspect_ratio: AspectRatioV3 | None = None
    transparent_background: bool | None = None


class InpaintRequestV3(BaseModel):
    """Fields of ``POST /v1/ideogram-v3/inpaint`` besides its ``image`` and ``mask`` parts.

    The mask is black where the image is to be redrawn, white elsewhere, the image's size.
    ``style_codes`` exclude ``style_type`` and style reference images.
    """

    model_config = _Frozen
    prompt: str = Field(min_length=1)
    magic_prompt: MagicPromptOption | None = None
    num_images: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    rendering_speed: RenderingSpeed | None = None
    style_type: StyleTypeV3 | None = None
    style_preset: StylePresetV3 | None = None
    color_palette: ColorPalette | None = None
    style_codes: tuple[str, ...] | None = None


class LayerizeTextRequestV3(BaseModel):
    """Fields of ``POST /v1/ideogram-v3/layerize-text`` besides its ``image`` part.

    ``prompt`` optionally describes the image (the API writes one when it is left out).
    """

    model_config = _Frozen
    prompt: str | None = Field(default=None, min_length=1)
    seed: int | None = Field(default=None, ge=0, le=2147483647)


class V1EditImagesResponse(ImageGenerationResponseV3):
    """``V1EditImagesResponse``: ``created`` + ``data`` (``V1EditImageObject``, the same fields
    as ``ImageGenerationObjectV3``)."""


class LayerizeTextBlock(BaseModel):
    """One detected text block of a layerize answer.

    The spec's ``LayerizeTextResponse`` does not list the blocks' fields, so every field is
    optional and fields not named here are kept (``model_extra``). Positions and sizes are in
    pixels of the analysed image, ``(x, y)`` the block's top-left corner; ``color`` is
    ``#RRGGBB``.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    text: str = Field(default="", validation_alias=AliasChoices("text", "content"))
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None
    font_family: str | None = Field(
        default=None, validation_alias=AliasChoices("font_family", "font", "font_name")
    )
    font_size: float | None = None
    font_weight: str | int | None = None
    color: str | None = Field(default=None, validation_alias=AliasChoices("color", "colour"))
    rotation: float | None = None


class LayerizeTextResponse(BaseModel):
    """``LayerizeTextResponse``: the text-erased ``base_image_url``, the ``original_image_url``
    (may be null), ``seed``, and the detected ``text_blocks``. Fields the spec does not list
    are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    base_image_url: str
    original_image_url: str | None = None
    seed: int = 0
    text_blocks: tuple[LayerizeTextBlock, ...] = Field(
        default=(), validation_alias=AliasChoices("text_blocks", "text_layers", "texts")
    )
