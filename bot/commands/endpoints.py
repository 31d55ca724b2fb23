"""The Ideogram endpoints a job can call, defined once: request model, client call, price.

Every job stores one :data:`JobRequest`: the endpoint's name and its request fields under the
names of the API spec (``tests/ideogram/ideogram-openapi.yaml``), as a pydantic model
discriminated by ``endpoint``. The runner executes it through :data:`ENDPOINTS` (no switch on
command names anywhere else), and pricing, captions and the ledger read the same entry.

Adding an endpoint: its request model in :mod:`bot.ideogram.models`, its client method in
:mod:`bot.ideogram.client`, a ``_Stored`` subclass and an :class:`Endpoint` entry here
(``docs/architecture.md``, "Adding a command").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bot.config import PriceTable
from bot.ideogram.client import GeneratedImage, IdeogramClient
from bot.ideogram.models import (
    DescribeRequest,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    ReframeRequestV3,
    RemixRequestV3,
    ReplaceBackgroundRequestV3,
    UpscaleInitialImageRequest,
    dump,
)
from bot.images import InputImage

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "JobRequest",
    "Outcome",
    "dump_request",
    "load_request",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one API call gave: images (some maybe withheld) or description texts."""

    images: Sequence[GeneratedImage] = ()
    descriptions: Sequence[str] = ()


class _Stored(BaseModel):
    # Rows written before requests were typed carry a "transparent" flag: ignore extras.
    model_config = ConfigDict(frozen=True, extra="ignore")


class NoFields(BaseModel):
    """``POST /v1/remove-background`` takes only the image part."""

    model_config = ConfigDict(frozen=True)


class GenerateJob(_Stored):
    endpoint: Literal["generate"] = "generate"
    request: GenerateRequestV3


class GenerateTransparentJob(_Stored):
    endpoint: Literal["generate-transparent"] = "generate-transparent"
    request: GenerateTransparentRequestV3


class RemixJob(_Stored):
    endpoint: Literal["remix"] = "remix"
    request: RemixRequestV3


class ReframeJob(_Stored):
    endpoint: Literal["reframe"] = "reframe"
    request: ReframeRequestV3


class ReplaceBackgroundJob(_Stored):
    endpoint: Literal["replace-bg"] = "replace-bg"
    request: ReplaceBackgroundRequestV3


class RemoveBackgroundJob(_Stored):
    endpoint: Literal["remove-bg"] = "remove-bg"
    request: NoFields = NoFields()


class UpscaleJob(_Stored):
    endpoint: Literal["upscale"] = "upscale"
    request: UpscaleInitialImageRequest


class DescribeJob(_Stored):
    endpoint: Literal["describe"] = "describe"
    request: DescribeRequest = DescribeRequest()


JobRequest = Annotated[
    GenerateJob
    | GenerateTransparentJob
    | RemixJob
    | ReframeJob
    | ReplaceBackgroundJob
    | RemoveBackgroundJob
    | UpscaleJob
    | DescribeJob,
    Field(discriminator="endpoint"),
]
"""A job's stored request: ``{"endpoint": name, "request": {spec fields}}``."""

_JOB_REQUEST: TypeAdapter[JobRequest] = TypeAdapter(JobRequest)


def load_request(raw: Mapping[str, Any]) -> JobRequest:
    """Read a stored request (``JobRecord.request``) back into its typed model.

    Raises:
        pydantic.ValidationError: unknown endpoint or fields the endpoint's model refuses.
    """
    return _JOB_REQUEST.validate_python(dict(raw))


def dump_request(request: JobRequest) -> dict[str, Any]:
    """The JSON-ready form of ``request`` that storage keeps (unset fields left out)."""
    return {"endpoint": request.endpoint, "request": dump(request.request)}


Call = Callable[[IdeogramClient, Any, InputImage | None], Awaitable[Outcome]]
Price = Callable[[PriceTable, str | None], float]


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
    """

    name: str
    stored: type[_Stored]
    call: Call
    price: Price
    needs_image: bool = True
    per_request: bool = False
    echoes_prompt: bool = False
    makes_images: bool = True

    def cost_usd(self, prices: PriceTable, units: int, rendering_speed: str | None) -> float:
        """Estimated USD for ``units`` billed units (images, or 1 request), rounded to 1/10 ¢."""
        if units <= 0:
            return 0.0
        return round(self.price(prices, rendering_speed) * units, 4)


async def _generate(client: IdeogramClient, req: Any, _: InputImage | None) -> Outcome:
    return Outcome(images=await client.generate(req))


async def _generate_transparent(client: IdeogramClient, req: Any, _: InputImage | None) -> Outcome:
    return Outcome(images=await client.generate_transparent(req))


async def _remix(client: IdeogramClient, req: Any, image: InputImage | None) -> Outcome:
    return Outcome(images=await client.remix(req, _need(image)))


async def _reframe(client: IdeogramClient, req: Any, image: InputImage | None) -> Outcome:
    return Outcome(images=await client.reframe(req, _need(image)))


async def _replace_bg(client: IdeogramClient, req: Any, image: InputImage | None) -> Outcome:
    return Outcome(images=await client.replace_background(req, _need(image)))


async def _remove_bg(client: IdeogramClient, _: Any, image: InputImage | None) -> Outcome:
    return Outcome(images=await client.remove_background(_need(image)))


async def _upscale(client: IdeogramClient, req: Any, image: InputImage | None) -> Outcome:
    return Outcome(images=await client.upscale(req, _need(image)))


async def _describe(client: IdeogramClient, req: Any, image: InputImage | None) -> Outcome:
    return Outcome(descriptions=await client.describe(_need(image), req))


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
    )
}
"""Every endpoint a job may call, by its stored name."""
