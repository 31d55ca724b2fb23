"""Async client of the Ideogram API (aiohttp, one shared session).

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
* 429 is retried with exponential backoff and jitter, honouring ``Retry-After``, a bounded number
  of times (tenacity). 5xx and timeouts are never re-sent: the POST may have run and been billed.
* Result images are downloaded at once, because their URLs expire, with bounded time and size,
  only from the configured API host or the Ideogram image hosts (never from URLs in user text).
  Redirects are followed by hand, at most :data:`MAX_REDIRECTS` hops, each hop's host and
  scheme checked again: https only, unless the configured base URL is http itself (the offline
  engine, tests), so a redirect can neither leave the allowed hosts nor drop TLS.
  Images the API withheld (``is_image_safe: false``, ``url: null``) come back with ``data=None``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from yarl import URL

from bot.errors import (
    IdeogramAuthError,
    IdeogramCreditsError,
    IdeogramDownloadError,
    IdeogramError,
    IdeogramInvalidRequest,
    IdeogramRateLimited,
    IdeogramSafetyError,
    IdeogramServerError,
    IdeogramTimeout,
)
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
from bot.images import image_size, sniff_content_type

log = logging.getLogger(__name__)

AuthScheme = Literal["api-key", "bearer"]
_M = TypeVar("_M", bound=BaseModel)

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

DEFAULT_IMAGE_HOSTS = ("ideogram.ai",)

#: Redirect hops a result download follows before giving up.
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ImagePart(Protocol):
    """An image to upload: raw bytes with the filename and content type to send."""

    @property
    def data(self) -> bytes: ...
    @property
    def filename(self) -> str: ...
    @property
    def content_type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One image of an API response, downloaded.

    Attributes:
        index: 0-based position in the response's ``data``.
        data: the PNG/JPEG/WebP bytes, or ``None`` when the API withheld the image.
        content_type: sniffed from the bytes (``image/png`` …), ``None`` when withheld.
        width, height: pixels (0 when withheld).
        seed: the seed the API used (``None`` for remove-background).
        prompt: the prompt the API used (the magic-prompt rewrite when it made one).
        resolution: the API's ``resolution`` field (``"1024x1024"``), if any.
        is_image_safe: the API's safety verdict; ``False`` means withheld.
    """

    index: int
    data: bytes | None
    content_type: str | None
    width: int
    height: int
    seed: int | None
    prompt: str
    resolution: str | None
    is_image_safe: bool

    @property
    def withheld(self) -> bool:
        """True when the API withheld this image (no bytes to show)."""
        return self.data is None


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


