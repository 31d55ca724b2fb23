"""The Ideogram client against the offline engine over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime
import io
import ipaddress
import ssl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.errors import (
    IdeogramAuthError,
    IdeogramCreditsError,
    IdeogramDownloadError,
    IdeogramInvalidRequest,
    IdeogramRateLimited,
    IdeogramSafetyError,
    IdeogramServerError,
    IdeogramTimeout,
)
from bot.ideogram.client import MAX_REDIRECTS, IdeogramClient
from bot.ideogram.models import (
    AspectRatioV3,
    GenerateRequestV3,
    RenderingSpeed,
    UpscaleInitialImageRequest,
)
from bot.images import prepare_input_image
from bot.offline import OfflineIdeogram
from tests.conftest import eventually, make_client, png_bytes


async def test_generate_downloads_every_image_at_once(session, offline):
    """generate returns decoded images of the requested shape with their seeds."""
    client = make_client(session, offline)
    images = await client.generate(
        GenerateRequestV3(
            prompt="a red fox",
            aspect_ratio=AspectRatioV3.R_16x9,
            num_images=2,
            seed=7,
            rendering_speed=RenderingSpeed.TURBO,
        )
    )
    assert [i.index for i in images] == [0, 1]
    for image in images:
        assert image.content_type == "image/png"
        assert image.data is not None
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.size == (image.width, image.height)
        assert image.width > image.height  # 16:9
    assert images[0].seed == 7


async def test_429_is_retried_honouring_retry_after(session, offline):
    """Two 429s with Retry-After 2 s: the client waits ~2 s before each retry, then succeeds."""
    offline.faults.rate_limit_next = 2
    offline.faults.retry_after_s = 2.0
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    client = make_client(session, offline, sleep=record, backoff_max_s=30.0)
    images = await client.generate(GenerateRequestV3(prompt="a fox"))
    assert len(images) == 1
    assert len(offline.requests) == 3
    assert len(waits) == 2
    assert all(2.0 <= w < 2.5 for w in waits), waits


async def test_429_retries_are_bounded(session, offline):
    """When 429s keep coming the client gives up with IdeogramRateLimited after max_retries."""
    offline.faults.rate_limit_next = 10
    offline.faults.retry_after_s = 0.0

    async def no_wait(seconds: float) -> None:
        return None

    client = make_client(session, offline, sleep=no_wait, max_retries=3)
    with pytest.raises(IdeogramRateLimited) as caught:
        await client.generate(GenerateRequestV3(prompt="a fox"))
    assert caught.value.status == 429
    assert len(offline.requests) == 4


async def test_500_is_not_retried(session, offline):
    """A 5xx may have run and been billed: exactly one request, IdeogramServerError."""
    offline.faults.server_error_next = 1
    client = make_client(session, offline)
    with pytest.raises(IdeogramServerError) as caught:
        await client.generate(GenerateRequestV3(prompt="a fox"))
    assert caught.value.billed
    assert len(offline.requests) == 1


async def test_timeout_is_not_retried(session, offline):
    """A hung call is cut at the timeout and not re-sent."""
    offline.faults.hang_next = 1
    client = make_client(session, offline, timeout_s=0.3)
    with pytest.raises(IdeogramTimeout):
        await client.generate(GenerateRequestV3(prompt="a fox"))
    await asyncio.sleep(0)
    assert len(offline.requests) == 1


async def test_safety_rejection(session, offline):
    """422 becomes IdeogramSafetyError carrying the API's own text."""
    offline.faults.safety_reject_next = 1
    client = make_client(session, offline)
    with pytest.raises(IdeogramSafetyError) as caught:
        await client.generate(GenerateRequestV3(prompt="a fox"))
    assert caught.value.status == 422
    assert "safety" in caught.value.api_message.lower()
    assert not caught.value.billed


