"""The offline engine: a local aiohttp server that speaks the Ideogram API (SPEC.md §1, §6, §7).

With no ``IDEOGRAM_API_KEY`` the bot points its Ideogram client at this server and runs end to
end: the same paths, multipart bodies, validation, status codes and response shapes as
``shared/ideogram-openapi.yaml``, with real PNGs drawn by :mod:`bot.offline.render` and served
from short-lived signed URLs, as Ideogram's are. A :class:`FaultPlan` injects the failures the
bot must survive (429 with ``Retry-After``, 500, 422 safety rejections, withheld images,
latency, hangs), and :attr:`OfflineIdeogram.requests` records every call for tests.

Endpoints (paths of the spec; bodies ``multipart/form-data``; ``generate`` also takes JSON,
as the bearer gateways send it):

=================================================  ==========================================
``POST /v1/ideogram-v3/generate``                  ``ImageGenerationResponseV3``
``POST /v1/ideogram-v3/generate-transparent``      ``ImageGenerationResponseV3`` (RGBA PNGs)
``POST /v1/ideogram-v3/remix``                     ``ImageGenerationResponseV3``
``POST /v1/ideogram-v3/reframe``                   ``ImageGenerationResponseV3``
``POST /v1/ideogram-v3/replace-background``        ``ImageGenerationResponseV3``
``POST /v1/remove-background``                     ``RemoveBackgroundResponse`` (RGBA PNG)
``POST /upscale``                                  ``GenerateImageResponse`` (2x image)
``POST /describe``                                 ``DescribeResponse``
``GET /images/{token}.png?exp=…&sig=…``            the PNG, until the URL expires (then 403)
=================================================  ==========================================

Errors are JSON ``{"error": "<reason>"}``: 400 invalid input (the reason names the field and
its valid values), 401 bad key (only when an ``api_key`` is configured), 422 safety, 429 rate
limited, 500 server error, 404 unknown path.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.utils
import hashlib
import hmac
import json
import logging
import math
import random
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Final, TypeVar

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from PIL import Image

from bot.ideogram.models import (
    AspectRatioV3,
    ColorPalettePresetName,
    DescribeModelVersion,
    MagicPromptOption,
    RenderingSpeed,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
    UpscaleFactor,
)
from bot.offline import render

__all__ = [
    "MAX_IMAGE_BYTES",
    "SAFETY_TRIGGER",
    "FaultPlan",
    "OfflineIdeogram",
    "RecordedRequest",
    "serve_forever",
]

log = logging.getLogger(__name__)

#: Largest accepted image part, in bytes. The spec says "max size 10MB"; the decimal reading is
#: the stricter one, so a bot that fits this also fits the real API.
MAX_IMAGE_BYTES: Final = 10_000_000
#: A prompt containing this word is always refused with 422, to trigger safety without a plan.
SAFETY_TRIGGER: Final = "unsafe-test"
_SAFETY_MESSAGE: Final = "Prompt failed the safety check."
#: Largest request body read at all (several image parts may ride in one request); above it
#: aiohttp answers 413 before the handler runs.
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_MAX_SEED: Final = 2147483647
_MAX_NUM_IMAGES: Final = 8
#: Bounds of the in-memory image store: the oldest images are dropped beyond either.
_MAX_STORED_IMAGES: Final = 512
_MAX_STORED_BYTES: Final = 512 * 1024 * 1024
#: How long close() lets handlers that are still running (rendering) finish.
_SHUTDOWN_TIMEOUT_S: Final = 2.0
#: Status recorded for a request whose client went away before it was answered (nginx's 499).
_CLIENT_CLOSED: Final = 499

_StrEnumT = TypeVar("_StrEnumT", bound=StrEnum)


# ---------------------------------------------------------------------------------------------
# Public data types


@dataclass(slots=True)
class RecordedRequest:
    """One API request the engine received (image downloads are not recorded).

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: URL path without the query, e.g. ``"/v1/ideogram-v3/generate"``.
        headers: request headers, keys lower-cased (repeated headers joined with ``", "``).
        body: the raw request body.
        content_type: the full ``Content-Type`` header, boundary included (``""`` if absent).
        status: the HTTP status answered; 0 while the request is still being processed, 499
            when the client went away first.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    content_type: str
    status: int = 0


