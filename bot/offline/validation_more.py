"""Validation of the offline engine's edit, inpaint, layerize, legacy and reference requests.

The same approach as :mod:`bot.offline.validation` (whose helpers this module reuses): fields
through the API's pydantic models (:mod:`bot.ideogram.models_edit`,
:mod:`bot.ideogram.models_legacy`), the rest by hand, each refusal a
:class:`~bot.offline.forms.BadRequest` naming the field. Images are decoded here, so call these
functions in a worker thread (:func:`validate_any` does).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from PIL import Image

from bot.ideogram.models import MagicPromptOption, StyleTypeV3
from bot.ideogram.models_edit import (
    MAX_EDIT_IMAGES,
    EditRequestV1,
    InpaintRequestV3,
    LayerizeTextRequestV3,
)
from bot.ideogram.models_legacy import (
    EDIT_MODELS,
    NEGATIVE_PROMPT_MODELS,
    NO_PALETTE_MODELS,
    NO_STYLE_MODELS,
    ImageRequest,
    InitialImageRequest,
    LegacyEditRequest,
    LegacyReframeRequest,
    ModelEnum,
    StyleType,
)
from bot.offline import render
from bot.offline.forms import BadRequest, Form
from bot.offline.render_more import dominant_colours, mask_has_black
from bot.offline.validation import (
    MAX_IMAGE_BYTES,
    Job,
    Kind,
    _checked,
    _fields,
    _image,
    _palette,
    _picture,
    _prompt,
    _size,
    _style_codes,
    validate,
)

__all__ = ["MORE_KINDS", "REFERENCE_KINDS", "validate_any", "validate_more", "with_references"]

#: The endpoints this module validates.
MORE_KINDS: Final = frozenset(
    {
        Kind.EDIT,
        Kind.INPAINT,
        Kind.LAYERIZE,
        Kind.LEGACY_GENERATE,
        Kind.LEGACY_REMIX,
        Kind.LEGACY_EDIT,
        Kind.LEGACY_REFRAME,
    }
)
#: Endpoints taking reference images, and whether they take character references too.
REFERENCE_KINDS: Final = {
    Kind.GENERATE: True,
    Kind.REMIX: True,
    Kind.INPAINT: True,
    Kind.REFRAME: False,
    Kind.REPLACE_BACKGROUND: False,
}

#: Resolves an ``image_urls`` entry to the image's bytes; raises BadRequest if it cannot.
UrlResolver = Callable[[str], bytes]


def _decode(data: bytes, label: str) -> Image.Image:
    try:
        return render.decode_image(data)
    except render.ImageDecodeError as exc:
        raise BadRequest(f"{label}: {exc} (accepted: JPEG, PNG and WebP, at most 10 MB)") from exc


def _sized(data: bytes, label: str) -> bytes:
    if len(data) > MAX_IMAGE_BYTES:
        raise BadRequest(f"{label}: larger than the maximum size of 10 MB ({len(data)} bytes)")
    return data


def _mask(form: Form, image: bytes, field: str) -> bytes:
    """Check the ``mask`` part: decodes, the image's size, and some black to redraw."""
    mask = _image(form, "mask")
    picture, drawn = _decode(image, field), _decode(mask, "mask")
    if drawn.size != picture.size:
        raise BadRequest(
            f"mask: must be the size of the image ({picture.width}x{picture.height}),"
            f" got {drawn.width}x{drawn.height}"
        )
    if not mask_has_black(drawn):
        raise BadRequest("mask: has no black region; black marks the part to redraw")
    return mask


def _v3_style(style: StyleType | None) -> StyleTypeV3 | None:
    known = {member.value for member in StyleTypeV3}
    return StyleTypeV3(style.value) if style and style.value in known else None


