"""The offline engine: a local aiohttp server that speaks the Ideogram API.

With no ``IDEOGRAM_API_KEY`` the bot points its Ideogram client at this server and runs end to
end: the same paths, multipart bodies, validation, status codes and response shapes as the API
spec (``tests/ideogram/ideogram-openapi.yaml``), with real PNGs drawn by
:mod:`bot.offline.render` and served from short-lived signed URLs (:mod:`bot.offline.vault`),
as Ideogram's are. A :class:`FaultPlan` (:mod:`bot.offline.faults`) injects the failures the
bot must survive (429 with ``Retry-After``, 500, 422 safety rejections, withheld images,
latency, hangs), and :attr:`OfflineIdeogram.requests` records every call for tests. Bodies are
read by :mod:`bot.offline.forms` and checked by :mod:`bot.offline.validation`; this module
routes and applies faults; :mod:`bot.offline.answers` shapes the answers.

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
``POST /v1/edit``                                  ``V1EditImagesResponse``
``POST /v1/ideogram-v3/inpaint``                   ``ImageGenerationResponseV3``
``POST /v1/ideogram-v3/layerize-text``             ``LayerizeTextResponse`` (+ ``text_blocks``)
``POST /generate`` (JSON), ``/remix``, ``/edit``,    ``GenerateImageResponse`` (legacy models,
``/reframe``                                       the model's name drawn on the image)
``GET /images/{token}.png?exp=…&sig=…``            the PNG, until the URL expires (then 403)
=================================================  ==========================================

Errors are JSON ``{"error": "<reason>"}``: 400 invalid input (the reason names the field and
its valid values), 401 bad key (only when an ``api_key`` is configured), 422 safety, 429 rate
limited, 500 server error, 404 unknown path.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import hdrs, web
from PIL import Image
from yarl import URL

from bot.offline import render, render_more
from bot.offline.answers import error_response, image_object, json_response
from bot.offline.drawing import decode_source, draw, reported_prompt
from bot.offline.faults import (
    SAFETY_MESSAGE,
    SAFETY_TRIGGER,
    FaultPlan,
    RecordedRequest,
    injected_fault,
    safety_rejects,
)
from bot.offline.forms import BadRequest, Form, read_body
from bot.offline.validation import MAX_IMAGE_BYTES, MAX_SEED, Job, Kind, images_hint
from bot.offline.validation_more import validate_any
from bot.offline.vault import ImageVault, VaultError

__all__ = [
    "MAX_IMAGE_BYTES",
    "SAFETY_TRIGGER",
    "FaultPlan",
    "OfflineIdeogram",
    "RecordedRequest",
    "serve_forever",
]

log = logging.getLogger(__name__)

#: Largest request body read at all (several image parts may ride in one request); above it
#: aiohttp answers 413 before the handler runs.
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: How long close() lets handlers that are still running (rendering) finish.
_SHUTDOWN_TIMEOUT_S: Final = 2.0
#: Status recorded for a request whose client went away before it was answered (nginx's 499).
_CLIENT_CLOSED: Final = 499

_ROUTES: Final = {
    "/v1/ideogram-v3/generate": Kind.GENERATE,
    "/v1/ideogram-v3/generate-transparent": Kind.TRANSPARENT,
    "/v1/ideogram-v3/remix": Kind.REMIX,
    "/v1/ideogram-v3/reframe": Kind.REFRAME,
    "/v1/ideogram-v3/replace-background": Kind.REPLACE_BACKGROUND,
    "/v1/remove-background": Kind.REMOVE_BACKGROUND,
    "/upscale": Kind.UPSCALE,
    "/describe": Kind.DESCRIBE,
    "/v1/edit": Kind.EDIT,
    "/v1/ideogram-v3/inpaint": Kind.INPAINT,
    "/v1/ideogram-v3/layerize-text": Kind.LAYERIZE,
    "/generate": Kind.LEGACY_GENERATE,
    "/remix": Kind.LEGACY_REMIX,
    "/edit": Kind.LEGACY_EDIT,
    "/reframe": Kind.LEGACY_REFRAME,
}
#: Endpoints whose body may be JSON (the bearer gateways' generate; legacy /generate).
_JSON_KINDS: Final = frozenset({Kind.GENERATE, Kind.LEGACY_GENERATE})


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
        self._api_key = api_key
        self._seed_salt = seed_salt
        self._seed_rng = random.Random()
        self._vault = ImageVault(url_ttl_s)
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
        for path, kind in _ROUTES.items():
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

    def _endpoint(self, kind: Kind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._recorded(request, lambda body: self._answer(request, kind, body))

        return handler

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        async def answer(_: bytes) -> web.Response:
            return error_response(404, f"No such endpoint: {request.method} {request.path}")

        return await self._recorded(request, answer)

    async def _recorded(
        self, request: web.Request, answer: Callable[[bytes], Awaitable[web.Response]]
    ) -> web.StreamResponse:
        """Record ``request``, answer it with ``answer(body)``, note the status answered."""
        record = RecordedRequest.arriving(request)
        self.requests.append(record)
        started = time.perf_counter()
        try:
            try:
                record.body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                response = error_response(
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

    async def _answer(self, request: web.Request, kind: Kind, body: bytes) -> web.Response:
        """Answer one API request: auth, faults, validation, safety, then the drawing."""
        if not self._authorized(request):
            return error_response(401, "Not authorized: missing or invalid Api-Key header.")
        parse_error: BadRequest | None = None
        try:
            form = await read_body(
                request.content_type,
                request.headers.get(hdrs.CONTENT_TYPE, ""),
                body,
                json_ok=kind in _JSON_KINDS,
            )
        except BadRequest as exc:
            form, parse_error = Form(), exc
        weight = images_hint(kind, form)
        self.in_flight_images += weight
        self.peak_in_flight_images = max(self.peak_in_flight_images, self.in_flight_images)
        try:
            fault = await injected_fault(self.faults, self._closing)
            if fault is not None:
                return error_response(fault.status, fault.message, fault.headers)
            if parse_error is not None:
                raise parse_error
            job = await validate_any(kind, form, self._resolve_url)
            source = await decode_source(job)
            if safety_rejects(self.faults, job.prompt):
                return error_response(422, SAFETY_MESSAGE)
            return await self._run(request, job, source)
        except BadRequest as exc:
            return error_response(400, str(exc))
        finally:
            self.in_flight_images -= weight

    # -- drawing and answering --------------------------------------------------------------

    async def _run(
        self, request: web.Request, job: Job, source: Image.Image | None
    ) -> web.Response:
        created = datetime.now(UTC).isoformat()
        if job.kind is Kind.DESCRIBE:
            assert source is not None
            texts = await asyncio.to_thread(render.describe, source)
            return json_response(200, {"descriptions": [{"text": text} for text in texts]})

        if job.kind is Kind.LAYERIZE:
            assert source is not None
            return await self._layerize(request, job, source)

        # Image k gets seed base+k, so asking for that seed alone reproduces image k.
        base_seed = self._seed_rng.randint(0, MAX_SEED) if job.seed is None else job.seed
        seeds = [(base_seed + i) % (MAX_SEED + 1) for i in range(job.num_images)]
        prompt = await asyncio.to_thread(reported_prompt, job, source)
        withheld = set(self.faults.withhold_indices)
        # Withheld images are not drawn (their url is null), but still answered and counted.
        drawn = await asyncio.gather(
            *(
                asyncio.to_thread(
                    draw,
                    job,
                    source,
                    seed,
                    prompt,
                    salt=self._seed_salt,
                    draft_scale=self._draft_scale,
                )
                for i, seed in enumerate(seeds)
                if i not in withheld
            )
        )
        results = iter(drawn)
        origin = str(request.url.origin())
        data: list[dict[str, Any]] = []
        for i, seed in enumerate(seeds):
            rendered = None if i in withheld else next(results)
            url = None if rendered is None else self._vault.publish(origin, rendered.png)
            if job.kind is Kind.REMOVE_BACKGROUND:
                data.append({"url": url, "is_image_safe": rendered is not None})
                continue
            data.append(image_object(job, seed, prompt, rendered, url, source))
        return json_response(200, {"created": created, "data": data})

    async def _layerize(self, request: web.Request, job: Job, source: Image.Image) -> web.Response:
        """``LayerizeTextResponse``: the text-free base, the original, the blocks drawn."""
        seed = self._seed_rng.randint(0, MAX_SEED) if job.seed is None else job.seed
        prompt = await asyncio.to_thread(reported_prompt, job, source)
        base, original, blocks = await asyncio.to_thread(render_more.layerize, source, prompt, seed)
        origin = str(request.url.origin())
        base_png, original_png = await asyncio.gather(
            asyncio.to_thread(render.encode_png, base),
            asyncio.to_thread(render.encode_png, original),
        )
        return json_response(
            200,
            {
                "base_image_url": self._vault.publish(origin, base_png),
                "original_image_url": self._vault.publish(origin, original_png),
                "seed": seed,
                "text_blocks": blocks,
            },
        )

    def _resolve_url(self, url: str) -> bytes:
        """The bytes of an ``image_urls`` entry: only this engine's own unexpired image URLs
        resolve, as only Ideogram's do for the API.

        Raises:
            BadRequest: not one of this engine's image URLs, or expired.
        """
        parsed = URL(url)
        name = parsed.path.removeprefix("/images/")
        if not parsed.is_absolute() or name == parsed.path:
            raise BadRequest(f"image_urls: {url!r} is not an Ideogram image URL")
        try:
            png, _ = self._vault.fetch(
                name, parsed.query.get("exp", ""), parsed.query.get("sig", "")
            )
        except VaultError as exc:
            raise BadRequest(f"image_urls: {url!r} cannot be read ({exc})") from exc
        return png

    async def _serve_image(self, request: web.Request) -> web.StreamResponse:
        """``GET /images/{token}.png``: 200 image/png; 403 bad signature or expired; 404 gone."""
        try:
            png, remaining = self._vault.fetch(
                request.match_info["name"],
                request.query.get("exp", ""),
                request.query.get("sig", ""),
            )
        except VaultError as exc:
            return error_response(exc.status, str(exc))
        return web.Response(
            body=png,
            content_type="image/png",
            headers={hdrs.CACHE_CONTROL: f"private, max-age={remaining}"},
        )


async def serve_forever(host: str, port: int) -> None:
    """Run the offline engine on ``host``:``port`` until cancelled (the ``fake-ideogram`` command).

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
