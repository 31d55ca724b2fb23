"""Validation of the offline engine's requests through the API's pydantic request models.

Each endpoint's fields are checked by its model in :mod:`bot.ideogram.models` (the
``requestBody`` schemas of the API spec, ``tests/ideogram/ideogram-openapi.yaml``); a
:class:`~pydantic.ValidationError` becomes a :class:`~bot.offline.forms.BadRequest` whose text
names the field first and says what it accepts (``"seed: must be an integer from 0 to
2147483647 (got '-1')"``). The few rules the models do not carry are checked here by hand:
image parts, prompts of only spaces, the ``style_codes`` format, fields that exclude each other,
and ``FLASH`` on ``generate-transparent``.

Multipart numbers arrive as text and are read in pydantic's lax mode, so ``"5"`` and ``" 5 "``
are the integer 5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, TypeVar, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from bot.ideogram.models import (
    AspectRatioV3,
    ColorPaletteMember,
    ColorPaletteWithMembers,
    ColorPaletteWithPresetName,
    DescribeRequest,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    MagicPromptOption,
    ReframeRequestV3,
    RemixRequestV3,
    RenderingSpeed,
    ReplaceBackgroundRequestV3,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
    UpscaleInitialImageRequest,
)
from bot.offline import render
from bot.offline.forms import BadRequest, Form

__all__ = ["MAX_IMAGE_BYTES", "MAX_SEED", "Job", "Kind", "images_hint", "validate"]

#: Largest accepted image part, in bytes. The spec says "max size 10MB"; the decimal reading is
#: the stricter one, so a bot that fits this also fits the real API.
MAX_IMAGE_BYTES: Final = 10_000_000


class Kind(Enum):
    """The endpoint a request was sent to."""

    GENERATE = "generate"
    TRANSPARENT = "generate-transparent"
    REMIX = "remix"
    REFRAME = "reframe"
    REPLACE_BACKGROUND = "replace-background"
    REMOVE_BACKGROUND = "remove-background"
    UPSCALE = "upscale"
    DESCRIBE = "describe"
    # Checked by bot.offline.validation_more:
    EDIT = "edit"
    INPAINT = "inpaint"
    LAYERIZE = "layerize-text"
    LEGACY_GENERATE = "legacy-generate"
    LEGACY_REMIX = "legacy-remix"
    LEGACY_EDIT = "legacy-edit"
    LEGACY_REFRAME = "legacy-reframe"


@dataclass(frozen=True, slots=True)
class Job:
    """A validated request: everything needed to draw and answer it."""

    kind: Kind
    prompt: str | None = None
    magic: MagicPromptOption | None = None
    num_images: int = 1
    seed: int | None = None
    resolution: ResolutionV3 | None = None
    speed: RenderingSpeed | None = None
    style_type: StyleTypeV3 | None = None
    preset: StylePresetV3 | None = None
    palette: tuple[render.RGB, ...] = ()
    image: bytes | None = None
    image_field: str = "image"
    image_weight: int = 50
    upscale_factor: int = 1
    # Extra inputs of the endpoints in bot.offline.validation_more, and reference images:
    images: tuple[bytes, ...] = ()
    mask: bytes | None = None
    transparent: bool = False
    model: str | None = None
    size: tuple[int, int] | None = None
    reference_colours: tuple[render.RGB, ...] = ()


# ---------------------------------------------------------------------------------------------
# pydantic errors as 400 texts


def _types(annotation: Any) -> Iterator[Any]:
    """Yield the types inside ``annotation`` (``int | None`` gives int and NoneType)."""
    args = get_args(annotation)
    if not args:
        yield annotation
    for arg in args:
        yield from _types(arg)


def _field(model: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """Return the field of ``model`` (or of a model nested in it) at error location ``loc``."""
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    for step in loc:
        if isinstance(step, int):
            continue  # an item of a sequence: same field
        if current is None or step not in current.model_fields:
            return None
        info = current.model_fields[step]
        current = next(
            (
                t
                for t in _types(info.annotation)
                if isinstance(t, type) and issubclass(t, BaseModel)
            ),
            None,
        )
    return info


def _bounds(info: FieldInfo | None) -> tuple[Any, Any]:
    """Return the ``(ge, le)`` bounds of a numeric field (None where unbounded)."""
    low = high = None
    for constraint in info.metadata if info else ():
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


def _label(prefix: str, loc: tuple[int | str, ...]) -> str:
    """Return ``prefix`` + ``loc`` as messages show fields: ``"color_palette.members[0].x"``."""
    text = prefix
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f"{'.' if text and not text.endswith('.') else ''}{step}"
    return text


_M = TypeVar("_M", bound=BaseModel)

#: What a field with a ``pattern`` looks like, for its error message.
_PATTERN_HINTS: Final = {"color_hex": "must be a colour like #AABBCC"}


def _reason(error: ErrorDetails, model: type[BaseModel]) -> str:
    """Return what is wrong with the field of ``error``, in the engine's words."""
    kind, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "enum":
        valid = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"{value!r} is not valid; expected one of {valid}"
    if kind.startswith(("int_", "float_", "greater_than", "less_than")):
        info = _field(model, error["loc"])
        low, high = _bounds(info)
        number = (
            "an integer" if int in set(_types(info.annotation if info else int)) else "a number"
        )
        return f"must be {number} from {low} to {high} (got {value!r})"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(error["loc"][-1]), f"must match {ctx.get('pattern')}")
        return f"{hint} (got {value!r})"
    if kind == "too_short":
        return "must be a non-empty list"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    return str(error["msg"])