async def test_invalid_request_carries_api_message(session, offline):
    """400: the API's reason is kept for the log."""
    client = make_client(session, offline)
    with pytest.raises(IdeogramInvalidRequest) as caught:
        await client.upscale(UpscaleInitialImageRequest(), _Part(b"not an image", "text/plain"))
    assert caught.value.status == 400
    assert caught.value.api_message


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, IdeogramAuthError),
        (403, IdeogramAuthError),
        (402, IdeogramCreditsError),
        (400, IdeogramInvalidRequest),
        (422, IdeogramSafetyError),
        (503, IdeogramServerError),
    ],
)
async def test_status_classes(session, status, error_class):
    """Each documented status maps to its typed error (against a tiny loopback server)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": f"status {status}"}, status=status)

    app = web.Application()
    app.router.add_post("/v1/ideogram-v3/generate", handler)
    async with TestServer(app) as server:
        client = IdeogramClient(session, base_url=str(server.make_url("/")), api_key="k")
        with pytest.raises(error_class) as caught:
            await client.generate(GenerateRequestV3(prompt="x"))
        assert caught.value.api_message == f"status {status}"


async def test_wrong_key_is_an_auth_error(session):
    """The offline engine with a key configured refuses another key with 401."""
    async with OfflineIdeogram(api_key="right") as engine:
        client = IdeogramClient(session, base_url=engine.base_url, api_key="wrong")
        with pytest.raises(IdeogramAuthError):
            await client.generate(GenerateRequestV3(prompt="x"))
        good = IdeogramClient(session, base_url=engine.base_url, api_key="right", auth="bearer")
        assert len(await good.generate(GenerateRequestV3(prompt="x"))) == 1


async def test_withheld_image_has_no_bytes(session, offline):
    """is_image_safe false / url null: that image is withheld, the others arrive."""
    offline.faults.withhold_indices = {1}
    client = make_client(session, offline)
    images = await client.generate(GenerateRequestV3(prompt="a fox", num_images=3))
    assert [i.withheld for i in images] == [False, True, False]
    assert images[1].data is None and not images[1].is_image_safe


async def test_images_are_fetched_before_their_url_expires(session):
    """URLs live url_ttl_s; the client has the bytes already, and the URL is dead afterwards."""
    async with OfflineIdeogram(url_ttl_s=0.5) as engine:
        client = IdeogramClient(session, base_url=engine.base_url, api_key="k")
        images = await client.generate(GenerateRequestV3(prompt="a fox"))
        assert images[0].data is not None
        async with session.post(
            engine.base_url + "/v1/ideogram-v3/generate",
            data=aiohttp.FormData({"prompt": "a fox"}, default_to_multipart=True),
        ) as resp:
            url = (await resp.json())["data"][0]["url"]

        async def url_is_dead() -> bool:
            try:
                await client.download(url)
            except IdeogramDownloadError:
                return True
            return False

        assert await eventually(url_is_dead, 10)


async def test_download_refuses_foreign_hosts(session, offline):
    """Result images come only from the API host or Ideogram's image hosts."""
    client = make_client(session, offline)
    with pytest.raises(IdeogramDownloadError):
        await client.download("http://203.0.113.9/evil.png")


async def test_image_endpoints_round_trip(session, offline):
    """remix, reframe, replace-bg, remove-bg, upscale and describe all answer in shape."""
    from bot.ideogram.models import (
        ReframeRequestV3,
        RemixRequestV3,
        ReplaceBackgroundRequestV3,
        ResolutionV3,
    )

    client = make_client(session, offline)
    photo = prepare_input_image(png_bytes((256, 256), "navy"), "photo.png")
    remixed = await client.remix(RemixRequestV3(prompt="watercolor", image_weight=30), photo)
    reframed = await client.reframe(ReframeRequestV3(resolution=ResolutionV3.R_1344x768), photo)
    replaced = await client.replace_background(ReplaceBackgroundRequestV3(prompt="beach"), photo)
    removed = await client.remove_background(photo)
    upscaled = await client.upscale(UpscaleInitialImageRequest(prompt="crisp"), photo)
    described = await client.describe(photo)
    assert remixed[0].data and replaced[0].data and removed[0].data
    assert (reframed[0].width, reframed[0].height) == (1344, 768)
    assert (upscaled[0].width, upscaled[0].height) == (512, 512)
    assert described and all(isinstance(t, str) and t for t in described)


class _Part:
    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.content_type = content_type
        self.filename = "file.bin"


# -- result downloads: redirects are followed by hand, every hop checked ---------------------


class _Recorder:
    """A loopback server that records the paths it was asked for; ``routes`` maps a path to
    the ``Location`` of a redirect (status :attr:`status`), other paths answer a PNG."""

    status = 302

    def __init__(self, routes: dict[str, str]) -> None:
        self.paths: list[str] = []
        self.routes = routes
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        location = self.routes.get(request.path)
        if location is None:
            return web.Response(body=png_bytes(), content_type="image/png")
        return web.Response(status=self.status, headers={"Location": location})


