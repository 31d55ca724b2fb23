"""The Ideogram endpoints a job can call, defined once: request model, client call, price.

Every job stores one :data:`JobRequest` (:mod:`bot.commands.stored`: the endpoint's name and
its request fields under the names of the API spec, ``tests/ideogram/ideogram-openapi.yaml``,
re-exported here). The runner executes it through :data:`ENDPOINTS` (no switch on command
names anywhere else), and pricing, captions and the ledger read the same entry.

Adding an endpoint: its request model in :mod:`bot.ideogram.models`, its client method in
:mod:`bot.ideogram.client`, a ``StoredJob`` subclass in :mod:`bot.commands.stored` and an
:class:`Endpoint` entry here (``docs/architecture.md``, "Adding a command").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.commands.stored import (
    DescribeJob,
    EditJob,
    GenerateJob,
    GenerateTransparentJob,
    InpaintJob,
    JobRequest,
    LayerizeJob,
    LegacyEditJob,
    LegacyGenerateJob,
    LegacyReframeJob,
    LegacyRemixJob,
    NoFields,
    ReframeJob,
    RemixJob,
    RemoveBackgroundJob,
    ReplaceBackgroundJob,
    StoredImage,
    StoredJob,
    StoredParts,
    UpscaleJob,
    dump_request,
    load_request,
)
from bot.config import PriceTable
from bot.ideogram.client import NO_REFERENCES, GeneratedImage, IdeogramClient, References
from bot.ideogram.models_edit import LayerizeTextBlock
from bot.ideogram.models_legacy import ModelEnum
from bot.images import InputImage

__all__ = [
    "ENDPOINTS",
    "NO_PARTS",
    "DescribeJob",
    "EditJob",
    "Endpoint",
    "GenerateJob",
    "GenerateTransparentJob",
    "InpaintJob",
    "JobRequest",
    "LayerizeJob",
    "LegacyEditJob",
    "LegacyGenerateJob",
    "LegacyReframeJob",
    "LegacyRemixJob",
    "NoFields",
    "Outcome",
    "Parts",
    "ReframeJob",
    "RemixJob",
    "RemoveBackgroundJob",
    "ReplaceBackgroundJob",
    "StoredImage",
    "StoredJob",
    "StoredParts",
    "UpscaleJob",
    "dump_request",
    "load_request",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one API call gave: images (some maybe withheld) or description texts."""

    images: Sequence[GeneratedImage] = ()
    descriptions: Sequence[str] = ()
    #: Layerize's detected text blocks (its images are the base, then the original).
    text_blocks: Sequence[LayerizeTextBlock] = ()


@dataclass(frozen=True, slots=True)
class Parts:
    """A job's extra image parts, read back from the image store (see :class:`StoredParts`)."""

    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    references: References = NO_REFERENCES


NO_PARTS = Parts()


class Call(Protocol):
    """``await call(client, request_fields, input_image[, parts])`` → :class:`Outcome`."""

    def __call__(
        self,
        client: IdeogramClient,
        request: Any,
        image: InputImage | None,
        parts: Parts = NO_PARTS,
        /,
    ) -> Awaitable[Outcome]: ...


Price = Callable[[PriceTable, str | None], float]
#: USD per billed unit from the whole stored request (legacy models, character references).
RequestPrice = Callable[[PriceTable, Any], float]


def _need(image: InputImage | None) -> InputImage:
    # The engine refuses jobs without their input image before they are stored.
    if image is None:
        raise ValueError("this endpoint needs an input image")
    return image