_INTEGER_TEXT: Final = re.compile(r"\s*[+-]?\d+\s*")


def _not_integer(value: Any) -> bool:
    """Return whether ``value`` is neither an integer nor the decimal text of one.

    pydantic's lax mode also reads ``true``, ``5.0``, ``"5.0"`` and ``"1_0"`` as integers; the
    engine refuses those, so a bot that sends them is caught here rather than by the real API.
    """
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return _INTEGER_TEXT.fullmatch(value) is None
    return not isinstance(value, int)


def _checked(
    model: type[_M], fields: dict[str, Any], prefix: str = "", *, strict: bool = False
) -> _M:
    """Return ``model`` validated from ``fields``; keys the model does not know are ignored.

    Raises:
        BadRequest: the first field refused, e.g. ``"num_images: must be an integer ..."``.
    """
    known = {name: value for name, value in fields.items() if name in model.model_fields}
    for name, value in known.items():
        info = model.model_fields[name]
        if int in set(_types(info.annotation)) and _not_integer(value):
            low, high = _bounds(info)
            raise BadRequest(
                f"{prefix}{name}: must be an integer from {low} to {high} (got {value!r})"
            )
    try:
        return model.model_validate(known, strict=strict)
    except ValidationError as exc:
        error = exc.errors()[0]
        label = _label(prefix, error["loc"])
        raise BadRequest(f"{label}: {_reason(error, model)}") from exc


def _fields(form: Form, model: type[_M]) -> _M:
    """Return ``model`` validated from the fields of ``form`` (``color_palette`` left out)."""
    fields = form.values(model.model_fields, repeated=("style_codes",))
    fields.pop("color_palette", None)  # a union: checked branch by branch in _palette
    return _checked(model, fields, form.prefix)


# ---------------------------------------------------------------------------------------------
# What the models do not carry