def _tls_contexts(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_download_refuses_a_redirect_to_another_host(session):
    """The allowed API host answers 302 to 127.0.0.2: refused, and 127.0.0.2 never asked."""
    elsewhere = _Recorder({})
    async with TestServer(elsewhere.app, host="127.0.0.2") as other:
        api = _Recorder({"/img.png": str(other.make_url("/x"))})
        async with TestServer(api.app) as server:
            client = IdeogramClient(session, base_url=str(server.make_url("")), api_key="k")
            with pytest.raises(IdeogramDownloadError):
                await client.download(str(server.make_url("/img.png")))
    assert api.paths == ["/img.png"]
    assert elsewhere.paths == []


async def test_download_follows_a_redirect_within_the_allowed_host(session):
    """Relative and absolute redirects on the allowed host are followed to the image."""
    api = _Recorder({"/a": "b", "/b": "/c/d.png"})
    api.status = 307
    async with TestServer(api.app) as server:
        client = IdeogramClient(session, base_url=str(server.make_url("")), api_key="k")
        data = await client.download(str(server.make_url("/a")))
    assert data == png_bytes()
    assert api.paths == ["/a", "/b", "/c/d.png"]


async def test_download_gives_up_after_max_redirects(session):
    """A redirect loop on the allowed host stops after MAX_REDIRECTS hops."""
    api = _Recorder({f"/r{n}": f"/r{n + 1}" for n in range(20)})
    async with TestServer(api.app) as server:
        client = IdeogramClient(session, base_url=str(server.make_url("")), api_key="k")
        with pytest.raises(IdeogramDownloadError):
            await client.download(str(server.make_url("/r0")))
    assert len(api.paths) == MAX_REDIRECTS + 1


async def test_download_refuses_an_https_to_http_downgrade(tmp_path):
    """With an https base URL, a redirect to plain http on the same host is refused, and the
    http server never asked; plain http is refused from the first URL too."""
    server_tls, client_tls = _tls_contexts(tmp_path)
    plain = _Recorder({})
    async with TestServer(plain.app) as http_server:
        target = str(http_server.make_url("/x.png"))
        api = _Recorder({"/img.png": target})
        tls_server = TestServer(api.app)
        await tls_server.start_server(ssl=server_tls)
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_tls)
            ) as session:
                base_url = str(tls_server.make_url(""))
                assert base_url.startswith("https://")
                client = IdeogramClient(session, base_url=base_url, api_key="k")
                assert await client.download(str(tls_server.make_url("/ok.png"))) == png_bytes()
                with pytest.raises(IdeogramDownloadError):
                    await client.download(str(tls_server.make_url("/img.png")))
                with pytest.raises(IdeogramDownloadError):
                    await client.download(target)
        finally:
            await tls_server.close()
    assert api.paths == ["/ok.png", "/img.png"]
    assert plain.paths == []


async def test_edit_sends_every_image_as_an_images_part(session, offline):
    """POST /v1/edit: one ``images`` file part per image, fields as text parts."""
    from bot.ideogram.models_edit import EditRequestV1
    from tests.conftest import form_parts

    client = make_client(session, offline)
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    blue = prepare_input_image(png_bytes((64, 64), "blue"), "blue.png")
    images = await client.edit(
        EditRequestV1(prompt="blend them", transparent_background=False), [red, blue]
    )
    assert len(images) == 1 and images[0].data is not None
    [recorded] = offline.requests
    parts = await form_parts(recorded.body, recorded.content_type)
    assert parts["images"] == [red.data, blue.data]
    assert parts["transparent_background"] == [b"false"]


async def test_requests_the_api_would_refuse_are_not_sent(session, offline):
    """No image for /v1/edit, or a character reference on reframe: ValueError, no call."""
    from bot.ideogram.client import References
    from bot.ideogram.models import ReframeRequestV3, ResolutionV3
    from bot.ideogram.models_edit import EditRequestV1

    client = make_client(session, offline)
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    with pytest.raises(ValueError, match="at least one image"):
        await client.edit(EditRequestV1(prompt="x"))
    with pytest.raises(ValueError, match="character"):
        await client.reframe(
            ReframeRequestV3(resolution=ResolutionV3.R_1024x1024),
            red,
            References(character=(red,)),
        )
    assert offline.requests == []


async def test_bearer_requests_with_references_go_as_multipart(session, offline):
    """Text-only generate goes as JSON with bearer auth; with reference images it must be
    multipart (files cannot ride in JSON)."""
    from bot.ideogram.client import References

    client = make_client(session, offline, auth="bearer")
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    await client.generate(GenerateRequestV3(prompt="a fox"), References(style=(red,)))
    assert offline.requests[-1].content_type.startswith("multipart/form-data")


async def test_layerize_reads_blocks_and_keeps_fields_the_spec_does_not_list(session):
    """LayerizeTextResponse: unknown fields survive, block aliases are read, and the two
    images are downloaded with the API's seed."""
    from bot.ideogram.models_edit import LayerizeTextRequestV3, LayerizeTextResponse

    parsed = LayerizeTextResponse.model_validate(
        {
            "base_image_url": "https://ideogram.ai/a.png",
            "seed": 3,
            "text_blocks": [{"content": "SALE", "font": "Inter", "x": 4, "kerning": 2}],
            "layout": "poster",
        }
    )
    assert parsed.model_extra == {"layout": "poster"}
    [block] = parsed.text_blocks
    assert (block.text, block.font_family, block.x) == ("SALE", "Inter", 4)
    assert block.model_extra == {"kerning": 2}

    png = png_bytes((40, 30), "green")

    async def answer(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.Response(body=png, content_type="image/png")
        base = str(request.url.origin())
        return web.json_response(
            {
                "base_image_url": base + "/base.png",
                "original_image_url": None,
                "seed": 11,
                "text_blocks": [{"text": "HELLO", "y": 2.5, "color": "#FFFFFF"}],
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app) as server:
        client = IdeogramClient(
            session, base_url=str(server.make_url("")), api_key="k", timeout_s=5.0
        )
        layers = await client.layerize_text(
            LayerizeTextRequestV3(), prepare_input_image(png, "in.png")
        )
    assert layers.seed == 11 and layers.original is None
    assert layers.base.data == png and layers.base.seed == 11
    assert [(b.text, b.y, b.color) for b in layers.blocks] == [("HELLO", 2.5, "#FFFFFF")]
