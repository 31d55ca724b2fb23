"""The pure translation pieces: captions, message limits, file fitting, ids from messages."""

from __future__ import annotations

import io

import discord
from PIL import Image

from adapters.discord import render
from adapters.discord.commands import complete
from adapters.discord.inputs import DISCORD_FILE_HOSTS, file_hosts
from bot.commands.grammar import ASPECT_RATIO_CHOICES, STYLE_PRESET_CHOICES
from bot.types import Caption, JobResult, ResultImage
from tests.conftest import png_bytes


def _caption(prompt: str = "a fox", magic: str | None = None) -> Caption:
    return Caption(
        requester_id="42",
        command="imagine",
        prompt=prompt,
        magic_prompt=magic,
        seed="7",
        speed="TURBO",
        style="AUTO",
        aspect_ratio="1x1",
        job_id="abcdefghijkl",
    )


def _image(index: int, data: bytes | None) -> ResultImage:
    return ResultImage(
        index=index,
        data=data,
        content_type="image/png" if data else None,
        filename=f"ideogram_abcdefghijkl_{index + 1}.png",
        width=256,
        height=256,
        seed=7,
    )


def _result(**changes: object) -> JobResult:
    """A succeeded /imagine result of job ``abcdefghijkl`` in channel 2, with ``changes``."""
    fields: dict[str, object] = {
        "job_id": "abcdefghijkl",
        "command": "imagine",
        "status": "succeeded",
        "platform": "discord",
        "server_id": "1",
        "channel_id": "2",
        "owner_id": "42",
        "caption": _caption(),
    }
    fields.update(changes)
    return JobResult(**fields)  # type: ignore[arg-type]


def _noise_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 80).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def test_caption_mentions_the_requester_and_escapes_the_prompt() -> None:
    """User text cannot break the caption's markdown; the requester is a mention."""
    text = render.caption_markdown(_caption(prompt="**bold** _x_ `code`"))
    assert text.startswith(r"**\*\*bold\*\* \_x\_ \`code\`** — <@42>")
    assert "job `abcdefghijkl`" in text


def test_long_prompts_and_descriptions_fit_in_one_message() -> None:
    """A 2,000-character prompt plus magic prompt and long descriptions stay ≤ 2,000."""
    result = _result(
        command="describe",
        caption=_caption(prompt="p" * 2000, magic="m" * 2000),
        descriptions=("d" * 900, "e" * 900, "f" * 900),
    )
    content = render.result_content(result)
    assert len(content) <= render.MAX_CONTENT_CHARS
    assert "**1.**" in content and "**3.**" in content and "job `abcdefghijkl`" in content


def test_failed_result_carries_its_error_sentence() -> None:
    result = _result(status="failed", error="Ideogram's safety check blocked this prompt.")
    assert render.result_content(result).endswith("✖ Ideogram's safety check blocked this prompt.")


async def test_files_keep_their_exact_bytes_when_they_fit() -> None:
    """Under the limit, the stored bytes go out untouched; withheld images are skipped."""
    data = png_bytes((64, 64))
    files = await render.fit_files([_image(0, data), _image(1, None)], limit_bytes=10 * 1024**2)
    assert [f.data for f in files] == [data]
    assert files[0].data is data and files[0].filename == "ideogram_abcdefghijkl_1.png"


async def test_files_over_the_limit_are_re_encoded_to_fit() -> None:
    big = _noise_png(400)
    limit = len(big) // 3
    (file,) = await render.fit_files([_image(0, big)], limit_bytes=limit)
    assert len(file.data) <= limit
    assert file.filename.startswith("ideogram_abcdefghijkl_1.")
    with Image.open(io.BytesIO(file.data)) as image:
        assert image.width == image.height


async def test_the_whole_request_stays_under_discord_s_request_limit(monkeypatch) -> None:
    """Several files each under the per-file limit but together over the request limit are
    shrunk to equal shares."""
    monkeypatch.setattr(render, "MAX_REQUEST_BYTES", 400_000)
    monkeypatch.setattr(render, "_REQUEST_OVERHEAD_BYTES", 0)
    images = [_image(i, _noise_png(300)) for i in range(4)]
    assert sum(len(i.data or b"") for i in images) > 400_000
    files = await render.fit_files(images, limit_bytes=300_000)
    assert sum(len(f.data) for f in files) <= 400_000
    assert len(files) == 4


async def test_at_most_ten_files() -> None:
    data = png_bytes((8, 8))
    files = await render.fit_files([_image(i, data) for i in range(12)], limit_bytes=10**7)
    assert len(files) == render.MAX_FILES


def test_split_content_breaks_at_lines_and_keeps_code_blocks_closed() -> None:
    text = "head\n```\n" + "\n".join(f"row {i:04d} " + "x" * 60 for i in range(60)) + "\n```"
    parts = render.split_content(text)
    assert len(parts) == 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert render.split_content("") == ["…"]


def test_allowed_mentions_only_ping_the_requester() -> None:
    mentions = render.requester_only("42").to_dict()
    assert mentions["parse"] == [] and mentions["users"] == [42]


def test_attachment_hosts() -> None:
    """Discord's CDN always; a configured API root's host as well."""
    assert file_hosts("https://discord.com/api/v10") == DISCORD_FILE_HOSTS
    assert file_hosts("http://127.0.0.1:9999/api/v10") == DISCORD_FILE_HOSTS | {"127.0.0.1"}


def test_autocomplete_prefers_prefixes_and_reads_x_as_colon() -> None:
    assert [c.value for c in complete(ASPECT_RATIO_CHOICES, "16x")] == ["16:9", "16:10"]
    assert [c.value for c in complete(STYLE_PRESET_CHOICES, "art")][:3] == [
        "Art Brut",
        "Art Deco",
        "Art Poster",
    ]
    assert len(complete(STYLE_PRESET_CHOICES, "")) == 25
    assert isinstance(complete(ASPECT_RATIO_CHOICES, "1")[0], discord.app_commands.Choice)
