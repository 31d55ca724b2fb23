"""Buttons under results: pressed with exactly the action_id/value the bot posted."""

from __future__ import annotations

import hashlib

from bot import messages
from storage import jobs as jobs_repo
from tests.conftest import eventually
from tests.slack import payloads
from tests.slack.conftest import ALICE, BOB, CHANNEL, SlackHarness, form_value
from tests.slack.fake_slack import Message


async def _imagine(
    slack: SlackHarness, text: str = "a lighthouse at dusk --n 2 --seed 11"
) -> Message:
    await slack.command(text)
    return slack.results()[-1]


def _job_id(message: Message) -> str:
    return str(message.blocks[-1]["elements"][0]["action_id"].split(":")[2])


async def test_upscale_vary_and_reroll_start_jobs_for_whoever_presses(
    slack: SlackHarness,
) -> None:
    """U2, V1 and 🔄 on Alice's result, pressed by Bob: each starts the right follow-up job,
    owned by Bob, posted in the channel with its own buttons."""
    result = await _imagine(slack)
    parent = _job_id(result)

    await slack.press(result, "U2", user=BOB)
    upscaled = slack.results()[-1]
    assert slack.offline.requests[-1].path == "/upscale"
    assert [b["text"]["text"] for b in upscaled.blocks[-1]["elements"]] == [
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out",
        "Remove BG",
    ]
    job = await jobs_repo.get_job(slack.app.db, _job_id(upscaled))
    assert job is not None and job.owner_id == BOB and job.parent_job_id == parent
    assert job.command == "upscale"
    assert "<@UBOB>" in upscaled.blocks[0]["text"]["text"]

    await slack.press(result, "V1", user=BOB)
    assert slack.offline.requests[-1].path == "/v1/ideogram-v3/remix"
    assert form_value(slack.offline.requests[-1], "image_weight") == "80"

    await slack.press(result, "🔄", user=BOB)
    sent = slack.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/generate"
    assert form_value(sent, "seed") is None  # a new seed
    assert form_value(sent, "prompt") == "a lighthouse at dusk"
    assert len(slack.results()) == 4

    await slack.press(upscaled, "Vary (Strong)", user=ALICE)
    assert form_value(slack.offline.requests[-1], "image_weight") == "35"


async def test_upscale_result_files_are_the_stored_bytes(slack: SlackHarness) -> None:
    """The upscaled image reaches Slack as a file with exactly the bytes stored for the job."""
    result = await _imagine(slack, "a red kite --seed 3")
    await slack.press(result, "U1")
    upscaled = slack.results()[-1]
    stored = await jobs_repo.get_images(slack.app.db, _job_id(upscaled))
    share = slack.fake.shared[-1]
    assert [hashlib.sha256(slack.fake.uploads[f]).hexdigest() for f in share["files"]] == [
        s.sha256 for s in stored
    ]


async def test_double_click_and_slack_retry_start_one_job(slack: SlackHarness) -> None:
    """Two clicks on U1 by the same person, and Slack re-delivering the first click, start one
    upscale; the second click is told the job is already running."""
    result = await _imagine(slack, "a red kite --seed 5")
    before = len(slack.offline.requests)
    trigger = payloads.trigger_id()
    await slack.press(result, "U1", trigger=trigger, settle=False)
    await slack.press(result, "U1", settle=False)
    await slack.press(result, "U1", trigger=trigger, headers={"X-Slack-Retry-Num": "1"})
    assert len(slack.offline.requests) == before + 1
    assert len(slack.results()) == 2
    assert len([t for t in slack.ephemerals() if t.startswith("Already on it")]) == 1


async def test_buttons_work_after_a_restart(slack: SlackHarness) -> None:
    """The bot process restarts between the result and the click: the old message's buttons
    still work, served from SQLite."""
    result = await _imagine(slack, "an old lighthouse --seed 8")
    await slack.restart()
    status, _ = await slack.press(result, "U1", user=BOB)
    assert status == 200
    assert slack.offline.requests[-1].path == "/upscale"
    upscaled = slack.results()[-1]
    job = await jobs_repo.get_job(slack.app.db, _job_id(upscaled))
    assert job is not None and job.parent_job_id == _job_id(result) and job.owner_id == BOB


async def test_a_job_queued_at_shutdown_is_posted_after_the_restart(tmp_path, fake_slack) -> None:
    """A job still queued when the bot stops is resumed at the next start and its result is
    posted in its channel by the adapter's deliverer (nobody is waiting for it any more); the
    job that was running is reported there as interrupted."""
    harness = await SlackHarness(tmp_path, fake_slack, ideogram_max_in_flight=1).start()
    try:
        harness.offline.faults.hang_next = 1
        await harness.command("the stuck one", settle=False)
        await fake_slack.wait_for(lambda: bool(harness.offline.requests), within_s=5)
        await harness.command("the waiting one --seed 12", user=BOB, settle=False)
        await eventually(lambda: jobs_repo.list_jobs_by_status(harness.app.db, ["queued"]))
        await harness.restart(drain=False)
        await fake_slack.wait_for(
            lambda: (
                any("the waiting one" in m.text for m in harness.results())
                and any(messages.INTERRUPTED in m.text for m in fake_slack.messages)
            ),
            within_s=10,
        )
    finally:
        await harness.stop()
    (result,) = [m for m in harness.results() if "the waiting one" in m.text]
    assert "<@UBOB>" in result.text and result.channel == CHANNEL
    assert [e["text"]["text"] for e in result.blocks[1]["elements"]] == ["U1"]
    assert fake_slack.shared[-1]["channel"] == CHANNEL
    (interrupted,) = [m for m in fake_slack.messages if messages.INTERRUPTED in m.text]
    assert "the stuck one" in interrupted.text and interrupted.channel == CHANNEL


async def test_stale_button_is_refused_privately(slack: SlackHarness) -> None:
    """A button whose job is not in the database answers with one private sentence."""
    stale = Message(
        CHANNEL,
        "1.0",
        "",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "U1"},
                        "action_id": "ig:upscale:aaaaaaaaaaaa:1",
                        "value": "ig:upscale:aaaaaaaaaaaa:1",
                    }
                ],
            }
        ],
    )
    status, _ = await slack.press(stale, "U1")
    assert status == 200
    assert slack.ephemerals() == ["That button belongs to a job that no longer exists."]
    assert slack.offline.requests == []


async def test_describe_result_offers_imagine_buttons(slack: SlackHarness) -> None:
    """Imagine n on a /describe result starts /imagine with that description as the prompt."""
    from tests.conftest import png_bytes

    file = slack.fake.add_file("photo.png", png_bytes((320, 240), "teal"), "image/png")
    message = {"type": "message", "user": ALICE, "ts": "1700000001.000100", "files": [file]}
    await slack.shortcut("describe_image", message)
    described = slack.results()[-1]
    labels = [e["text"]["text"] for e in described.blocks[-1]["elements"]]
    assert labels[0] == "Imagine 1"
    first = described.blocks[1]["text"]["text"].removeprefix("*1.* ")
    await slack.press(described, "Imagine 1", user=BOB)
    sent = slack.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/generate"
    assert form_value(sent, "prompt") == first
