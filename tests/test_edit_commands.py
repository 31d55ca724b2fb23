"""/edit, /blend, /inpaint and /layerize end to end: console lines in, the parts the engine
sends and the files it saves out, against the offline engine; refusals before any call."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from bot import messages
from bot.commands import registry
from bot.errors import UserError
from bot.types import Caller, Invocation, JobResult
from tests.conftest import DEMO_PHOTO, Harness, form_parts, png_bytes, sent_field

SVG = "{http://www.w3.org/2000/svg}"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mask(path: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None) -> Path:
    mask = Image.new("RGB", size, "white")
    if box is not None:
        mask.paste((0, 0, 0), box)
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return _write(path, out.getvalue())


def _last(h: Harness) -> JobResult:
    return h.console.results[-1]


async def test_new_commands_are_console_only_for_now(harness: Harness):
    """Discord and Slack neither list nor run them yet; the console does."""
    for name in ("edit", "blend", "inpaint", "layerize"):
        assert registry.COMMANDS[name].platforms == frozenset({"console"})
        assert name not in registry.for_platform("discord")
        assert name not in registry.for_platform("slack")
        assert name in registry.for_platform("console")
    assert registry.COMMANDS["imagine"].platforms == registry.ALL_PLATFORMS
    slack = Caller(platform="slack", user_id="U1", server_id="T1", channel_id="C1")
    reply = await harness.engine.handle(Invocation("help", slack))
    assert "/edit" not in getattr(reply, "text", "") and "/imagine" in getattr(reply, "text", "")
    try:
        await harness.engine.handle(Invocation("edit", slack, text="x"))
    except Exception as exc:
        assert "Unknown command `/edit`" in str(exc)
    else:
        raise AssertionError("/edit ran on Slack")
    console = await harness.console.run_line("/help")
    assert console is not None and "/edit" in getattr(console, "text", "")
    assert harness.api_calls == 0


async def test_edit_sends_every_image_and_the_prompt(harness: Harness, tmp_path: Path):
    """`/edit a.png b.png prompt`: both files as `images` parts of one POST /v1/edit."""
    logo = _write(tmp_path / "logo.png", png_bytes((64, 64), "blue"))
    reply = await harness.console.run_line(
        f"/edit {DEMO_PHOTO} {logo} put the logo on the mug --seed 4"
    )
    assert isinstance(reply, JobResult) and reply.ok, harness.output.getvalue()
    sent = harness.offline.requests[-1]
    assert sent.path == "/v1/edit"
    parts = await form_parts(sent.body, sent.content_type)
    assert len(parts["images"]) == 2
    assert await sent_field(sent, "prompt") == "put the logo on the mug"
    assert await sent_field(sent, "seed") == "4"
    assert reply.caption.prompt == "put the logo on the mug"
    assert [a.label for a in reply.actions][-1] == "🔄"
    # 🔄 sends the same images again.
    again = await harness.console.run_line("🔄")
    assert isinstance(again, JobResult) and again.ok
    last = harness.offline.requests[-1]
    resent = await form_parts(last.body, last.content_type)
    assert resent["images"] == parts["images"]


async def test_blend_needs_two_images_and_has_a_default_prompt(harness: Harness, tmp_path: Path):
    """One image is refused before any call; two blend with the default prompt."""
    other = _write(tmp_path / "other.png", png_bytes((64, 64), "green"))
    assert await harness.console.run_line(f"/blend {DEMO_PHOTO}") is None
    assert "needs 2 to 5 images; you gave 1" in harness.output.getvalue()
    assert harness.api_calls == 0
    reply = await harness.console.run_line(f"/blend {DEMO_PHOTO} {other}")
    assert isinstance(reply, JobResult) and reply.ok
    sent = harness.offline.requests[-1]
    assert sent.path == "/v1/edit"
    assert await sent_field(sent, "prompt") == messages.BLEND_PROMPT
    assert len((await form_parts(sent.body, sent.content_type))["images"]) == 2


async def test_inpaint_sends_the_mask_scaled_to_the_image(harness: Harness, tmp_path: Path):
    """A mask of another size is scaled to the image and sent as the `mask` part."""
    photo = _write(tmp_path / "photo.png", png_bytes((96, 64), "orange"))
    mask = _mask(tmp_path / "mask.png", (48, 32), (10, 10, 30, 25))
    reply = await harness.console.run_line(f"/inpaint {photo} {mask} a red door --seed 3")
    assert isinstance(reply, JobResult) and reply.ok, harness.output.getvalue()
    sent = harness.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/inpaint"
    parts = await form_parts(sent.body, sent.content_type)
    with Image.open(io.BytesIO(parts["mask"][0])) as sent_mask:
        assert sent_mask.size == (96, 64)
        grey = sent_mask.convert("L")
        assert grey.getpixel((40, 30)) == 0 and grey.getpixel((5, 5)) == 255
    assert await sent_field(sent, "prompt") == "a red door"
    assert "U1" in [a.label for a in reply.actions]


async def test_bad_masks_are_refused_before_any_call(harness: Harness, tmp_path: Path):
    """A mask with no black, or a file that is not an image: one sentence, no API call."""
    photo = _write(tmp_path / "photo.png", png_bytes((96, 64), "orange"))
    white = _mask(tmp_path / "white.png", (96, 64), None)
    text = _write(tmp_path / "mask.png", b"this is not an image at all")
    assert await harness.console.run_line(f"/inpaint {photo} {white} a door") is None
    assert messages.MASK_NO_BLACK in harness.output.getvalue()
    assert await harness.console.run_line(f"/inpaint {photo} {text} a door") is None
    assert messages.MASK_NOT_IMAGE.format(name="mask.png") in harness.output.getvalue()
    assert await harness.console.run_line(f"/inpaint {photo} a door") is None
    assert "needs 2 to 2 images; you gave 1" in harness.output.getvalue()
    assert harness.api_calls == 0


async def test_layerize_posts_files_words_and_a_valid_svg(harness: Harness, tmp_path: Path):
    """Base and original as images, the blocks in words, and layers_<job>.svg that parses,
    embeds the base as a data URI and has one <text> per block with its style."""
    poster = _write(tmp_path / "poster.png", png_bytes((200, 120), "navy"))
    reply = await harness.console.run_line(f"/layerize {poster} GRAND OPENING this Saturday")
    assert isinstance(reply, JobResult) and reply.ok, harness.output.getvalue()
    assert harness.offline.requests[-1].path == "/v1/ideogram-v3/layerize-text"
    assert len(reply.images) == 2 and all(i.data for i in reply.images)
    assert reply.descriptions and "“GRAND OPENING this Saturday”" in reply.descriptions[0]
    (svg,) = reply.attachments
    assert svg.filename == f"layers_{reply.job_id}.svg"
    saved = harness.console.out_dir / svg.filename
    assert saved in harness.console.saved and f"saved {saved}" in harness.output.getvalue()
    root = ET.fromstring(saved.read_bytes())
    assert root.tag == f"{SVG}svg" and root.get("width") == "200"
    (image,) = root.findall(f"{SVG}image")
    assert (image.get("href") or "").startswith("data:image/png;base64,")
    texts = root.findall(f"{SVG}text")
    assert [t.text for t in texts] == ["GRAND OPENING this Saturday"]
    assert texts[0].get("font-family") and texts[0].get("font-size")
    assert (texts[0].get("fill") or "").startswith("#") and texts[0].get("x") is not None


# -- reference flags ---------------------------------------------------------------------------

ALICE = Caller(platform="console", user_id="alice", server_id="s1", channel_id="c1")
BOB_ELSEWHERE = Caller(platform="console", user_id="bob", server_id="s1", channel_id="c2")


async def _imagine(h: Harness, text: str, caller: Caller = ALICE) -> JobResult:
    reply = await h.engine.handle(Invocation("imagine", caller, text=text))
    assert isinstance(reply, JobResult) and reply.ok
    return reply


async def test_sref_of_an_earlier_job_sends_its_image(harness: Harness):
    """`--sref JOBID:2` sends image 2 of that job as a style reference; no style type."""
    first = await _imagine(harness, "a red fox --n 2 --seed 1")
    await _imagine(harness, f"a blue bird --sref {first.job_id}:2 --n 1")
    sent = harness.offline.requests[-1]
    parts = await form_parts(sent.body, sent.content_type)
    assert parts["style_reference_images"] == [first.images[1].data]
    assert "style_type" not in parts


async def test_style_codes_and_files_from_the_console(harness: Harness, tmp_path: Path):
    """Codes go as `style_codes`; console file paths as reference images (--cref too)."""
    await _imagine(harness, "a fox --sref 1a2b3c4d,DEADBEEF --n 1")
    sent = harness.offline.requests[-1]
    parts = await form_parts(sent.body, sent.content_type)
    assert parts["style_codes"] == [b"1A2B3C4D", b"DEADBEEF"]
    face = _write(tmp_path / "face.png", png_bytes((64, 64), "pink"))
    reply = await harness.console.run_line(f"/imagine a knight --cref {face} --n 1")
    assert isinstance(reply, JobResult) and reply.ok, harness.output.getvalue()
    sent = harness.offline.requests[-1]
    parts = await form_parts(sent.body, sent.content_type)
    assert parts["character_reference_images"] == [face.read_bytes()]


async def test_reference_refusals_come_before_any_call(harness: Harness):
    """A job the caller may not /show, codes with images, --sref with --style, and a
    legacy model with --sref are refused naming the problem; no API call."""
    alices = await _imagine(harness, "a secret fox --n 1")
    calls = harness.api_calls
    cases = [
        (f"a copy --sref {alices.job_id}", BOB_ELSEWHERE, "you can't /show that job"),
        ("a fox --sref 1A2B3C4D,zzzzzzzzzzzz:1", ALICE, "mixes style codes and images"),
        ("a fox --sref 1A2B3C4D --style realistic", ALICE, "`--sref` and `--style`"),
        ("a fox --v 2a --sref 1A2B3C4D", ALICE, "`--sref` doesn't work with `--v 2a`"),
        ("a fox --cref-mask abcdefghijkl", ALICE, "`--cref-mask` needs `--cref`"),
        ("a fox --sref not-a-thing", ALICE, "is not a reference I can use"),
        ("a fox --model mine", ALICE, "`--model` can't be used"),
    ]
    for text, caller, expected in cases:
        try:
            await harness.engine.handle(Invocation("imagine", caller, text=text))
        except UserError as exc:
            assert expected in exc.message, (text, exc.message)
        else:
            raise AssertionError(f"{text!r} was not refused")
    assert harness.api_calls == calls


async def test_legacy_version_calls_the_legacy_endpoint(harness: Harness):
    """`--v 2a` runs /imagine on POST /generate with the model in the JSON body."""
    result = await _imagine(harness, "a fox --v 2a --ar 16:9 --n 1 --seed 3")
    sent = harness.offline.requests[-1]
    assert sent.path == "/generate"
    body = json.loads(sent.body)["image_request"]
    assert body["model"] == "V_2A" and body["aspect_ratio"] == "ASPECT_16_9"
    assert result.images[0].data