class _RetryAfterWait:
    """tenacity wait: the API's ``Retry-After`` when it gave one, else exponential with jitter."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self._fallback = wait_exponential_jitter(multiplier=base_s, max=max_s, jitter=base_s)
        self._max_s = max_s

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, IdeogramRateLimited) and exc.retry_after is not None:
            # A little jitter keeps concurrent jobs from retrying in lockstep.
            return min(exc.retry_after, self._max_s) + float(self._fallback(state)) * 0.1
        return float(self._fallback(state))


class IdeogramClient:
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

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str | None,
        auth: AuthScheme = "api-key",
        timeout_s: float = 180.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        max_download_bytes: int = 40 * 1024 * 1024,
        image_hosts: Sequence[str] = DEFAULT_IMAGE_HOSTS,
        on_rate_limited: Callable[[], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._auth = auth
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_retries = max_retries
        self._wait = _RetryAfterWait(backoff_base_s, backoff_max_s)
        self._max_download_bytes = max_download_bytes
        base = urlsplit(self._base_url)
        self._image_hosts = tuple({base.hostname or "", *(h.lower() for h in image_hosts)} - {""})
        # Plain http only when the operator configured it (the offline engine, tests).
        self._download_schemes = (
            frozenset({"https", "http"}) if base.scheme == "http" else frozenset({"https"})
        )
        self.on_rate_limited = on_rate_limited
        self._sleep = sleep

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

    # -- transport -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            if self._auth == "bearer":
                headers["Authorization"] = f"Bearer {self._api_key}"
            else:
                headers["Api-Key"] = self._api_key
        return headers

    @staticmethod
    def _form(
        fields: Sequence[tuple[str, str]],
        images: Sequence[tuple[str, ImagePart]],
        *,
        json_parts: frozenset[str] | set[str] = frozenset({"color_palette"}),
    ) -> aiohttp.FormData:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in fields:
            if name in json_parts:
                form.add_field(name, value, content_type="application/json")
            else:
                form.add_field(name, value)
        for name, image in images:
            form.add_field(
                name, image.data, filename=image.filename, content_type=image.content_type
            )
        return form

    async def _post_generation(
        self, path: str, request: BaseModel, *, images: Sequence[tuple[str, ImagePart]]
    ) -> object:
        if self._auth == "bearer" and not images:
            return await self._post(path, dump(request))
        return await self._post(path, self._form(form_fields(request), images))

    async def _post(self, path: str, body: aiohttp.FormData | dict[str, object]) -> object:
        """POST with bounded 429 retries; returns the decoded JSON body.

        The multipart body is rendered to bytes once, so a 429 retry re-sends identical bytes
        (a ``FormData`` can be sent only once).
        """
        url = self._base_url + path
        if isinstance(body, aiohttp.FormData):
            payload = body()
            data: bytes | None = await payload.as_bytes()
            content_type: str | None = payload.content_type
            json_body: dict[str, object] | None = None
        else:
            data, content_type, json_body = None, None, body
        headers = self._headers()
        if content_type:
            headers["Content-Type"] = content_type

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(IdeogramRateLimited),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(url, headers, data, json_body)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _send_once(
        self,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        json_body: dict[str, object] | None,
    ) -> object:
        try:
            async with self._session.post(
                url, data=data, json=json_body, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                if resp.status == 200:
                    try:
                        return json.loads(raw)
                    except ValueError as exc:
                        raise IdeogramServerError(200, "response is not JSON") from exc
                self._raise_for_status(resp.status, raw, resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise IdeogramTimeout(None, f"no answer within {self._timeout.total} s") from exc
        except aiohttp.ClientError as exc:
            # The request may have reached the API before the connection broke.
            raise IdeogramTimeout(None, f"connection error: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    def _raise_for_status(self, status: int, raw: bytes, retry_after: str | None) -> None:
        message = _api_message(raw)
        if status == 429:
            if self.on_rate_limited is not None:
                self.on_rate_limited()
            raise IdeogramRateLimited(status, message, _parse_retry_after(retry_after))
        error_class: type[IdeogramError]
        if status == 400:
            error_class = IdeogramInvalidRequest
        elif status in (401, 403):
            error_class = IdeogramAuthError
        elif status == 402:
            error_class = IdeogramCreditsError
        elif status == 422:
            error_class = IdeogramSafetyError
        elif status >= 500:
            error_class = IdeogramServerError
        else:
            error_class = IdeogramInvalidRequest
        raise error_class(status, message)

    @staticmethod
    def _parse(model: type[_M], body: object) -> _M:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            detail = f"unexpected response shape: {exc.error_count()} errors"
            raise IdeogramServerError(200, detail) from exc

    # -- downloads -------------------------------------------------------------------------

    async def _download_all(self, response: ImageGenerationResponseV3) -> list[GeneratedImage]:
        tasks = [
            self._download_one(
                i, item.url, item.is_image_safe, item.seed, item.prompt, item.resolution
            )
            for i, item in enumerate(response.data)
        ]
        return list(await asyncio.gather(*tasks))

    async def _download_one(
        self,
        index: int,
        url: str | None,
        is_image_safe: bool,
        seed: int | None,
        prompt: str,
        resolution: str | None,
    ) -> GeneratedImage:
        if not is_image_safe or not url:
            return GeneratedImage(index, None, None, 0, 0, seed, prompt, resolution, False)
        data = await self.download(url)
        content_type = sniff_content_type(data)
        if content_type is None:
            raise IdeogramDownloadError(200, "result is not an image")
        width, height = await asyncio.to_thread(image_size, data)
        return GeneratedImage(
            index, data, content_type, width, height, seed, prompt, resolution, True
        )

    async def download(self, url: str) -> bytes:
        """GET a result image: at most ``max_download_bytes``, within the call timeout.

        Redirects (301, 302, 303, 307, 308) are followed by hand, at most
        :data:`MAX_REDIRECTS` hops, ``Location`` resolved against the current URL; every URL,
        the first one included, must be on an allowed host with an allowed scheme (https, and
        http only when the base URL is http). The timeout bounds the whole chain.

        Raises:
            IdeogramDownloadError: a URL on the way is refused (host or scheme), too many
                redirects, a redirect without ``Location``, non-200 (an expired URL), too large.
            IdeogramTimeout: no complete answer in time.
        """
        try:
            current = URL(url)
            async with asyncio.timeout(self._timeout.total):
                for hop in range(MAX_REDIRECTS + 1):
                    self._check_download_url(current, hop)
                    async with self._session.get(
                        current, allow_redirects=False, timeout=self._timeout
                    ) as resp:
                        if resp.status in _REDIRECT_STATUSES:
                            location = resp.headers.get(aiohttp.hdrs.LOCATION)
                            if not location:
                                raise IdeogramDownloadError(
                                    resp.status, "image redirect without a Location"
                                )
                            current = resp.url.join(URL(location))
                            continue
                        return await self._read_image(resp)
        except TimeoutError as exc:
            raise IdeogramTimeout(None, "image download timed out") from exc
        except aiohttp.ClientError as exc:
            raise IdeogramDownloadError(None, f"download failed: {type(exc).__name__}") from exc
        except ValueError as exc:  # yarl: a URL or Location that is not a URL
            raise IdeogramDownloadError(None, "image URL is not a URL") from exc
        log.warning("image download refused: more than %d redirects", MAX_REDIRECTS)
        raise IdeogramDownloadError(None, f"more than {MAX_REDIRECTS} redirects")

    def _check_download_url(self, url: URL, hop: int) -> None:
        """Raise :class:`IdeogramDownloadError` unless ``url`` may be fetched (see
        :meth:`download`); ``hop`` is 0 for the API's own URL, n for the n-th redirect."""
        host = (url.host or "").lower()
        scheme = url.scheme.lower()
        if scheme not in self._download_schemes:
            reason = f"scheme {scheme!r} not allowed"
        elif not any(host == h or host.endswith("." + h) for h in self._image_hosts):
            reason = f"host {host!r} not allowed"
        else:
            return
        # Host and scheme only: result URLs carry signed query strings.
        where = "result URL" if hop == 0 else f"redirect hop {hop}"
        log.warning("image download refused at %s: %s", where, reason)
        raise IdeogramDownloadError(None, f"refusing to fetch image: {reason}")

    async def _read_image(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body of a final (non-redirect) answer, at most ``max_download_bytes``."""
        if resp.status != 200:
            raise IdeogramDownloadError(resp.status, "image download refused")
        if (resp.content_length or 0) > self._max_download_bytes:
            raise IdeogramDownloadError(resp.status, "image larger than allowed")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            total += len(chunk)
            if total > self._max_download_bytes:
                raise IdeogramDownloadError(resp.status, "image larger than allowed")
            chunks.append(chunk)
        return b"".join(chunks)


async def _none() -> None:
    return None


def _api_message(raw: bytes) -> str:
    """Return the API's own error text (``{"error": ...}`` or the body), at most 500 chars."""
    text = raw.decode("utf-8", "replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(decoded, dict):
        for key in ("error", "message", "detail"):
            if isinstance(decoded.get(key), str):
                return str(decoded[key])[:500]
    return text[:500]


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (RFC 9110: delta-seconds or an HTTP-date).

    Returns ``None`` when the header is absent or unreadable.
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
