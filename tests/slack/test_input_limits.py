"""Files from strangers on Slack: the user's limits are checked before any file is downloaded,
and images that decode to too many pixels are refused without being decoded."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.conftest import DEMO_PHOTO
from tests.slack.conftest import ALICE, BOB, SlackHarness


async def _use_up_a_quota_of_one(slack: SlackHarness) -> None:
    """Alice (an admin) sets a daily quota of 1 image; Bob uses it."""
    slack.fake.admins.add(ALICE)
    await slack.command("set daily_quota 1", "/settings")
    await slack.command("a fox", user=BOB)
    assert len(slack.offline.requests) == 1


async def test_a_modal_over_quota_is_refused_before_the_file_is_downloaded(
    slack: SlackHarness,
) -> None:
    """Bob's /remix modal, submitted with a photo, is answered on the modal with the quota
    refusal; the file is never downloaded."""
    await _use_up_a_quota_of_one(slack)
    await slack.command("", "/remix", user=BOB)
    view = slack.opened_view()
    photo = slack.fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    _, body = await slack.submit(view, user=BOB, files=[photo], text="as a watercolor")
    ack = json.loads(body)
    assert ack["response_action"] == "errors"
    (error,) = ack["errors"].values()
    assert error.startswith("That would exceed your daily quota of 1 image:")
    assert slack.fake.downloads == []
    assert len(slack.offline.requests) == 1


async def test_a_shortcut_over_quota_is_refused_before_the_file_is_downloaded(
    slack: SlackHarness,
) -> None:
    """ "Describe this image" by Bob, over his quota: a private refusal, no download."""
    await _use_up_a_quota_of_one(slack)
    photo = slack.fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    message = {"type": "message", "user": ALICE, "ts": "1700000001.000500", "files": [photo]}
    await slack.shortcut("describe_image", message, user=BOB)
    assert any(text.startswith("That would exceed your daily quota") for text in slack.ephemerals())
    assert slack.fake.downloads == []
    assert len(slack.offline.requests) == 1


async def test_a_decompression_bomb_file_is_refused_on_the_modal(slack: SlackHarness) -> None:
    """A 6300×6300 one-colour deflate TIFF of a few hundred KiB: refused from its header, on
    the file field, with nothing sent to the API."""
    buffer = io.BytesIO()
    Image.new("L", (6300, 6300), 200).save(buffer, "TIFF", compression="tiff_deflate")
    await slack.command("", "/describe")
    view = slack.opened_view()
    bomb = slack.fake.add_file("scan.tiff", buffer.getvalue(), "image/tiff")
    _, body = await slack.submit(view, files=[bomb])
    assert json.loads(body)["errors"]["ig_image"] == (
        "`scan.tiff` has too many pixels (6300×6300) to process; please attach an image of at"
        " most 12,582,912 pixels."
    )
    assert slack.offline.requests == []