@dataclass
class FaultPlan:
    """Failures to inject, all off by default. Mutable: change it between (or during) requests.

    Counters (``*_next``) are consumed one per API request, in this order: ``hang_next``,
    ``rate_limit_next`` / ``rate_limit_ratio``, ``server_error_next`` / ``server_error_ratio``;
    validation (400) comes after them, and ``safety_reject_next`` is consumed only by requests
    that passed validation. Ratios draw from ``random.Random(seed)``, so a plan with the same
    seed fails the same requests; assigning ``seed`` restarts that sequence.

    Attributes:
        rate_limit_next: answer the next N requests with 429 and a ``Retry-After`` header.
        retry_after_s: ``Retry-After`` value, seconds (sent as ``"1"`` or ``"0.5"``).
        rate_limit_ratio: probability 0..1 of a 429 on any request.
        server_error_next: answer the next N requests with 500.
        server_error_ratio: probability 0..1 of a 500 on any request.
        safety_reject_next: answer the next N valid requests with 422
            ``{"error": "Prompt failed the safety check."}``. (A prompt containing the word
            ``"unsafe-test"`` is always refused with that 422, whatever the plan.)
        withhold_indices: 0-based indices of images answered with ``is_image_safe: false`` and
            ``url: null`` (withheld by the safety filter; the real API still bills them).
        latency_s: seconds to sleep before answering any request.
        latency_jitter_s: plus ``uniform(0, latency_jitter_s)`` seconds.
        hang_next: the next N requests never answer: they wait until the client gives up or
            the engine closes (then 503).
        seed: seed of the random draws above.
    """

    rate_limit_next: int = 0
    retry_after_s: float = 1.0
    rate_limit_ratio: float = 0.0
    server_error_next: int = 0
    server_error_ratio: float = 0.0
    safety_reject_next: int = 0
    withhold_indices: set[int] = field(default_factory=set)
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    hang_next: int = 0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # Reseed whenever the seed is (re)assigned, including by __init__.
        if name == "seed":
            object.__setattr__(self, "_rng", random.Random(value))

    def take(self, counter: str) -> bool:
        """Consume one unit of the ``*_next`` counter named ``counter``; return if there was one."""
        left: int = getattr(self, counter)
        if left > 0:
            setattr(self, counter, left - 1)
            return True
        return False

    def chance(self, ratio: float) -> bool:
        """Return True with probability ``ratio`` (no draw at all when ``ratio <= 0``)."""
        return ratio > 0 and self._rng.random() < ratio

    def latency(self) -> float:
        """Return the delay, in seconds, to add before answering the next request."""
        jitter = self._rng.uniform(0, self.latency_jitter_s) if self.latency_jitter_s > 0 else 0
        return max(0.0, self.latency_s + jitter)


# ---------------------------------------------------------------------------------------------
# Request bodies


class _BadRequest(Exception):
    """Invalid input; ``str()`` is the 400 answer's ``error`` text."""


@dataclass(frozen=True, slots=True)
class _Part:
    data: bytes
    filename: str | None