def _legacy_rules(request: ImageRequest | LegacyEditRequest | LegacyReframeRequest) -> str:
    """Check the model-specific rules of the legacy fields; return the model's name."""
    model = request.model or ModelEnum.V_2
    if request.style_type is not None and model in NO_STYLE_MODELS:
        raise BadRequest(f"style_type: not supported by model {model.value}")
    if isinstance(request, ImageRequest):
        if request.negative_prompt is not None and model not in NEGATIVE_PROMPT_MODELS:
            raise BadRequest(f"negative_prompt: not supported by model {model.value}")
        if request.color_palette is not None and model in NO_PALETTE_MODELS:
            raise BadRequest(f"color_palette: not supported by model {model.value}")
        if request.resolution is not None and request.aspect_ratio is not None:
            raise BadRequest("aspect_ratio and resolution cannot be used together; give one")
    return model.value


def _legacy_size(request: ImageRequest) -> tuple[int, int]:
    if request.resolution is not None:
        return request.resolution.size
    if request.aspect_ratio is not None:
        return render.resolution_for_size(round(request.aspect_ratio.ratio * 1000), 1000).size
    return (1024, 1024)


def _image_request(form: Form, model: type[ImageRequest], *, json_body: bool) -> ImageRequest:
    value = form.raw("image_request")
    if value is None:
        raise BadRequest(f"image_request: required field is missing (a JSON {model.__name__})")
    if isinstance(value, str):
        if json_body:
            raise BadRequest("Content-Type must be application/json for this endpoint")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRequest("image_request: is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"image_request: must be a JSON object ({model.__name__})")
    inner = Form(values=value, prefix="image_request.")
    palette = _palette(inner)
    fields = {k: v for k, v in value.items() if k != "color_palette"}
    checked = _checked(model, fields, "image_request.")
    if palette and checked.color_palette is None:
        checked = checked.model_copy(update={"color_palette": value["color_palette"]})
    return checked


def _legacy(kind: Kind, form: Form) -> Job:
    if kind in (Kind.LEGACY_GENERATE, Kind.LEGACY_REMIX):
        model = ImageRequest if kind is Kind.LEGACY_GENERATE else InitialImageRequest
        image = None if kind is Kind.LEGACY_GENERATE else _image(form, "image_file")
        r = _image_request(form, model, json_body=kind is Kind.LEGACY_GENERATE)
        name = _legacy_rules(r)
        weight = getattr(r, "image_weight", None)
        palette = _palette(Form(values={"color_palette": r.color_palette}))
        return Job(
            kind,
            prompt=_prompt(r.prompt),
            magic=r.magic_prompt_option,
            num_images=r.num_images or 1,
            seed=r.seed,
            style_type=_v3_style(r.style_type),
            palette=palette,
            image=image,
            image_field="image_file",
            image_weight=50 if weight is None else weight,
            model=name,
            size=_legacy_size(r),
        )
    image = _image(form, "image_file")
    if kind is Kind.LEGACY_EDIT:
        e = _fields(form, LegacyEditRequest)
        name = _legacy_rules(e)
        if e.model not in EDIT_MODELS:
            raise BadRequest(f"model: {e.model.value!r} is not valid for /edit; use V_2, V_2_TURBO")
        mask = _mask(form, image, "image_file")
        return Job(
            kind,
            prompt=_prompt(e.prompt),
            magic=e.magic_prompt_option,
            num_images=e.num_images or 1,
            seed=e.seed,
            style_type=_v3_style(e.style_type),
            image=image,
            image_field="image_file",
            mask=mask,
            model=name,
        )
    f = _fields(form, LegacyReframeRequest)
    return Job(
        kind,
        num_images=f.num_images or 1,
        seed=f.seed,
        style_type=_v3_style(f.style_type),
        image=image,
        image_field="image_file",
        model=_legacy_rules(f),
        size=f.resolution.size,
    )


def validate_more(kind: Kind, form: Form, resolve_url: UrlResolver) -> Job:
    """Check a request to one of :data:`MORE_KINDS` as the API does; return the job.

    Raises:
        BadRequest: the first problem found, naming the field and its valid values.
    """
    if kind is Kind.EDIT:
        fields = form.values(EditRequestV1.model_fields, repeated=("image_urls",))
        e = _checked(EditRequestV1, fields)
        files = [_sized(data, f"images[{i}]") for i, data in enumerate(form.files("images"))]
        urls = [resolve_url(url) for url in e.image_urls or ()]
        if len(files) > MAX_EDIT_IMAGES:
            raise BadRequest(f"images: at most {MAX_EDIT_IMAGES} images (got {len(files)})")
        images = files + urls
        if not images:
            raise BadRequest("images: give at least one image (or image_urls)")
        for n, data in enumerate(images):
            _decode(data, f"images[{n}]")
        resolution = (
            _size(e.resolution, e.aspect_ratio)
            if e.resolution or e.aspect_ratio
            else render.resolution_for_size(*_decode(images[0], "images[0]").size)
        )
        return Job(
            kind,
            prompt=_prompt(e.prompt),
            magic=e.magic_prompt,
            num_images=e.num_images or 1,
            seed=e.seed,
            resolution=resolution,
            image=images[0],
            image_field="images",
            images=tuple(images[1:]),
            transparent=bool(e.transparent_background),
        )
    if kind is Kind.INPAINT:
        image = _image(form, "image")
        p = _fields(form, InpaintRequestV3)
        _style_codes(form, p.style_codes, p.style_type)
        mask = _mask(form, image, "image")
        width, height = _decode(image, "image").size
        return Job(
            kind,
            prompt=_prompt(p.prompt),
            magic=p.magic_prompt,
            style_type=p.style_type,
            image=image,
            mask=mask,
            resolution=render.resolution_for_size(width, height),
            **_picture(p, form),  # type: ignore[arg-type]
        )
    if kind is Kind.LAYERIZE:
        image = _image(form, "image")
        layer = _fields(form, LayerizeTextRequestV3)
        return Job(
            kind,
            prompt=_prompt(layer.prompt) if layer.prompt is not None else None,
            magic=MagicPromptOption.OFF,
            seed=layer.seed,
            image=image,
        )
    return _legacy(kind, form)


def with_references(kind: Kind, form: Form, job: Job) -> Job:
    """Check the reference image parts of a v3 request; return ``job`` with their colours.

    Raises:
        BadRequest: a character reference where the endpoint takes none, more than one
            character image, masks not matching the character images (count or size), more than
            10 MB of one kind, an image that does not decode, or style codes with style images.
    """
    takes_character = REFERENCE_KINDS.get(kind)
    if takes_character is None:
        return job
    style = form.files("style_reference_images")
    character = form.files("character_reference_images")
    masks = form.files("character_reference_images_mask")
    if (character or masks) and not takes_character:
        raise BadRequest(
            "character_reference_images: not accepted by this endpoint (style references only)"
        )
    if style and form.raw_all("style_codes"):
        raise BadRequest("style_codes: cannot be used together with style_reference_images")
    if len(character) > 1:
        raise BadRequest("character_reference_images: only 1 character reference image")
    if masks and len(masks) != len(character):
        raise BadRequest(
            "character_reference_images_mask: must match the number of character images"
        )
    colours: list[render.RGB] = []
    for name, parts in (
        ("style_reference_images", style),
        ("character_reference_images", character),
    ):
        if sum(len(p) for p in parts) > MAX_IMAGE_BYTES:
            raise BadRequest(f"{name}: more than 10 MB in total")
        for i, data in enumerate(parts):
            colours.extend(dominant_colours(_decode(data, f"{name}[{i}]")))
    for i, data in enumerate(masks):
        drawn = _decode(data, f"character_reference_images_mask[{i}]")
        reference = _decode(character[i], f"character_reference_images[{i}]")
        if drawn.size != reference.size:
            raise BadRequest(
                f"character_reference_images_mask[{i}]: must be the size of its image"
                f" ({reference.width}x{reference.height})"
            )
    if not colours:
        return job
    return replace(job, reference_colours=tuple(colours))


async def validate_any(kind: Kind, form: Form, resolve_url: UrlResolver) -> Job:
    """Validate a request to any endpoint, references included (decoding in worker threads).

    Raises:
        BadRequest: the first problem found.
    """
    if kind in MORE_KINDS:
        job = await asyncio.to_thread(validate_more, kind, form, resolve_url)
    else:
        job = validate(kind, form)
    if kind in REFERENCE_KINDS:
        job = await asyncio.to_thread(with_references, kind, form, job)
    return job
