"""Async client of the Ideogram API (aiohttp, one shared session): one method per endpoint.

Source: the API spec vendored at ``tests/ideogram/ideogram-openapi.yaml`` for paths, parts and
response schemas; Ideogram's API documentation for auth, rate limits (10 images in flight per
organisation; 429 is not billed), billing and URL expiry. Behaviour that follows from them:

* Endpoints that take images are ``multipart/form-data``: image parts carry their filename and
  content type, ``color_palette`` is one JSON part, ``style_codes`` are repeated parts, and
  ``/upscale`` sends ``image_request`` as a JSON part beside ``image_file``. Text-only requests
  are forced to multipart too (aiohttp would send them urlencoded). With ``bearer`` auth the
  text-only generate endpoints are sent as JSON, as the compatible gateways ask.
* Reference images (:class:`References`: ``style_reference_images``,
  ``character_reference_images`` and their masks) are repeated file parts; ``/v1/edit`` sends
  each input as an ``images`` part. The legacy ``/generate`` takes a JSON body
  (``{"image_request": ...}``), legacy ``/remix`` an ``image_request`` JSON part.
* The transport (:mod:`bot.ideogram.transport`, the base class) retries 429 a bounded number
  of times and never re-sends 5xx or timeouts (the POST may have run and been billed), and
  downloads result images at once, because their URLs expire, bounded in time and size, only
  from the configured API host or the Ideogram image hosts (never from URLs in user text),
  each redirect hop checked again, so a redirect can neither leave the allowed hosts nor drop
  TLS. Images the API withheld (``is_image_safe: false``, ``url: null``) come back with
  ``data=None``.

:class:`GeneratedImage`, :class:`ImagePart`, :data:`MAX_REDIRECTS` and the other transport
names are re-exported here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from bot.ideogram.models import (
    DescribeRequest,
    DescribeResponse,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    ImageGenerationResponseV3,
    ReframeRequestV3,
    RemixRequestV3,
    RemoveBackgroundResponse,
    ReplaceBackgroundRequestV3,
    UpscaleInitialImageRequest,
    dump,
    form_fields,
)
from bot.ideogram.models_edit import (
    MAX_EDIT_IMAGES,
    EditRequestV1,
    InpaintRequestV3,
    LayerizeTextBlock,
    LayerizeTextRequestV3,
    LayerizeTextResponse,
    V1EditImagesResponse,
)
from bot.ideogram.models_legacy import (
    GenerateImageRequest,
    InitialImageRequest,
    LegacyEditRequest,
    LegacyReframeRequest,
)
from bot.ideogram.transport import (
    DEFAULT_IMAGE_HOSTS,
    MAX_REDIRECTS,
    AuthScheme,
    GeneratedImage,
    IdeogramTransport,
    ImagePart,
)

__all__ = [
    "DEFAULT_IMAGE_HOSTS",
    "MAX_REDIRECTS",
    "NO_REFERENCES",
    "AuthScheme",
    "GeneratedImage",
    "IdeogramClient",
    "ImagePart",
    "References",
    "TextLayers",
]

# Paths of the spec of record.
PATH_GENERATE = "/v1/ideogram-v3/generate"
PATH_GENERATE_TRANSPARENT = "/v1/ideogram-v3/generate-transparent"
PATH_REMIX = "/v1/ideogram-v3/remix"
PATH_REFRAME = "/v1/ideogram-v3/reframe"
PATH_REPLACE_BACKGROUND = "/v1/ideogram-v3/replace-background"
PATH_REMOVE_BACKGROUND = "/v1/remove-background"
PATH_UPSCALE = "/upscale"
PATH_DESCRIBE = "/describe"
PATH_EDIT = "/v1/edit"
PATH_INPAINT = "/v1/ideogram-v3/inpaint"
PATH_LAYERIZE_TEXT = "/v1/ideogram-v3/layerize-text"
PATH_LEGACY_GENERATE = "/generate"
PATH_LEGACY_REMIX = "/remix"
PATH_LEGACY_EDIT = "/edit"
PATH_LEGACY_REFRAME = "/reframe"


@dataclass(frozen=True, slots=True)
class References:
    """Reference images sent with a v3 request, each as repeated file parts.

    Attributes:
        style: ``style_reference_images`` (generate, remix, reframe, replace-background,
            inpaint); the API takes at most 10 MB across them.
        character: ``character_reference_images`` (generate, remix, inpaint); the API takes one.
        character_mask: ``character_reference_images_mask``, one per character image, each the
            size of its image (grayscale).
    """

    style: Sequence[ImagePart] = ()
    character: Sequence[ImagePart] = ()
    character_mask: Sequence[ImagePart] = ()

    def parts(self, *, character_ok: bool = True) -> list[tuple[str, ImagePart]]:
        """The file parts, in the order style, character, character mask.

        Raises:
            ValueError: character references for an endpoint that takes none
                (``character_ok`` false), or masks without as many character images.
        """
        if not character_ok and (self.character or self.character_mask):
            raise ValueError("this endpoint takes no character reference images")
        if self.character_mask and len(self.character_mask) != len(self.character):
            raise ValueError("character_reference_images_mask must match the character images")
        return [
            *(("style_reference_images", image) for image in self.style),
            *(("character_reference_images", image) for image in self.character),
            *(("character_reference_images_mask", image) for image in self.character_mask),
        ]


NO_REFERENCES = References()


@dataclass(frozen=True, slots=True)
class TextLayers:
    """What ``/v1/ideogram-v3/layerize-text`` gave, downloaded.

    Attributes:
        base: the image with every detected text removed (index 0).
        original: the original image with its text (index 1), ``None`` when the API gave none.
        blocks: the detected text blocks, in the API's order.
        seed: the seed the API used.
    """

    base: GeneratedImage
    original: GeneratedImage | None
    blocks: tuple[LayerizeTextBlock, ...]
    seed: int


class IdeogramClient(IdeogramTransport):
    """Typed calls to the Ideogram API over one :class:`aiohttp.ClientSession`.

    Args:
        session: the shared session (owned by the composition root).
        base_url: API root, e.g. ``https://api.ideogram.ai`` (no trailing slash needed).
        api_key: the key; sent as ``Api-Key`` or ``Authorization: Bearer`` per ``auth``.
        auth: ``"api-key"`` (the official API) or ``"bearer"`` (compatible gateways).
        timeout_s: bound on one API call, seconds; a call over it raises
            :class:`~bot.errors.IdeogramTimeout` and is not re-sent.
        max_retries: how many times a 429 is retried before
            :class:`~bot.errors.IdeogramRateLimited` is raised.
        backoff_base_s, backoff_max_s: exponential backoff bounds for 429 retries, seconds.
        max_download_bytes: bound on one result image download, bytes.
        image_hosts: extra hosts (and their subdomains) results may be downloaded from; the
            base URL's host is always allowed.
        on_rate_limited: called (no arguments) on every 429 received, for adaptive limits.
        sleep: how to wait between 429 retries (seconds); tests pass a recorder.
    """

    # -- endpoints -------------------------------------------------------------------------

    async def generate(
        self, request: GenerateRequestV3, references: References = NO_REFERENCES
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/generate``: text to image, with optional reference images.

        Returns:
            One :class:`GeneratedImage` per image of the response, in order.

        Raises:
            IdeogramError: a subclass per failure class (see :mod:`bot.errors`).
        """
        body = await self._post_generation(PATH_GENERATE, request, images=references.parts())
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def generate_transparent(
        self, request: GenerateTransparentRequestV3
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/generate-transparent``: text to image with alpha."""
        body = await self._post_generation(PATH_GENERATE_TRANSPARENT, request, images=())
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def remix(
        self, request: RemixRequestV3, image: ImagePart, references: References = NO_REFERENCES
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/remix``: ``image`` + prompt to new images (style and
        character references allowed)."""
        images = [("image", image), *references.parts()]
        body = await self._post_generation(PATH_REMIX, request, images=images)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def reframe(
        self, request: ReframeRequestV3, image: ImagePart, references: References = NO_REFERENCES
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/reframe``: extend ``image`` to ``request.resolution``.

        Raises:
            ValueError: character references (reframe takes style references only).
        """
        images = [("image", image), *references.parts(character_ok=False)]
        body = await self._post_generation(PATH_REFRAME, request, images=images)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def replace_background(
        self,
        request: ReplaceBackgroundRequestV3,
        image: ImagePart,
        references: References = NO_REFERENCES,
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/replace-background``: keep the subject, new background.

        Raises:
            ValueError: character references (the endpoint takes style references only).
        """
        images = [("image", image), *references.parts(character_ok=False)]
        body = await self._post_generation(PATH_REPLACE_BACKGROUND, request, images=images)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def edit(
        self, request: EditRequestV1, images: Sequence[ImagePart] = ()
    ) -> list[GeneratedImage]:
        """``POST /v1/edit``: change 1-10 images with the words of ``request.prompt``.

        Parts: one ``images`` file part per image, plus ``request.image_urls`` as text parts;
        the generation fields as text parts.

        Raises:
            ValueError: no image at all, or more than 10 files.
            IdeogramError: a subclass per failure class (see :mod:`bot.errors`).
        """
        if not images and not request.image_urls:
            raise ValueError("POST /v1/edit needs at least one image or image URL")
        if len(images) > MAX_EDIT_IMAGES:
            raise ValueError(f"POST /v1/edit takes at most {MAX_EDIT_IMAGES} images")
        parts = [("images", image) for image in images]
        body = await self._post(PATH_EDIT, self._form(form_fields(request), parts))
        return await self._download_all(self._parse(V1EditImagesResponse, body))

    async def inpaint(
        self,
        request: InpaintRequestV3,
        image: ImagePart,
        mask: ImagePart,
        references: References = NO_REFERENCES,
    ) -> list[GeneratedImage]:
        """``POST /v1/ideogram-v3/inpaint``: redraw the **black** region of ``mask`` in
        ``image`` (the mask is the image's size, black and white).

        Parts: ``image``, ``mask``, the reference images, the fields as text parts.

        Raises:
            IdeogramError: a subclass per failure class (see :mod:`bot.errors`).
        """
        images = [("image", image), ("mask", mask), *references.parts()]
        body = await self._post_generation(PATH_INPAINT, request, images=images)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def layerize_text(self, request: LayerizeTextRequestV3, image: ImagePart) -> TextLayers:
        """``POST /v1/ideogram-v3/layerize-text``: the text-free base image, the original, and
        the detected text blocks of ``image``.

        Raises:
            IdeogramError: a subclass per failure class (see :mod:`bot.errors`); the base
                image's download failing included.
        """
        form = self._form(form_fields(request), [("image", image)])
        parsed = self._parse(LayerizeTextResponse, await self._post(PATH_LAYERIZE_TEXT, form))
        prompt = request.prompt or ""
        base, original = await asyncio.gather(
            self._download_one(0, parsed.base_image_url, True, parsed.seed, prompt, None),
            self._download_one(1, parsed.original_image_url, True, parsed.seed, prompt, None)
            if parsed.original_image_url
            else _none(),
        )
        return TextLayers(base, original, parsed.text_blocks, parsed.seed)

    async def legacy_generate(self, request: GenerateImageRequest) -> list[GeneratedImage]:
        """``POST /generate`` (legacy models): the JSON body ``{"image_request": {...}}``."""
        body = await self._post(PATH_LEGACY_GENERATE, dump(request))
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def legacy_remix(
        self, request: InitialImageRequest, image: ImagePart
    ) -> list[GeneratedImage]:
        """``POST /remix`` (legacy): ``image_request`` as a JSON part beside ``image_file``."""
        fields = [("image_request", json.dumps(dump(request)))]
        form = self._form(fields, [("image_file", image)], json_parts={"image_request"})
        body = await self._post(PATH_LEGACY_REMIX, form)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def legacy_edit(
        self, request: LegacyEditRequest, image: ImagePart, mask: ImagePart
    ) -> list[GeneratedImage]:
        """``POST /edit`` (legacy, ``V_2`` / ``V_2_TURBO``): ``image_file`` and ``mask`` parts,
        the fields (``model`` included) as text parts."""
        form = self._form(form_fields(request), [("image_file", image), ("mask", mask)])
        body = await self._post(PATH_LEGACY_EDIT, form)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def legacy_reframe(
        self, request: LegacyReframeRequest, image: ImagePart
    ) -> list[GeneratedImage]:
        """``POST /reframe`` (legacy): ``image_file`` and the fields as text parts."""
        form = self._form(form_fields(request), [("image_file", image)])
        body = await self._post(PATH_LEGACY_REFRAME, form)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def remove_background(self, image: ImagePart) -> list[GeneratedImage]:
        """``POST /v1/remove-background``: the subject on a transparent background."""
        form = self._form([], [("image", image)])
        body = await self._post(PATH_REMOVE_BACKGROUND, form)
        parsed = self._parse(RemoveBackgroundResponse, body)
        tasks = [
            self._download_one(i, item.url, item.is_image_safe, None, "", None)
            for i, item in enumerate(parsed.data)
        ]
        return list(await asyncio.gather(*tasks))

    async def upscale(
        self, request: UpscaleInitialImageRequest, image: ImagePart
    ) -> list[GeneratedImage]:
        """``POST /upscale``: ``image_request`` as a JSON part beside ``image_file``."""
        fields = [("image_request", json.dumps(dump(request)))]
        form = self._form(fields, [("image_file", image)], json_parts={"image_request"})
        body = await self._post(PATH_UPSCALE, form)
        return await self._download_all(self._parse(ImageGenerationResponseV3, body))

    async def describe(self, image: ImagePart, request: DescribeRequest | None = None) -> list[str]:
        """``POST /describe``: returns the description texts (possibly empty list)."""
        form = self._form(form_fields(request or DescribeRequest()), [("image_file", image)])
        body = await self._post(PATH_DESCRIBE, form)
        parsed = self._parse(DescribeResponse, body)
        return [d.text for d in parsed.descriptions if d.text.strip()]


async def _none() -> None:
    return None
