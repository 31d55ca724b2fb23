"""The status message of a job: progress shown as it moves, with the core's Cancel button."""

from __future__ import annotations

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.conversation import Conversation, Where
from adapters.slack.status import StatusMessage
from bot.types import Action, ActionKind, Progress
from tests.slack.conftest import ALICE, BOB, CHANNEL, SlackHarness
from tests.slack.fake_slack import BOT_TOKEN, TEAM_ID, FakeSlack

CANCEL = Action(ActionKind.CANCEL, "job1abcdefgh", 0, "Cancel")


def _progress(state: str, text: str, position: int | None = None) -> Progress:
    return Progress("job1abcdefgh", state, position, text, CANCEL)  # type: ignore[arg-type]


async def test_status_follows_progress_and_ignores_late_queue_notices(
    fake_slack: FakeSlack,
) -> None:
    """Queued 2 → queued 1 → generating are shown in turn with a Cancel button; a queue
    notice arriving after "Generating…" is ignored; success removes the message."""
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, session=session)
        where = Where(team_id=TEAM_ID, channel_id=CHANNEL, user_id=ALICE)
        status = StatusMessage(
            Conversation(client, where), "<@UALICE> /imagine *x*", min_interval_s=0
        )
        await status.progress(_progress("queued", "Queued: position 2.", 2))
        await fake_slack.wait_for(lambda: len(fake_slack.messages) == 1)
        message = fake_slack.messages[0]
        await status.progress(_progress("queued", "Queued: you are next.", 1))
        await fake_slack.wait_for(lambda: len(message.edits) == 1)
        await status.progress(_progress("running", "Generating…"))
        await fake_slack.wait_for(lambda: len(message.edits) == 2)
        await status.progress(_progress("queued", "Queued: you are next.", 1))
        await status.stop()
        await status.finish_ok()
    assert [*message.edits, message.text] == [
        ":hourglass_flowing_sand: <@UALICE> /imagine *x* — Queued: position 2.",
        ":hourglass_flowing_sand: <@UALICE> /imagine *x* — Queued: you are next.",
        ":hourglass_flowing_sand: <@UALICE> /imagine *x* — Generating…",
    ]
    (cancel,) = message.blocks[-1]["elements"]
    assert cancel["action_id"] == cancel["value"] == "ig:cancel:job1abcdefgh:0"
    assert message.deleted


async def test_bursts_of_progress_are_coalesced(fake_slack: FakeSlack) -> None:
    """Many position changes within the edit interval become one edit showing the newest."""
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, session=session)
        where = Where(team_id=TEAM_ID, channel_id=CHANNEL, user_id=ALICE)
        status = StatusMessage(Conversation(client, where), "h", min_interval_s=0.3)
        await status.progress(_progress("queued", "Queued: position 9.", 9))
        await fake_slack.wait_for(lambda: len(fake_slack.messages) == 1)
        for position in range(8, 1, -1):
            await status.progress(_progress("queued", f"Queued: position {position}.", position))
        await fake_slack.wait_for(lambda: len(fake_slack.messages[0].edits) == 1)
        await status.stop()
    message = fake_slack.messages[0]
    assert message.edits == [":hourglass_flowing_sand: h — Queued: position 9."]
    assert message.text.endswith("Queued: position 2.")
    assert len(fake_slack.calls_to("chat.update")) == 1


async def test_cancel_button_is_for_the_job_owner(slack: SlackHarness) -> None:
    """The Cancel button on a status message: refused privately for someone else; for the
    owner it cancels the job, and the status says so instead of posting a result."""
    slack.offline.faults.latency_s = 0.5
    await slack.command("a slow sunrise", settle=False)
    await slack.fake.wait_for(
        lambda: any(m.blocks and len(m.blocks) > 1 for m in slack.statuses()), within_s=5
    )
    (status,) = slack.statuses()
    await slack.press(status, "Cancel", user=BOB, settle=False)
    await slack.fake.wait_for(lambda: len(slack.fake.responses) == 1)
    assert slack.fake.responses[0]["text"].startswith("Only the person who ran job")
    await slack.press(status, "Cancel", user=ALICE)
    assert slack.fake.responses[-1]["text"] == "Cancelled."
    assert slack.results() == [] and slack.fake.uploads == {}
    assert ":x:" in status.text and not status.deleted
    assert [b["type"] for b in status.blocks] == ["section"]
