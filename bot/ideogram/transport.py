"""HTTP transport of the Ideogram client: auth, multipart bodies, 429 retries, downloads.

:class:`IdeogramTransport` is the base of :class:`bot.ideogram.client.IdeogramClient` and
holds everything that is not one endpoint:

* auth headers: ``Api-Key`` (the official API) or ``Authorization: Bearer`` (compatible
  gateways);
* ``multipart/form-data`` bodies built with :class:`aiohttp.FormData` (image parts carry their
  filename and content type; ``color_palette`` and other named parts go as JSON parts),
  forced to multipart even when text-only; with ``bearer`` auth, text-only generation requests
  go as JSON instead;
* the POST itself: a 429 is retried with exponential backoff and jitter, honouring
  ``Retry-After``, a bounded number of times (tenacity); 5xx and timeouts are never re-sent,
  because the POST may have run and been billed;
* error mapping from the HTTP status to the typed errors of :mod:`bot.errors`, and response
  parsing into the pydantic models of :mod:`bot.ideogram.models`;
* bounded downloads of result images (their URLs expire), with bounded time and size, only
  from the configured API host or the Ideogram image hosts; redirects are followed by hand,
  at most :data:`MAX_REDIRECTS` hops, each hop's host and scheme checked again (https only,
  unless the configured base URL is http itself: the offline engine, tests). Images the API
  withheld (``is_image_safe: false``, ``url: null``) come back with ``data=None``.
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
from bot.http_read import TooLarge, read_capped
from bot.ideogram.models import ImageGenerationResponseV3, dump, form_fields
from bot.images import image_size, sniff_content_type

__all__ = [
    "DEFAULT_IMAGE_HOSTS",
    "MAX_REDIRECTS",
    "AuthScheme",
    "GeneratedImage",
    "IdeogramTransport",
    "ImagePart",
]

log = logging.getLogger(__name__)

AuthScheme = Literal["api-key", "bearer"]
_M = TypeVar("_M", bound=BaseModel)

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


class IdeogramTransport:
    """Auth, bodies, POST with 429 retries, error mapping, parsing and downloads over one
    :class:`aiohttp.ClientSession`; the endpoints live in the subclass
    :class:`bot.ideogram.client.IdeogramClient`, whose docstring lists the arguments.
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
        try:
            return await read_capped(resp, self._max_download_bytes)
        except TooLarge:
            raise IdeogramDownloadError(resp.status, "image larger than allowed") from None


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