def _speed_price(prices: PriceTable, speed: str | None) -> float:
    return float(getattr(prices, (speed or "default").lower(), prices.default))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of the API as jobs use it.

    Attributes:
        name: the ``endpoint`` discriminator stored with the job (``generate``, ``remix`` …).
        stored: the :data:`JobRequest` member for this endpoint.
        call: ``await call(client, request_fields_model, input_image)`` → :class:`Outcome`.
        price: USD per billed unit, from the price table and the rendering speed (or ``None``).
        needs_image: the call sends an input image.
        per_request: billed once per request, counting as one image against the daily quota
            (describe); otherwise billed per result image, withheld ones included.
        echoes_prompt: results carry the prompt the API ran (magic prompt), worth showing.
        makes_images: results are images (not texts).
        text_layers: results carry text blocks (layerize): kept with the job, posted in words
            and as an SVG (:mod:`bot.layers`).
    """

    name: str
    stored: type[StoredJob]
    call: Call
    price: Price
    needs_image: bool = True
    per_request: bool = False
    echoes_prompt: bool = False
    makes_images: bool = True
    request_price: RequestPrice | None = field(default=None, kw_only=True)
    text_layers: bool = field(default=False, kw_only=True)

    def cost_usd(self, prices: PriceTable, units: int, rendering_speed: str | None) -> float:
        """Estimated USD for ``units`` billed units (images, or 1 request), rounded to 1/10 ¢."""
        if units <= 0:
            return 0.0
        return round(self.price(prices, rendering_speed) * units, 4)

    def cost_of(self, prices: PriceTable, units: int, stored: StoredJob) -> float:
        """Like :meth:`cost_usd`, from the whole stored job: the legacy model's price, and
        the character-reference surcharge per image (``prices.character``) when it sends one.
        """
        if units <= 0:
            return 0.0
        fields = getattr(stored, "request", None)
        speed = getattr(fields, "rendering_speed", None)
        unit = (
            self.request_price(prices, fields)
            if self.request_price is not None
            else self.price(prices, str(speed) if speed else None)
        )
        if stored.parts.character_reference_images:
            unit += prices.character
        return round(unit * units, 4)


async def _generate(
    client: IdeogramClient, req: Any, _: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.generate(req, parts.references))


async def _generate_transparent(
    client: IdeogramClient, req: Any, _: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.generate_transparent(req))


async def _remix(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.remix(req, _need(image), parts.references))


async def _reframe(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.reframe(req, _need(image), parts.references))


async def _replace_bg(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    images = await client.replace_background(req, _need(image), parts.references)
    return Outcome(images=images)


async def _remove_bg(
    client: IdeogramClient, _: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.remove_background(_need(image)))


async def _upscale(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.upscale(req, _need(image)))


async def _describe(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(descriptions=await client.describe(_need(image), req))


def _mask(parts: Parts) -> InputImage:
    if parts.mask is None:
        raise ValueError("this endpoint needs a mask")
    return parts.mask


async def _edit(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    images = [image, *parts.images] if image is not None else list(parts.images)
    return Outcome(images=await client.edit(req, images))


async def _inpaint(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    images = await client.inpaint(req, _need(image), _mask(parts), parts.references)
    return Outcome(images=images)


async def _layerize(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    layers = await client.layerize_text(req, _need(image))
    images = [layers.base] if layers.original is None else [layers.base, layers.original]
    return Outcome(images=images, text_blocks=layers.blocks)


async def _legacy_generate(
    client: IdeogramClient, req: Any, _: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.legacy_generate(req))


async def _legacy_remix(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.legacy_remix(req, _need(image)))


async def _legacy_edit(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.legacy_edit(req, _need(image), _mask(parts)))


async def _legacy_reframe(
    client: IdeogramClient, req: Any, image: InputImage | None, parts: Parts = NO_PARTS
) -> Outcome:
    return Outcome(images=await client.legacy_reframe(req, _need(image)))


def _model_price(prices: PriceTable, model: ModelEnum | None) -> float:
    # AUTO and unset: the API's default model, V_2.
    name = (model or ModelEnum.V_2).value.lower().replace("auto", "v_2").replace("_", "", 1)
    return float(getattr(prices, f"legacy_{name}", prices.legacy_v2))


def _legacy_price(prices: PriceTable, req: Any) -> float:
    inner = getattr(req, "image_request", req)
    return _model_price(prices, getattr(inner, "model", None))


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "generate",
            GenerateJob,
            _generate,
            _speed_price,
            needs_image=False,
            echoes_prompt=True,
        ),
        Endpoint(
            "generate-transparent",
            GenerateTransparentJob,
            _generate_transparent,
            lambda prices, speed: _speed_price(prices, speed) + prices.transparent,
            needs_image=False,
            echoes_prompt=True,
        ),
        Endpoint("remix", RemixJob, _remix, _speed_price, echoes_prompt=True),
        Endpoint("reframe", ReframeJob, _reframe, _speed_price),
        Endpoint("replace-bg", ReplaceBackgroundJob, _replace_bg, _speed_price, echoes_prompt=True),
        Endpoint("remove-bg", RemoveBackgroundJob, _remove_bg, lambda p, _s: p.remove_bg),
        Endpoint("upscale", UpscaleJob, _upscale, lambda p, _s: p.upscale),
        Endpoint(
            "describe",
            DescribeJob,
            _describe,
            lambda p, _s: p.describe,
            per_request=True,
            makes_images=False,
        ),
        Endpoint("edit", EditJob, _edit, lambda p, _s: p.edit, echoes_prompt=True),
        Endpoint(
            "inpaint",
            InpaintJob,
            _inpaint,
            lambda p, s: _speed_price(p, s) if s else p.inpaint,
            echoes_prompt=True,
        ),
        Endpoint(
            "layerize",
            LayerizeJob,
            _layerize,
            lambda p, _s: p.layerize,
            per_request=True,
            text_layers=True,
        ),
        Endpoint(
            "legacy-generate",
            LegacyGenerateJob,
            _legacy_generate,
            lambda p, _s: p.legacy_v2,
            needs_image=False,
            echoes_prompt=True,
            request_price=_legacy_price,
        ),
        Endpoint(
            "legacy-remix",
            LegacyRemixJob,
            _legacy_remix,
            lambda p, _s: p.legacy_v2,
            echoes_prompt=True,
            request_price=_legacy_price,
        ),
        Endpoint(
            "legacy-edit",
            LegacyEditJob,
            _legacy_edit,
            lambda p, _s: p.legacy_v2,
            echoes_prompt=True,
            request_price=_legacy_price,
        ),
        Endpoint(
            "legacy-reframe",
            LegacyReframeJob,
            _legacy_reframe,
            lambda p, _s: p.legacy_v2,
            request_price=_legacy_price,
        ),
    )
}
"""Every endpoint a job may call, by its stored name."""
