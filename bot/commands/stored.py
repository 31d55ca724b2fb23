"""The stored form of a job's request: one pydantic model per endpoint, and its JSON.

Every job stores one :data:`JobRequest`: the endpoint's name and its request fields under the
names of the API spec (``tests/ideogram/ideogram-openapi.yaml``), discriminated by
``endpoint``, plus the extra image parts (:class:`StoredParts`) kept in the image store by
SHA-256. :func:`dump_request` gives what storage keeps; :func:`load_request` reads it back.
:mod:`bot.commands.endpoints` maps each model to its client call and price.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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
from bot.ideogram.models_edit import EditRequestV1, InpaintRequestV3, LayerizeTextRequestV3
from bot.ideogram.models_legacy import (
    GenerateImageRequest,
    InitialImageRequest,
    LegacyEditRequest,
    LegacyReframeRequest,
)

__all__ = [
    "DescribeJob",
    "EditJob",
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


class StoredImage(BaseModel):
    """An image a job sends besides its input image, kept in the image store by SHA-256."""

    model_config = ConfigDict(frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    filename: str


class StoredParts(BaseModel):
    """The extra image parts of a job, by the API's part names.

    ``images``: ``/v1/edit``'s images after the first (the job's input image);
    ``mask``: inpaint's (and legacy ``/edit``'s) mask; the rest: reference images.
    """

    model_config = ConfigDict(frozen=True)
    images: tuple[StoredImage, ...] = Field(default=(), max_length=9)
    mask: StoredImage | None = None
    style_reference_images: tuple[StoredImage, ...] = ()
    character_reference_images: tuple[StoredImage, ...] = ()
    character_reference_images_mask: tuple[StoredImage, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the job sends no extra image."""
        return self == StoredParts()


class StoredJob(BaseModel):
    """Base of every stored request: the extra image parts beside the endpoint's fields."""

    # Rows written before requests were typed carry a "transparent" flag: ignore extras.
    model_config = ConfigDict(frozen=True, extra="ignore")
    parts: StoredParts = StoredParts()


class NoFields(BaseModel):
    """``POST /v1/remove-background`` takes only the image part."""

    model_config = ConfigDict(frozen=True)


class GenerateJob(StoredJob):
    endpoint: Literal["generate"] = "generate"
    request: GenerateRequestV3


class GenerateTransparentJob(StoredJob):
    endpoint: Literal["generate-transparent"] = "generate-transparent"
    request: GenerateTransparentRequestV3


class RemixJob(StoredJob):
    endpoint: Literal["remix"] = "remix"
    request: RemixRequestV3


class ReframeJob(StoredJob):
    endpoint: Literal["reframe"] = "reframe"
    request: ReframeRequestV3


class ReplaceBackgroundJob(StoredJob):
    endpoint: Literal["replace-bg"] = "replace-bg"
    request: ReplaceBackgroundRequestV3


class RemoveBackgroundJob(StoredJob):
    endpoint: Literal["remove-bg"] = "remove-bg"
    request: NoFields = NoFields()


class UpscaleJob(StoredJob):
    endpoint: Literal["upscale"] = "upscale"
    request: UpscaleInitialImageRequest


class DescribeJob(StoredJob):
    endpoint: Literal["describe"] = "describe"
    request: DescribeRequest = DescribeRequest()


class EditJob(StoredJob):
    endpoint: Literal["edit"] = "edit"
    request: EditRequestV1


class InpaintJob(StoredJob):
    endpoint: Literal["inpaint"] = "inpaint"
    request: InpaintRequestV3


class LayerizeJob(StoredJob):
    endpoint: Literal["layerize"] = "layerize"
    request: LayerizeTextRequestV3 = LayerizeTextRequestV3()


class LegacyGenerateJob(StoredJob):
    endpoint: Literal["legacy-generate"] = "legacy-generate"
    request: GenerateImageRequest


class LegacyRemixJob(StoredJob):
    endpoint: Literal["legacy-remix"] = "legacy-remix"
    request: InitialImageRequest


class LegacyEditJob(StoredJob):
    endpoint: Literal["legacy-edit"] = "legacy-edit"
    request: LegacyEditRequest


class LegacyReframeJob(StoredJob):
    endpoint: Literal["legacy-reframe"] = "legacy-reframe"
    request: LegacyReframeRequest


JobRequest = Annotated[
    GenerateJob
    | GenerateTransparentJob
    | RemixJob
    | ReframeJob
    | ReplaceBackgroundJob
    | RemoveBackgroundJob
    | UpscaleJob
    | DescribeJob
    | EditJob
    | InpaintJob
    | LayerizeJob
    | LegacyGenerateJob
    | LegacyRemixJob
    | LegacyEditJob
    | LegacyReframeJob,
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
    """The JSON-ready form of ``request`` that storage keeps (unset fields left out; ``parts``
    only when the job sends extra images)."""
    out: dict[str, Any] = {"endpoint": request.endpoint, "request": dump(request.request)}
    if not request.parts.empty:
        out["parts"] = request.parts.model_dump(mode="json", exclude_defaults=True)
    return out
