"""Image input on Slack: modals with a file_input, and message shortcuts."""

from __future__ import annotations

import json

from tests.conftest import DEMO_PHOTO, png_bytes
from tests.slack.conftest import ALICE, CHANNEL, SlackHarness, form_value
from tests.slack.fake_slack import BOT_TOKEN


def _ack(body: str) -> dict:
    return json.loads(body) if body else {}


async def test_remix_opens_a_modal_and_runs_on_submit(slack: SlackHarness) -> None:
    """/remix opens a modal (file field, prompt pre-filled with the command's text, the
    channel in private_metadata); submitting it downloads the file with the bot token and
    posts the remix in the channel."""
    await slack.command("make it a watercolor --weight 30", "/remix")
    view = slack.opened_view()
    assert json.loads(view["private_metadata"])["ch"] == CHANNEL
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["ig_image"]["type"] == "file_input" and inputs["ig_image"]["max_files"] == 1
    assert inputs["ig_prompt"]["initial_value"] == "make it a watercolor --weight 30"
    assert slack.offline.requests == []

    photo = slack.fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    status, body = await slack.submit(view, files=[photo], text="make it a watercolor --weight 30")
    assert status == 200 and _ack(body) == {}
    (download,) = slack.fake.downloads
    assert download.authorization == f"Bearer {BOT_TOKEN}"
    sent = slack.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/remix"
    assert form_value(sent, "image_weight") == "30"
    assert form_value(sent, "prompt") == "make it a watercolor"
    (result,) = slack.results()
    assert result.channel == CHANNEL
    assert "make it a watercolor" in result.blocks[0]["text"]["text"]


async def test_describe_through_the_modal(slack: SlackHarness) -> None:
    """/describe's modal has only the file field; the result lists descriptions with
    Imagine buttons."""
    await slack.command("", "/describe")
    view = slack.opened_view()
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["ig_image"]
    photo = slack.fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    await slack.submit(view, files=[photo])
    assert slack.offline.requests[-1].path == "/describe"
    (result,) = slack.results()
    assert result.blocks[1]["text"]["text"].startswith("*1.* ")
    assert slack.fake.uploads == {}  # describe makes text, not images


async def test_non_image_file_is_refused_inline_with_no_api_call(slack: SlackHarness) -> None:
    """A text file in the modal keeps the modal open with an error on the file field; it is
    not even downloaded, and neither Ideogram nor the channel hears of it."""
    await slack.command("a cat", "/remix")
    view = slack.opened_view()
    calls_before = len(slack.fake.calls)
    notes = slack.fake.add_file("notes.txt", b"just some text", "text/plain")
    status, body = await slack.submit(view, files=[notes], text="a cat")
    assert status == 200
    ack = _ack(body)
    assert ack["response_action"] == "errors"
    assert ack["errors"] == {
        "ig_image": "`notes.txt` is not an image. Please attach a PNG, JPEG or WebP file."
    }
    assert slack.fake.downloads == []
    assert slack.offline.requests == []
    assert len(slack.fake.calls) == calls_before


async def test_file_that_only_claims_to_be_an_image_is_refused_inline(
    slack: SlackHarness,
) -> None:
    """A file labelled image/png whose bytes are not an image is caught after the download,
    still inline on the file field, with no Ideogram call."""
    await slack.command("", "/upscale")
    view = slack.opened_view()
    fake_png = slack.fake.add_file("fake.png", b"%PDF-1.7 not a png", "image/png")
    _, body = await slack.submit(view, files=[fake_png])
    ack = _ack(body)
    assert ack["response_action"] == "errors"
    assert "is not an image" in ack["errors"]["ig_image"]
    assert len(slack.fake.downloads) == 1
    assert slack.offline.requests == []


async def test_bad_flag_in_the_modal_is_shown_on_the_prompt_field(slack: SlackHarness) -> None:
    """A bad flag typed in the modal is answered on the prompt field, so it can be fixed."""
    await slack.command("", "/remix")
    view = slack.opened_view()
    photo = slack.fake.add_file("p.png", png_bytes(), "image/png")
    _, body = await slack.submit(view, files=[photo], text="a cat --weight 500")
    ack = _ack(body)
    assert ack["response_action"] == "errors"
    assert "--weight" in ack["errors"]["ig_prompt"]
    assert slack.offline.requests == []


