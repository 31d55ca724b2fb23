"""Response shaping of the offline engine: JSON bodies, error bodies, image objects.

The JSON answers carry exactly ``application/json`` (no charset parameter), as the API's do;
errors are ``{"error": "<reason>"}``; each generated image is one ``ImageGenerationObjectV3``
(``ImageObject`` for ``/upscale`` and the legacy endpoints) of the API spec
(``tests/ideogram/ideogram-openapi.yaml``). Used by :mod:`bot.offline.server`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from PIL import Image

from bot.offline import render
from bot.offline.drawing import Rendered, resolved_style
from bot.offline.validation import Job, Kind


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Return ``payload`` as a JSON response with ``status`` and the extra ``headers``."""
    # Exactly "application/json" (no charset parameter), like the API answers.
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Return the API's error body ``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message}, headers)


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def image_object(
    job: Job,
    seed: int,
    prompt: str,
    rendered: Rendered | None,
    url: str | None,
    source: Image.Image | None,
) -> dict[str, Any]:
    """Return one ``ImageGenerationObjectV3`` (``ImageObject`` for /upscale).

    ``rendered`` is None for a withheld image: ``is_image_safe`` false, ``url`` null.
    """
    style = resolved_style(job.style_type, job.prompt or "", seed)
    obj: dict[str, Any] = {
        "url": url,
        "prompt": prompt,
        "resolution": job.resolution.value if job.resolution else "",
        "is_image_safe": rendered is not None,
        "seed": seed,
        "style_type": style.value,
    }
    if job.kind is Kind.UPSCALE:
        assert source is not None
        size = rendered.size if rendered else render.cap_size((source.width * 2, source.height * 2))
        # ImageObject.resolution is "the resolution of the final image".
        obj["resolution"] = obj["upscaled_resolution"] = _size_text(size)
    elif job.kind is Kind.REPLACE_BACKGROUND:
        assert source is not None
        obj["resolution"] = render.resolution_for_size(*source.size).value
    elif job.size is not None:
        # Legacy answers (ImageObject) report the final image's size.
        obj["resolution"] = _size_text(rendered.size if rendered else job.size)
    elif job.kind is Kind.TRANSPARENT and job.upscale_factor > 1:
        # The selected resolution is reported; the upscaled one rides in its own field.
        assert job.resolution is not None
        w, h = job.resolution.size
        factor = job.upscale_factor
        obj["upscaled_resolution"] = _size_text(render.cap_size((w * factor, h * factor)))
    return obj