class _Form:
    """The fields of a request body by name: multipart parts, or the members of a JSON object.

    ``prefix`` names where the fields came from in error messages (``"image_request."`` for
    the JSON part of ``/upscale``).
    """

    def __init__(
        self,
        parts: Mapping[str, list[_Part]] | None = None,
        values: Mapping[str, Any] | None = None,
        prefix: str = "",
    ) -> None:
        self._parts = dict(parts or {})
        self._values = dict(values or {})
        self.prefix = prefix

    def label(self, name: str) -> str:
        return self.prefix + name

    def raw(self, name: str) -> Any:
        """Return the field's first value (``str`` for multipart, any JSON value), or None."""
        values = self.raw_all(name)
        return values[0] if values else None

    def raw_all(self, name: str) -> list[Any]:
        if name in self._parts:
            out: list[Any] = []
            for part in self._parts[name]:
                try:
                    out.append(part.data.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise _BadRequest(f"{self.label(name)}: is not valid UTF-8 text") from exc
            return out
        value = self._values.get(name)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    def file(self, name: str) -> bytes | None:
        """Return the bytes of the first part called ``name``, or None (JSON bodies have none)."""
        parts = self._parts.get(name)
        return parts[0].data if parts else None


def _header_param(value: str, param: str, header: str = "content-type") -> str | None:
    """Return parameter ``param`` of a MIME header value (quoting and RFC 2231 handled)."""
    message = email.message.Message()
    message[header] = value
    found = message.get_param(param, header=header)
    if found is None:
        return None
    return email.utils.collapse_rfc2231_value(found)


async def _parse_multipart(body: bytes, content_type: str) -> _Form:
    """Split a ``multipart/form-data`` body (RFC 7578) into parts by field name.

    The body was read whole first (it is recorded for tests), which consumes the request
    stream; so aiohttp's own :class:`~aiohttp.MultipartReader` reads it again from a stream
    fed with the recorded bytes.

    Raises:
        _BadRequest: no boundary, or a body aiohttp cannot parse as multipart.
    """
    if not _header_param(content_type, "boundary"):
        raise _BadRequest("Content-Type multipart/form-data has no boundary parameter")
    loop = asyncio.get_running_loop()
    # A limit above the body size: the whole body is fed at once, with no reader to pause.
    stream = StreamReader(BaseProtocol(loop), max(2**16, len(body)), loop=loop)
    stream.feed_data(body)
    stream.feed_eof()
    reader = MultipartReader({hdrs.CONTENT_TYPE: content_type}, stream)
    parts: dict[str, list[_Part]] = {}
    try:
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue  # RFC 7578 requires a name; a nameless part cannot be any field
            data = await part.read(decode=False)
            parts.setdefault(part.name, []).append(_Part(data=bytes(data), filename=part.filename))
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise _BadRequest("malformed multipart body") from exc
    return _Form(parts=parts)


async def _parse_body(
    content_type: str, full_content_type: str, body: bytes, *, json_ok: bool
) -> _Form:
    """Return the fields of a request body, per its ``Content-Type``.

    Raises:
        _BadRequest: unsupported content type (the spec's endpoints take multipart only,
            ``generate`` also JSON), or a body that does not parse.
    """
    if content_type == "multipart/form-data":
        return await _parse_multipart(body, full_content_type)
    if json_ok and content_type == "application/json":
        try:
            values = json.loads(body)
        except ValueError as exc:
            raise _BadRequest("request body is not valid JSON") from exc
        if not isinstance(values, dict):
            raise _BadRequest("request body must be a JSON object")
        return _Form(values=values)
    wanted = "multipart/form-data or application/json" if json_ok else "multipart/form-data"
    got = content_type or "none"
    raise _BadRequest(f"Content-Type must be {wanted} (got {got})")


# ---------------------------------------------------------------------------------------------
# Validation (spec: requestBody schemas of each path, components/schemas)


def _int_field(form: _Form, name: str, low: int, high: int) -> int | None:
    value = form.raw(name)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise _BadRequest(
            f"{form.label(name)}: must be an integer from {low} to {high} (got {value!r})"
        )
    return number


def _enum_field(form: _Form, name: str, enum: type[_StrEnumT]) -> _StrEnumT | None:
    value = form.raw(name)
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return enum(value)
    valid = ", ".join(member.value for member in enum)
    raise _BadRequest(f"{form.label(name)}: {value!r} is not valid; expected one of {valid}")


def _text_field(form: _Form, name: str, *, required: bool) -> str | None:
    value = form.raw(name)
    if value is None:
        if required:
            raise _BadRequest(f"{form.label(name)}: required field is missing")
        return None
    if not isinstance(value, str):
        raise _BadRequest(f"{form.label(name)}: must be a string")
    if required and not value.strip():
        raise _BadRequest(f"{form.label(name)}: must not be empty")
    return value


def _image_field(form: _Form, name: str) -> bytes:
    data = form.file(name)
    if not data:
        raise _BadRequest(
            f"{name}: required image part is missing (JPEG, PNG or WebP, at most 10 MB)"
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise _BadRequest(
            f"{name}: larger than the maximum size of 10 MB ({len(data)} bytes > {MAX_IMAGE_BYTES})"
        )
    return data


_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


def _palette_field(form: _Form) -> tuple[render.RGB, ...]:
    """Validate ``color_palette`` (``ColorPaletteWithPresetNameOrMembers``); return its colours."""
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
            raise _BadRequest(f"{label}: is not valid JSON; {shape}") from exc
    if not isinstance(value, dict) or ("name" in value) == ("members" in value):
        raise _BadRequest(f"{label}: {shape}")
    if "name" in value:
        presets = ", ".join(p.value for p in ColorPalettePresetName)
        try:
            preset = ColorPalettePresetName(value["name"])
        except (ValueError, TypeError) as exc:
            raise _BadRequest(
                f"{label}.name: {value['name']!r} is not valid; expected one of {presets}"
            ) from exc
        return render.PALETTE_PRESETS[preset]
    members = value["members"]
    if not isinstance(members, list) or not members:
        raise _BadRequest(f"{label}.members: must be a non-empty list; {shape}")
    colours: list[render.RGB] = []
    for i, member in enumerate(members):
        where = f"{label}.members[{i}]"
        if not isinstance(member, dict):
            raise _BadRequest(f"{where}: {shape}")
        hex_ = member.get("color_hex")
        if not isinstance(hex_, str) or not _HEX_COLOUR.fullmatch(hex_):
            raise _BadRequest(f"{where}.color_hex: must be a colour like #AABBCC (got {hex_!r})")
        weight = member.get("color_weight")
        if weight is not None and (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not 0.05 <= weight <= 1.0
        ):
            raise _BadRequest(
                f"{where}.color_weight: must be a number from 0.05 to 1.0 (got {weight!r})"
            )
        colours.append((int(hex_[1:3], 16), int(hex_[3:5], 16), int(hex_[5:7], 16)))
    return tuple(colours)


def _style_codes_field(form: _Form, style_type: StyleTypeV3 | None) -> tuple[str, ...]:
    codes = form.raw_all("style_codes")
    for code in codes:
        if not isinstance(code, str) or not re.fullmatch(r"[0-9A-Fa-f]{8}", code):
            raise _BadRequest(
                f"{form.label('style_codes')}: {code!r} is not an 8-character hexadecimal code"
            )
    if codes and style_type is not None:
        raise _BadRequest("style_codes: cannot be used together with style_type; give one")
    return tuple(codes)


def _size_fields(form: _Form) -> ResolutionV3:
    """Validate ``resolution`` / ``aspect_ratio`` (exclusive); return the output resolution."""
    resolution = _enum_field(form, "resolution", ResolutionV3)
    aspect = _enum_field(form, "aspect_ratio", AspectRatioV3)
    if resolution is not None and aspect is not None:
        raise _BadRequest("aspect_ratio and resolution cannot be used together; give one")
    return resolution or render.resolution_for_aspect(aspect)


class _Kind(Enum):
    GENERATE = "generate"
    TRANSPARENT = "generate-transparent"
    REMIX = "remix"
    REFRAME = "reframe"
    REPLACE_BACKGROUND = "replace-background"
    REMOVE_BACKGROUND = "remove-background"
    UPSCALE = "upscale"
    DESCRIBE = "describe"


_GENERATIVE = (
    _Kind.GENERATE,
    _Kind.TRANSPARENT,
    _Kind.REMIX,
    _Kind.REFRAME,
    _Kind.REPLACE_BACKGROUND,
)


@dataclass(frozen=True, slots=True)
class _Job:
    """A validated request: everything needed to draw and answer it."""

    kind: _Kind
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


def _common(form: _Form) -> dict[str, Any]:
    return {
        "num_images": _int_field(form, "num_images", 1, _MAX_NUM_IMAGES) or 1,
        "seed": _int_field(form, "seed", 0, _MAX_SEED),
        "speed": _enum_field(form, "rendering_speed", RenderingSpeed),
    }


def _validate(kind: _Kind, form: _Form) -> _Job:
    """Check a request body as the API does; return the job.

    Raises:
        _BadRequest: the first problem found, naming the field and its valid values.
    """
    if kind is _Kind.GENERATE:
        prompt = _text_field(form, "prompt", required=True)
        style_type = _enum_field(form, "style_type", StyleTypeV3)
        _style_codes_field(form, style_type)
        _text_field(form, "negative_prompt", required=False)
        return _Job(
            kind,
            prompt=prompt,
            magic=_enum_field(form, "magic_prompt", MagicPromptOption),
            resolution=_size_fields(form),
            style_type=style_type,
            preset=_enum_field(form, "style_preset", StylePresetV3),
            palette=_palette_field(form),
            **_common(form),
        )
    if kind is _Kind.TRANSPARENT:
        prompt = _text_field(form, "prompt", required=True)
        common = _common(form)
        if common["speed"] is RenderingSpeed.FLASH:
            raise _BadRequest(
                "rendering_speed: FLASH is not supported for transparent-background generation;"
                " use TURBO, DEFAULT or QUALITY"
            )
        factor = _enum_field(form, "upscale_factor", UpscaleFactor) or UpscaleFactor.X1
        _text_field(form, "negative_prompt", required=False)
        aspect = _enum_field(form, "aspect_ratio", AspectRatioV3)
        return _Job(
            kind,
            prompt=prompt,
            magic=_enum_field(form, "magic_prompt", MagicPromptOption),
            resolution=render.resolution_for_aspect(aspect),
            upscale_factor=int(factor.value[1:]),
            **common,
        )
    if kind is _Kind.REMIX:
        image = _image_field(form, "image")
        prompt = _text_field(form, "prompt", required=True)
        style_type = _enum_field(form, "style_type", StyleTypeV3)
        _style_codes_field(form, style_type)
        _text_field(form, "negative_prompt", required=False)
        weight = _int_field(form, "image_weight", 1, 100)
        return _Job(
            kind,
            prompt=prompt,
            image=image,
            image_weight=50 if weight is None else weight,
            magic=_enum_field(form, "magic_prompt", MagicPromptOption),
            resolution=_size_fields(form),
            style_type=style_type,
            preset=_enum_field(form, "style_preset", StylePresetV3),
            palette=_palette_field(form),
            **_common(form),
        )
    if kind is _Kind.REFRAME:
        image = _image_field(form, "image")
        resolution = _enum_field(form, "resolution", ResolutionV3)
        if resolution is None:
            raise _BadRequest("resolution: required field is missing (a ResolutionV3 value)")
        _style_codes_field(form, None)
        return _Job(
            kind,
            image=image,
            resolution=resolution,
            preset=_enum_field(form, "style_preset", StylePresetV3),
            palette=_palette_field(form),
            **_common(form),
        )
    if kind is _Kind.REPLACE_BACKGROUND:
        image = _image_field(form, "image")
        prompt = _text_field(form, "prompt", required=True)
        _style_codes_field(form, None)
        return _Job(
            kind,
            prompt=prompt,
            image=image,
            magic=_enum_field(form, "magic_prompt", MagicPromptOption),
            preset=_enum_field(form, "style_preset", StylePresetV3),
            palette=_palette_field(form),
            **_common(form),
        )
    if kind is _Kind.REMOVE_BACKGROUND:
        return _Job(kind, image=_image_field(form, "image"))
    if kind is _Kind.UPSCALE:
        request = _upscale_request(form)
        image = _image_field(form, "image_file")
        prompt = _text_field(request, "prompt", required=False)
        _int_field(request, "resemblance", 1, 100)
        _int_field(request, "detail", 1, 100)
        return _Job(
            kind,
            prompt=prompt or None,
            image=image,
            image_field="image_file",
            magic=_enum_field(request, "magic_prompt_option", MagicPromptOption),
            num_images=_int_field(request, "num_images", 1, _MAX_NUM_IMAGES) or 1,
            seed=_int_field(request, "seed", 0, _MAX_SEED),
        )
    image = _image_field(form, "image_file")
    _enum_field(form, "describe_model_version", DescribeModelVersion)
    return _Job(kind, image=image, image_field="image_file")


def _upscale_request(form: _Form) -> _Form:
    """Parse the ``image_request`` part of ``/upscale`` (``UpscaleInitialImageRequest`` JSON)."""
    value = form.raw("image_request")
    if value is None:
        raise _BadRequest(
            "image_request: required field is missing (a JSON UpscaleInitialImageRequest, "
            'e.g. {"resemblance": 50})'
        )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _BadRequest("image_request: is not valid JSON") from exc
    if not isinstance(value, dict):
        raise _BadRequest("image_request: must be a JSON object (UpscaleInitialImageRequest)")
    return _Form(values=value, prefix="image_request.")


def _images_hint(kind: _Kind, form: _Form) -> int:
    """Return how many images a request asks for, as the rate limit counts it (>= 1).

    Read before validation (a request is in flight from arrival), so anything unreadable
    counts as 1.
    """
    try:
        source = _upscale_request(form) if kind is _Kind.UPSCALE else form
        return _int_field(source, "num_images", 1, _MAX_NUM_IMAGES) or 1
    except _BadRequest:
        return 1


# ---------------------------------------------------------------------------------------------
# Prompts


_MAGIC_SUFFIXES: Final = (
    ", highly detailed, soft natural light",
    ", cinematic composition, dramatic lighting, rich colour",
    ", crisp focus, vibrant palette, studio quality",
    ", atmospheric depth, golden hour glow, fine texture",
)
_AUTO_STYLES: Final = (
    StyleTypeV3.GENERAL,
    StyleTypeV3.REALISTIC,
    StyleTypeV3.DESIGN,
    StyleTypeV3.FICTION,
)
_SAFETY_RE: Final = re.compile(rf"(?<![\w-]){re.escape(SAFETY_TRIGGER)}(?![\w-])", re.IGNORECASE)


def _stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % modulo


def _final_prompt(prompt: str, magic: MagicPromptOption | None) -> str:
    """Return the prompt the "model" used: a deterministic rewrite when MagicPrompt applies.

    ``ON`` always rewrites; ``AUTO`` (also the default) rewrites short prompts (< 6 words);
    ``OFF`` never does.
    """
    short = len(prompt.split()) < 6
    if magic is MagicPromptOption.ON or (magic in (None, MagicPromptOption.AUTO) and short):
        return prompt.rstrip(" ,.") + _MAGIC_SUFFIXES[_stable_index(prompt, len(_MAGIC_SUFFIXES))]
    return prompt


def _resolved_style(style: StyleTypeV3 | None, prompt: str, seed: int) -> StyleTypeV3:
    """Return the style type reported: AUTO is resolved to a concrete type, as the API does."""
    if style is None:
        return StyleTypeV3.GENERAL
    if style is StyleTypeV3.AUTO:
        return _AUTO_STYLES[_stable_index(f"{prompt}|{seed}", len(_AUTO_STYLES))]
    return style


# ---------------------------------------------------------------------------------------------
# Responses


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json" (no charset parameter), like the API answers.
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


def _format_seconds(seconds: float) -> str:
    """Return ``seconds`` for ``Retry-After``: ``"2"`` for whole seconds, else ``"0.5"``."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass(slots=True)
class _Stored:
    png: bytes
    expires_at: float  # time.time() seconds


@dataclass(frozen=True, slots=True)
class _Rendered:
    png: bytes
    size: tuple[int, int]


def _reported_prompt(job: _Job, source: Image.Image | None) -> str:
    """Return the ``prompt`` reported (and drawn) for every image of ``job``."""
    if job.kind is _Kind.REMOVE_BACKGROUND:
        return ""
    if job.prompt:
        # Upscale's prompt only guides the upscaler; MagicPrompt rewrites the others.
        return job.prompt if job.kind is _Kind.UPSCALE else _final_prompt(job.prompt, job.magic)
    if source is not None:
        # Reframe and prompt-less upscale: the API reports a caption of the image.
        return render.describe(source)[1]
    return ""


def _image_object(
    job: _Job,
    seed: int,
    prompt: str,
    rendered: _Rendered | None,
    url: str | None,
    source: Image.Image | None,
) -> dict[str, Any]:
    """Return one ``ImageGenerationObjectV3`` (``ImageObject`` for /upscale).

    ``rendered`` is None for a withheld image: ``is_image_safe`` false, ``url`` null.
    """
    style = _resolved_style(job.style_type, job.prompt or "", seed)
    obj: dict[str, Any] = {
        "url": url,
        "prompt": prompt,
        "resolution": job.resolution.value if job.resolution else "",
        "is_image_safe": rendered is not None,
        "seed": seed,
        "style_type": style.value,
    }
    if job.kind is _Kind.UPSCALE:
        assert source is not None
        size = rendered.size if rendered else render.cap_size((source.width * 2, source.height * 2))
        # ImageObject.resolution is "the resolution of the final image".
        obj["resolution"] = obj["upscaled_resolution"] = _size_text(size)
    elif job.kind is _Kind.REPLACE_BACKGROUND:
        assert source is not None
        obj["resolution"] = render.resolution_for_size(*source.size).value
    elif job.kind is _Kind.TRANSPARENT and job.upscale_factor > 1:
        # The selected resolution is reported; the upscaled one rides in its own field.
        assert job.resolution is not None
        w, h = job.resolution.size
        factor = job.upscale_factor
        obj["upscaled_resolution"] = _size_text(render.cap_size((w * factor, h * factor)))
    return obj


# ---------------------------------------------------------------------------------------------
# The engine


class OfflineIdeogram:
    """A local stand-in for the Ideogram API, served over real HTTP by aiohttp.

    Usage::

        async with OfflineIdeogram() as engine:
            client = IdeogramClient(base_url=engine.base_url, ...)

    Args:
        url_ttl_s: lifetime of image URLs, seconds; after it ``GET`` answers 403, like an
            expired signed URL.
        api_key: when set, API requests must carry ``Api-Key: <key>`` or
            ``Authorization: Bearer <key>``, else 401 ``{"error": ...}``. ``None`` accepts any.
        seed_salt: mixed into every drawing, so engines with different salts draw different
            pictures for the same prompt and seed (same salt: identical bytes).
        draft_scale: generated images are drawn at 1/``draft_scale`` of the requested size
            (the answer still names the requested resolution); for load tests only.

    Attributes:
        faults: the :class:`FaultPlan` in force; mutate it or assign a new one.
        requests: every API request received, in arrival order (image downloads excluded).
        in_flight_images: images of the requests being processed now (a request for 4 images
            counts 4, one without ``num_images`` counts 1), from arrival until answered,
            latency and fault paths included.
        peak_in_flight_images: the maximum ``in_flight_images`` has reached.
    """

    def __init__(
        self,
        *,
        url_ttl_s: float = 3600.0,
        api_key: str | None = None,
        seed_salt: str = "",
        draft_scale: int = 1,
    ) -> None:
        self.faults = FaultPlan()
        # Load tests draw generated images at 1/draft_scale of their size: the HTTP shapes
        # stay the same, the CPU cost of drawing thousands of images does not swamp the bot's.
        self._draft_scale = max(1, draft_scale)
        self.requests: list[RecordedRequest] = []
        self.in_flight_images = 0
        self.peak_in_flight_images = 0
        self._url_ttl_s = url_ttl_s
        self._api_key = api_key
        self._seed_salt = seed_salt
        self._sign_key = secrets.token_bytes(32)
        self._seed_rng = random.Random()
        self._images: OrderedDict[str, _Stored] = OrderedDict()
        self._stored_bytes = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._app = self._build_app()

    # -- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """Return the aiohttp application, to mount or run elsewhere (``start()`` not needed).

        Shutting that application down ends hanging requests, as :meth:`close` does.
        """
        return self._app

    @property
    def base_url(self) -> str:
        """The root URL the engine listens on, e.g. ``"http://127.0.0.1:54321"`` (no slash).

        Raises:
            RuntimeError: the engine has not been started.
        """
        if self._base_url is None:
            raise RuntimeError("OfflineIdeogram is not started; call start() first")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host``:``port`` (0 = a free port); return :attr:`base_url`.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("OfflineIdeogram is already started")
        self._closing = asyncio.Event()
        # handler_cancellation: a client that gives up (timeout) cancels its handler, so a
        # hanging request stops counting as in flight.
        runner = web.AppRunner(
            self._app,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        # A wildcard bind is reachable on loopback; URLs must name a connectable address.
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
        url_host = wildcard.get(host, bound_host)
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._base_url = f"http://{url_host}:{bound_port}"
        log.debug("offline Ideogram engine started at %s", self._base_url)
        return self._base_url

    async def close(self) -> None:
        """Stop listening and end hanging requests (they answer 503). Safe to call twice."""
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._base_url = None

    async def __aenter__(self) -> OfflineIdeogram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        routes: dict[str, _Kind] = {
            "/v1/ideogram-v3/generate": _Kind.GENERATE,
            "/v1/ideogram-v3/generate-transparent": _Kind.TRANSPARENT,
            "/v1/ideogram-v3/remix": _Kind.REMIX,
            "/v1/ideogram-v3/reframe": _Kind.REFRAME,
            "/v1/ideogram-v3/replace-background": _Kind.REPLACE_BACKGROUND,
            "/v1/remove-background": _Kind.REMOVE_BACKGROUND,
            "/upscale": _Kind.UPSCALE,
            "/describe": _Kind.DESCRIBE,
        }
        for path, kind in routes.items():
            app.router.add_post(path, self._endpoint(kind))
        app.router.add_get("/images/{name}", self._serve_image)
        # Anything else is recorded and answered 404 in JSON, so a client calling a wrong path
        # shows up in `requests` instead of vanishing into aiohttp's HTML 404.
        app.router.add_route("*", "/{tail:.*}", self._unknown)

        async def end_hangs(_: web.Application) -> None:
            self._closing.set()

        app.on_shutdown.append(end_hangs)
        return app

    # -- request plumbing -------------------------------------------------------------------

    def _endpoint(self, kind: _Kind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._recorded(request, lambda body: self._answer(request, kind, body))

        return handler

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        async def answer(_: bytes) -> web.Response:
            return _error(404, f"No such endpoint: {request.method} {request.path}")

        return await self._recorded(request, answer)

    async def _recorded(
        self, request: web.Request, answer: Callable[[bytes], Awaitable[web.Response]]
    ) -> web.StreamResponse:
        """Record ``request``, answer it with ``answer(body)``, note the status answered."""
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]}, {value}" if k in headers else value
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=headers,
            body=b"",
            content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
        )
        self.requests.append(record)
        started = time.perf_counter()
        try:
            try:
                record.body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                response = _error(
                    413, f"Request body is larger than the limit of {_MAX_BODY_BYTES} bytes."
                )
            else:
                response = await answer(record.body)
        except asyncio.CancelledError:
            record.status = _CLIENT_CLOSED
            raise
        record.status = response.status
        log.debug(
            "%s %s -> %d in %.0f ms",
            request.method,
            request.path,
            response.status,
            1000 * (time.perf_counter() - started),
        )
        return response

    def _authorized(self, request: web.Request) -> bool:
        if self._api_key is None:
            return True
        expected = self._api_key.encode()
        key = request.headers.get("Api-Key")
        if key is not None and hmac.compare_digest(key.encode(), expected):
            return True
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the engine is closing."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _answer(self, request: web.Request, kind: _Kind, body: bytes) -> web.Response:
        """Answer one API request: auth, faults, validation, safety, then the drawing."""
        if not self._authorized(request):
            return _error(401, "Not authorized: missing or invalid Api-Key header.")
        parse_error: _BadRequest | None = None
        try:
            form = await _parse_body(
                request.content_type,
                request.headers.get(hdrs.CONTENT_TYPE, ""),
                body,
                json_ok=kind is _Kind.GENERATE,
            )
        except _BadRequest as exc:
            form, parse_error = _Form(), exc
        weight = _images_hint(kind, form)
        self.in_flight_images += weight
        self.peak_in_flight_images = max(self.peak_in_flight_images, self.in_flight_images)
        try:
            plan = self.faults
            await self._pause(plan.latency())
            if plan.take("hang_next"):
                await self._closing.wait()
                return _error(503, "The offline Ideogram engine is shutting down.")
            if plan.take("rate_limit_next") or plan.chance(plan.rate_limit_ratio):
                retry_after = _format_seconds(plan.retry_after_s)
                return _error(429, "Too many requests.", {hdrs.RETRY_AFTER: retry_after})
            if plan.take("server_error_next") or plan.chance(plan.server_error_ratio):
                return _error(500, "Internal server error (injected by the offline engine).")
            if parse_error is not None:
                raise parse_error
            job = _validate(kind, form)
            source = await self._decode(job)
            if plan.take("safety_reject_next") or (job.prompt and _SAFETY_RE.search(job.prompt)):
                return _error(422, _SAFETY_MESSAGE)
            return await self._run(request, job, source)
        except _BadRequest as exc:
            return _error(400, str(exc))
        finally:
            self.in_flight_images -= weight

    async def _decode(self, job: _Job) -> Image.Image | None:
        if job.image is None:
            return None
        try:
            return await asyncio.to_thread(render.decode_image, job.image)
        except render.ImageDecodeError as exc:
            raise _BadRequest(
                f"{job.image_field}: {exc} (accepted: JPEG, PNG and WebP, at most 10 MB)"
            ) from exc

    # -- drawing and answering --------------------------------------------------------------

    async def _run(
        self, request: web.Request, job: _Job, source: Image.Image | None
    ) -> web.Response:
        created = datetime.now(UTC).isoformat()
        if job.kind is _Kind.DESCRIBE:
            assert source is not None
            texts = await asyncio.to_thread(render.describe, source)
            return _json(200, {"descriptions": [{"text": text} for text in texts]})

        # Image k gets seed base+k, so asking for that seed alone reproduces image k.
        base_seed = self._seed_rng.randint(0, _MAX_SEED) if job.seed is None else job.seed
        seeds = [(base_seed + i) % (_MAX_SEED + 1) for i in range(job.num_images)]
        prompt = await asyncio.to_thread(_reported_prompt, job, source)
        withheld = set(self.faults.withhold_indices)
        # Withheld images are not drawn (their url is null), but still answered and counted.
        drawn = await asyncio.gather(
            *(
                asyncio.to_thread(self._draw, job, source, seed, prompt)
                for i, seed in enumerate(seeds)
                if i not in withheld
            )
        )
        results = iter(drawn)
        origin = str(request.url.origin())
        data: list[dict[str, Any]] = []
        for i, seed in enumerate(seeds):
            rendered = None if i in withheld else next(results)
            url = None if rendered is None else self._publish(origin, rendered.png)
            if job.kind is _Kind.REMOVE_BACKGROUND:
                data.append({"url": url, "is_image_safe": rendered is not None})
                continue
            data.append(_image_object(job, seed, prompt, rendered, url, source))
        return _json(200, {"created": created, "data": data})

    def _draw(self, job: _Job, source: Image.Image | None, seed: int, prompt: str) -> _Rendered:
        """Draw one image of ``job`` with ``seed`` (runs in a worker thread)."""
        style = _resolved_style(job.style_type, job.prompt or "", seed)
        options = render.DrawOptions(
            speed=(job.speed or RenderingSpeed.DEFAULT).value,
            style=style.value,
            preset=job.preset.value if job.preset else None,
            palette=job.palette,
            salt=self._seed_salt,
        )
        size = job.resolution.size if job.resolution else (1024, 1024)
        size = (max(1, size[0] // self._draft_scale), max(1, size[1] // self._draft_scale))
        image: Image.Image
        if job.kind is _Kind.GENERATE:
            image = render.render_generated(prompt, seed, size, options)
        elif job.kind is _Kind.TRANSPARENT:
            image = render.render_generated(prompt, seed, size, options, transparent=True)
            image = render.upscale_by(image, job.upscale_factor)
        else:
            assert source is not None
            if job.kind is _Kind.REMIX:
                image = render.render_remix(source, prompt, seed, size, job.image_weight, options)
            elif job.kind is _Kind.REFRAME:
                image = render.render_reframe(source, seed, size, options)
            elif job.kind is _Kind.REPLACE_BACKGROUND:
                size = render.resolution_for_size(*source.size).size
                image = render.render_replace_background(source, prompt, seed, size, options)
            elif job.kind is _Kind.REMOVE_BACKGROUND:
                image = render.render_remove_background(source)
            else:
                image = render.render_upscale(source, seed)
        return _Rendered(png=render.encode_png(image), size=image.size)

    # -- image URLs -------------------------------------------------------------------------

    def _signature(self, token: str, exp: int) -> str:
        return hmac.new(self._sign_key, f"{token}.{exp}".encode(), hashlib.sha256).hexdigest()

    def _publish(self, origin: str, png: bytes) -> str:
        """Store ``png``; return its signed, expiring URL (``…/images/<token>.png?exp=&sig=``)."""
        now = time.time()
        token = secrets.token_urlsafe(16)
        expires_at = now + self._url_ttl_s
        exp = math.ceil(expires_at)
        self._images[token] = _Stored(png=png, expires_at=expires_at)
        self._stored_bytes += len(png)
        # Drop the oldest images beyond the bounds (and any that expired on the way).
        while self._images and (
            len(self._images) > _MAX_STORED_IMAGES
            or self._stored_bytes > _MAX_STORED_BYTES
            or next(iter(self._images.values())).expires_at < now
        ):
            _, dropped = self._images.popitem(last=False)
            self._stored_bytes -= len(dropped.png)
        return f"{origin}/images/{token}.png?exp={exp}&sig={self._signature(token, exp)}"

    async def _serve_image(self, request: web.Request) -> web.StreamResponse:
        """``GET /images/{token}.png``: 200 image/png; 403 bad signature or expired; 404 gone."""
        name = request.match_info["name"]
        token = name.removesuffix(".png")
        try:
            exp = int(request.query.get("exp", ""))
        except ValueError:
            return _error(403, "Missing or invalid signature.")
        signature = request.query.get("sig", "")
        expected = self._signature(token, exp).encode()
        if name == token or not hmac.compare_digest(signature.encode(), expected):
            return _error(403, "Missing or invalid signature.")
        stored = self._images.get(token)
        now = time.time()
        if now > exp or (stored is not None and now > stored.expires_at):
            if stored is not None:
                del self._images[token]
                self._stored_bytes -= len(stored.png)
            return _error(403, "This image URL has expired.")
        if stored is None:
            return _error(404, "This image is no longer available.")
        remaining = max(0, int(stored.expires_at - now))
        return web.Response(
            body=stored.png,
            content_type="image/png",
            headers={hdrs.CACHE_CONTROL: f"private, max-age={remaining}"},
        )


async def serve_forever(host: str, port: int) -> None:
    """Run the offline engine on ``host``:``port`` until cancelled (``fake-ideogram``, SPEC §7).

    Logs ``Offline Ideogram engine listening on http://host:port`` once listening (with the
    real port when ``port`` is 0). No API key is required.

    Raises:
        OSError: the address cannot be bound.
    """
    engine = OfflineIdeogram()
    url = await engine.start(host, port)
    try:
        actual_port = int(url.rsplit(":", 1)[1])
        shown = f"[{host}]" if ":" in host else host
        log.info("Offline Ideogram engine listening on http://%s:%d", shown, actual_port)
        await asyncio.Event().wait()
    finally:
        await engine.close()