async def test_files_outside_slack_hosts_are_never_fetched(slack: SlackHarness) -> None:
    """A file object whose URL is not on a Slack file host (nor the configured API root's
    host) is refused without any request to it, and the bot token goes nowhere."""
    await slack.command("", "/remove-bg")
    view = slack.opened_view()
    elsewhere = slack.fake.add_file("p.png", png_bytes(), "image/png", host="localhost")
    _, body = await slack.submit(view, files=[elsewhere])
    assert "not stored on Slack" in _ack(body)["errors"]["ig_image"]
    assert slack.fake.downloads == []


async def test_remix_shortcut_asks_for_a_prompt_then_runs(slack: SlackHarness) -> None:
    """ "Remix this image" on a message opens a prompt-only modal for that message's image."""
    photo = slack.fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    message = {"type": "message", "user": ALICE, "ts": "1700000001.000200", "files": [photo]}
    await slack.shortcut("remix_image", message)
    view = slack.opened_view()
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["ig_prompt"]
    await slack.submit(view, text="as a pencil sketch")
    assert slack.offline.requests[-1].path == "/v1/ideogram-v3/remix"
    assert slack.fake.downloads[0].authorization == f"Bearer {BOT_TOKEN}"
    assert "as a pencil sketch" in slack.results()[-1].blocks[0]["text"]["text"]


async def test_describe_and_upscale_shortcuts_run_at_once(slack: SlackHarness) -> None:
    """ "Describe this image" and "Upscale this image" need no form: they run on the message's
    image and answer in the channel (in the message's thread when it has one)."""
    photo = slack.fake.add_file("shot.png", png_bytes((300, 200), "navy"), "image/png")
    message = {"type": "message", "user": ALICE, "ts": "1700000001.000300", "files": [photo]}
    await slack.shortcut("describe_image", message)
    assert slack.offline.requests[-1].path == "/describe"
    threaded = {**message, "thread_ts": "1700000000.999999"}
    await slack.shortcut("upscale_image", threaded)
    assert slack.offline.requests[-1].path == "/upscale"
    upscaled = slack.results()[-1]
    assert upscaled.thread_ts == "1700000000.999999"
    assert slack.fake.shared[-1]["thread_ts"] == "1700000000.999999"
    assert slack.fake.calls_to("views.open") == []


async def test_shortcut_on_a_message_without_an_image_is_refused(slack: SlackHarness) -> None:
    """A shortcut on a text-only message answers privately and calls nothing."""
    message = {"type": "message", "user": ALICE, "ts": "1700000001.000400", "text": "hi"}
    await slack.shortcut("upscale_image", message)
    assert slack.ephemerals() == [
        "Use this shortcut on a message that has an image file (PNG, JPEG or WebP)."
    ]
    assert slack.offline.requests == []


async def test_slow_checks_close_the_modal_and_answer_privately(tmp_path, fake_slack) -> None:
    """When checking the file would outlast Slack's 3 s, the modal is closed at once and a
    problem found later is shown privately (chat.postEphemeral: a view has no response_url)."""
    harness = await SlackHarness(
        tmp_path, fake_slack, adapter_options={"modal_ack_budget_s": 0.0}
    ).start()
    try:
        await harness.command("", "/describe")
        view = harness.opened_view()
        fake_png = fake_slack.add_file("fake.png", b"GIF89a but truncated", "image/png")
        status, body = await harness.submit(view, files=[fake_png])
    finally:
        await harness.stop()
    assert status == 200 and _ack(body) == {}
    (ephemeral,) = fake_slack.calls_to("chat.postEphemeral")
    assert ephemeral.args["channel"] == CHANNEL and ephemeral.args["user"] == ALICE
    assert "fake.png" in ephemeral.args["text"]