def _image(form: Form, name: str) -> bytes:
    data = form.file(name)
    if not data:
        raise BadRequest(
            f"{name}: required image part is missing (JPEG, PNG or WebP, at most 10 MB)"
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise BadRequest(
            f"{name}: larger than the maximum size of 10 MB ({len(data)} bytes > {MAX_IMAGE_BYTES})"
        )
    return data


def _palette(form: Form) -> tuple[render.RGB, ...]:
    """Check ``color_palette`` (``ColorPaletteWithPresetNameOrMembers``); return its colours."""
    value = form.raw("color_palette")
    if value is None:
        return ()
    label = form.label("color_palette")
    shape = (
        'must be {"name": <preset>} or {"members": [{"color_hex": "#RRGGBB", '
        '"color_weight": 0.05..1.0}, ...]}'
    )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRequest(f"{label}: is not valid JSON; {shape}") from exc
    # The union's branches differ by their one key: pick the branch, so errors name its fields.
    if not isinstance(value, dict) or ("name" in value) == ("members" in value):
        raise BadRequest(f"{label}: {shape}")
    if "name" in value:
        preset = _checked(ColorPaletteWithPresetName, value, f"{label}.")
        return render.PALETTE_PRESETS[preset.name]
    members = value["members"]
    if isinstance(members, list):
        known = ColorPaletteMember.model_fields
        members = tuple(
            {k: v for k, v in m.items() if k in known} if isinstance(m, dict) else m
            for m in members
        )
    # Strict: a colour weight is a JSON number, not text or a boolean.
    palette = _checked(ColorPaletteWithMembers, {"members": members}, f"{label}.", strict=True)
    return tuple(
        (int(m.color_hex[1:3], 16), int(m.color_hex[3:5], 16), int(m.color_hex[5:7], 16))
        for m in palette.members
    )


_STYLE_CODE = re.compile(r"[0-9A-Fa-f]{8}")


def _style_codes(form: Form, codes: tuple[str, ...] | None, style: StyleTypeV3 | None) -> None:
    for code in codes or ():
        if not _STYLE_CODE.fullmatch(code):
            raise BadRequest(
                f"{form.label('style_codes')}: {code!r} is not an 8-character hexadecimal code"
            )
    if codes and style is not None:
        raise BadRequest("style_codes: cannot be used together with style_type; give one")


def _prompt(prompt: str) -> str:
    if not prompt.strip():
        raise BadRequest("prompt: must not be empty")
    return prompt


def _size(resolution: ResolutionV3 | None, aspect: AspectRatioV3 | None) -> ResolutionV3:
    """Return the output resolution of ``resolution`` / ``aspect_ratio`` (exclusive)."""
    if resolution is not None and aspect is not None:
        raise BadRequest("aspect_ratio and resolution cannot be used together; give one")
    return resolution or render.resolution_for_aspect(aspect)


# ---------------------------------------------------------------------------------------------
# Requests


def _picture(
    f: GenerateRequestV3 | RemixRequestV3 | ReframeRequestV3 | ReplaceBackgroundRequestV3,
    form: Form,
) -> dict[str, Any]:
    """Return the job fields the image-making endpoints share."""
    return {
        "preset": f.style_preset,
        "palette": _palette(form),
        "num_images": f.num_images or 1,
        "seed": f.seed,
        "speed": f.rendering_speed,
    }


def validate(kind: Kind, form: Form) -> Job:
    """Check a request body as the API does; return the job.

    Raises:
        BadRequest: the first problem found, naming the field and its valid values.
    """
    if kind is Kind.GENERATE:
        g = _fields(form, GenerateRequestV3)
        _style_codes(form, g.style_codes, g.style_type)
        return Job(
            kind,
            prompt=_prompt(g.prompt),
            magic=g.magic_prompt,
            resolution=_size(g.resolution, g.aspect_ratio),
            style_type=g.style_type,
            **_picture(g, form),
        )
    if kind is Kind.TRANSPARENT:
        t = _fields(form, GenerateTransparentRequestV3)
        if t.rendering_speed is RenderingSpeed.FLASH:
            raise BadRequest(
                "rendering_speed: FLASH is not supported for transparent-background generation;"
                " use TURBO, DEFAULT or QUALITY"
            )
        return Job(
            kind,
            prompt=_prompt(t.prompt),
            magic=t.magic_prompt,
            resolution=render.resolution_for_aspect(t.aspect_ratio),
            upscale_factor=int(t.upscale_factor.value[1:]) if t.upscale_factor else 1,
            num_images=t.num_images or 1,
            seed=t.seed,
            speed=t.rendering_speed,
        )
    if kind is Kind.REMIX:
        image = _image(form, "image")
        r = _fields(form, RemixRequestV3)
        _style_codes(form, r.style_codes, r.style_type)
        return Job(
            kind,
            prompt=_prompt(r.prompt),
            image=image,
            image_weight=50 if r.image_weight is None else r.image_weight,
            magic=r.magic_prompt,
            resolution=_size(r.resolution, r.aspect_ratio),
            style_type=r.style_type,
            **_picture(r, form),
        )
    if kind is Kind.REFRAME:
        image = _image(form, "image")
        f = _fields(form, ReframeRequestV3)
        _style_codes(form, f.style_codes, None)
        return Job(kind, image=image, resolution=f.resolution, **_picture(f, form))
    if kind is Kind.REPLACE_BACKGROUND:
        image = _image(form, "image")
        b = _fields(form, ReplaceBackgroundRequestV3)
        _style_codes(form, b.style_codes, None)
        return Job(
            kind, prompt=_prompt(b.prompt), image=image, magic=b.magic_prompt, **_picture(b, form)
        )
    if kind is Kind.REMOVE_BACKGROUND:
        return Job(kind, image=_image(form, "image"))
    if kind is Kind.UPSCALE:
        request = _upscale_request(form)
        image = _image(form, "image_file")
        u = _fields(request, UpscaleInitialImageRequest)
        return Job(
            kind,
            prompt=u.prompt or None,
            image=image,
            image_field="image_file",
            magic=u.magic_prompt_option,
            num_images=u.num_images or 1,
            seed=u.seed,
        )
    image = _image(form, "image_file")
    _fields(form, DescribeRequest)
    return Job(kind, image=image, image_field="image_file")


def _upscale_request(form: Form) -> Form:
    """Parse the ``image_request`` part of ``/upscale`` (``UpscaleInitialImageRequest`` JSON)."""
    value = form.raw("image_request")
    if value is None:
        raise BadRequest(
            "image_request: required field is missing (a JSON UpscaleInitialImageRequest, "
            'e.g. {"resemblance": 50})'
        )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRequest("image_request: is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequest("image_request: must be a JSON object (UpscaleInitialImageRequest)")
    return Form(values=value, prefix="image_request.")


_NUM_IMAGES: Final = _bounds(GenerateRequestV3.model_fields["num_images"])
#: Largest ``seed`` the API accepts (seeds run 0..MAX_SEED).
MAX_SEED: Final[int] = _bounds(GenerateRequestV3.model_fields["seed"])[1]
_INT: Final = TypeAdapter(int)


def images_hint(kind: Kind, form: Form) -> int:
    """Return how many images a request asks for, as the rate limit counts it (>= 1).

    Read before validation (a request is in flight from arrival), so anything unreadable
    counts as 1.
    """
    try:
        source = _upscale_request(form) if kind is Kind.UPSCALE else form
        number = _INT.validate_python(source.raw("num_images"))
    except (BadRequest, ValidationError):
        return 1
    low, high = _NUM_IMAGES
    return number if low <= number <= high else 1
