"""Slash commands through the real Bolt app: signed form bodies in, Web API calls out."""

from __future__ import annotations

import hashlib
import json
import logging
import re

import pytest

from bot import messages
from bot.commands import registry
from storage import jobs as jobs_repo
from tests.slack import payloads
from tests.slack.conftest import ALICE, BOB, CHANNEL, SlackHarness, button, form_value
from tests.slack.fake_slack import FakeSlack


def _json_of_calls(fake: FakeSlack) -> str:
    """Everything the bot sent to Slack, as one string (to look for leaked URLs)."""
    sent = [json.dumps(c.args, default=str) for c in fake.calls]
    sent += [json.dumps(r) for r in fake.responses]
    return "\n".join(sent)


async def test_bad_signature_is_refused_before_anything_happens(slack: SlackHarness) -> None:
    """A request signed with the wrong secret (or too old) gets 401 and no API call at all."""
    body = payloads.form(
        payloads.slash_command(
            "/imagine", "a fox", user=ALICE, channel=CHANNEL, response_url=slack.fake.response_url()
        )
    )
    status, _ = await slack.send(body, secret="not-the-signing-secret")
    assert status == 401
    stale = payloads.signed_headers(body, timestamp=1_000_000_000, content_type=payloads.FORM)
    status, _ = await slack.send(body, headers=stale)
    assert status == 401
    assert slack.fake.calls == []
    assert slack.fake.responses == []
    assert slack.offline.requests == []


async def test_imagine_with_flags_posts_files_then_caption_and_buttons(
    slack: SlackHarness,
) -> None:
    """/imagine with inline flags: acked with 200, the flags reach Ideogram, the images are
    shared as files with the exact stored bytes, then one message carries the caption and the
    U/V/🔄 buttons, whose ids carry the job id within Slack's limits."""
    status, body = await slack.command("a red fox in the snow --ar 16:9 --n 2 --seed 7")
    assert status == 200 and body == ""

    sent = slack.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/generate"
    assert form_value(sent, "aspect_ratio") == "16x9"
    assert form_value(sent, "num_images") == "2"
    assert form_value(sent, "seed") == "7"

    (result,) = slack.results()
    job_id = result.blocks[-1]["elements"][0]["action_id"].split(":")[2]
    job = await jobs_repo.get_job(slack.app.db, job_id)
    assert job is not None and job.owner_id == ALICE and job.server_id == "T0001"
    assert job.channel_id == CHANNEL

    # Files first, in the channel, with the bytes stored for the job.
    (share,) = slack.fake.shared
    assert share["channel"] == CHANNEL
    stored = await jobs_repo.get_images(slack.app.db, job_id)
    assert [hashlib.sha256(slack.fake.uploads[f]).hexdigest() for f in share["files"]] == [
        img.sha256 for img in stored
    ]
    messages_in_channel = slack.fake.channel_messages(CHANNEL)
    assert messages_in_channel.index(result) > next(
        i for i, m in enumerate(messages_in_channel) if m.files
    )

    caption = result.blocks[0]["text"]["text"]
    assert caption.startswith("*a red fox in the snow* — <@UALICE>")
    assert "seed 7" in caption and "ar 16x9" in caption and f"job `{job_id}`" in caption
    labels = [
        e["text"]["text"] for b in result.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["U1", "U2", "V1", "V2", "🔄"]
    for label in labels:
        element = button(result, label)
        assert element["action_id"] == element["value"]
        assert job_id in element["action_id"] and len(element["action_id"]) <= 255

    # No Ideogram (offline engine) URL ever reaches Slack (also checked after every test).
    assert slack.offline.base_url.split("//")[1] not in _json_of_calls(slack.fake)


async def test_progress_shows_queue_position_then_generating(tmp_path, fake_slack) -> None:
    """With one image in flight at a time, a waiting job's status message shows its queue
    position, then "Generating…", and is removed once the result is posted."""
    harness = await SlackHarness(tmp_path, fake_slack, ideogram_max_in_flight=1).start()
    try:
        harness.offline.faults.latency_s = 0.3
        await harness.command("first job", user=ALICE, settle=False)
        await fake_slack.wait_for(lambda: bool(harness.offline.requests), within_s=5)
        await harness.command("second job", user=BOB, settle=False)
        await harness.command("third job", user="UCAROL", settle=False)
        await harness.settle()
    finally:
        await harness.stop()
    (status,) = [m for m in harness.statuses() if "third job" in m.text]
    shown = [*status.edits, status.text]
    # The core decides which positions it reports; the status shows a queue position first
    # and "Generating…" last.
    assert re.search(r"— Queued: (position \d+|you are next)\.$", shown[0])
    assert shown[-1].endswith("— Generating…")
    assert status.deleted
    assert len(harness.results()) == 3


async def test_text_commands_answer_privately(slack: SlackHarness) -> None:
    """/usage, /history, /settings show and /help answer with ephemeral text via the
    response_url; nothing is posted in the channel."""
    await slack.command("a lighthouse --seed 3")
    for command, text in (("/usage", ""), ("/history", "5"), ("/settings", "show"), ("/help", "")):
        status, _ = await slack.command(text, command)
        assert status == 200
    usage, history, settings_shown, help_text = [r for r in slack.fake.responses]
    assert all(r["response_type"] == "ephemeral" for r in slack.fake.responses)
    assert "*Your usage*" in usage["text"] and "today" in usage["text"]
    assert "a lighthouse" in history["text"] and "seed 3" in history["text"]
    assert "daily_quota" in settings_shown["text"]
    assert "/imagine" in help_text["text"] and "Remix this image" in help_text["text"]
    assert len(slack.results()) == 1  # only the /imagine result


async def test_prefixed_command_names_route_to_the_core_command(slack: SlackHarness) -> None:
    """A workspace that renamed /imagine to /ig-imagine (or /usage to /ig_usage) still works."""
    await slack.command("a kite --seed 1", "/ig-imagine")
    await slack.command("", "/ig_usage")
    assert len(slack.results()) == 1
    assert "*Your usage*" in slack.fake.responses[-1]["text"]


async def test_bad_flag_is_refused_privately_with_a_suggestion(slack: SlackHarness) -> None:
    """An invalid flag value is an ephemeral error naming the closest value; no API call.
    The command is still acknowledged with 200 at once (a listener error never turns into a
    late 404 to Slack)."""
    status, _ = await slack.command("a fox --ar 16:8")
    assert status == 200
    (reply,) = slack.fake.responses
    assert reply["response_type"] == "ephemeral" and "16:10" in reply["text"]
    assert slack.offline.requests == []
    assert slack.fake.channel_messages(CHANNEL) == []


async def test_settings_set_is_for_workspace_admins_only(slack: SlackHarness) -> None:
    """/settings set by a non-admin is refused (the core's check, users.info says no);
    a workspace admin (users.info) and a SLACK_ADMIN_USER_IDS member may change settings."""
    await slack.command("set daily_quota 5", "/settings", user=BOB)
    assert slack.fake.responses[-1]["text"] == messages.SETTINGS_ADMIN_ONLY.replace("`", "`")
    assert slack.fake.calls_to("users.info")[-1].args["user"] == BOB
    server = await slack.app.engine.server_settings("slack", "T0001")
    assert server.daily_quota == slack.settings.default_daily_quota != 5  # unchanged

    slack.fake.admins.add(ALICE)
    await slack.command("set daily_quota 5", "/settings", user=ALICE)
    assert "`daily_quota` is now `5`" in slack.fake.responses[-1]["text"]
    server = await slack.app.engine.server_settings("slack", "T0001")
    assert server.daily_quota == 5


async def test_configured_admin_ids_count_as_admins(tmp_path, fake_slack) -> None:
    """SLACK_ADMIN_USER_IDS make a user an admin without asking users.info."""
    harness = await SlackHarness(
        tmp_path, fake_slack, slack_admin_user_ids=frozenset({BOB})
    ).start()
    try:
        await harness.command("set max_num_images 2", "/settings", user=BOB)
    finally:
        await harness.stop()
    assert "`max_num_images` is now `2`" in fake_slack.responses[-1]["text"]
    assert fake_slack.calls_to("users.info") == []


async def test_quota_refusal_is_private_and_calls_no_api(slack: SlackHarness) -> None:
    """Over the daily quota: an ephemeral refusal with the numbers; Ideogram is not called."""
    slack.fake.admins.add(ALICE)
    await slack.command("set daily_quota 1", "/settings")
    await slack.command("two foxes --n 2", user=BOB)
    assert slack.fake.responses[-1]["text"].startswith("That would exceed your daily quota")
    assert slack.offline.requests == []
    assert slack.results() == []


async def test_safety_rejection_is_shown_in_place_of_the_result(slack: SlackHarness) -> None:
    """Ideogram's safety check (422): the channel sees one clear sentence with the job's
    caption, no files are uploaded and no buttons are offered."""
    slack.offline.faults.safety_reject_next = 1
    await slack.command("something unsafe")
    assert slack.fake.uploads == {}
    (message,) = slack.fake.channel_messages(CHANNEL)
    assert messages.SAFETY in message.text
    assert "something unsafe" in message.text
    assert [b["type"] for b in message.blocks] == ["section"]  # no buttons


async def test_retried_command_starts_one_job(slack: SlackHarness) -> None:
    """Slack re-delivering a command (X-Slack-Retry-Num, same trigger_id) starts one job and
    the retry is answered silently."""
    trigger = payloads.trigger_id()
    await slack.command("a heron --seed 9", trigger=trigger, settle=False)
    await slack.command(
        "a heron --seed 9",
        trigger=trigger,
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert len(slack.offline.requests) == 1
    assert len(slack.results()) == 1
    assert slack.fake.responses == []


async def test_result_goes_by_dm_when_the_bot_is_not_in_the_channel(slack: SlackHarness) -> None:
    """In a channel the bot may not post in, the result goes to the user by DM (im:write) and
    the user is told why, privately."""
    slack.fake.not_in_channel.add("CPRIVATE")
    await slack.command("a quiet lake --seed 2", channel="CPRIVATE")
    assert slack.fake.calls_to("conversations.open")[0].args["users"] == ALICE
    assert len(slack.results(f"D{ALICE}")) == 1
    assert slack.fake.shared[0]["channel"] == f"D{ALICE}"
    assert "invite me" in slack.fake.responses[0]["text"]


async def test_unexpected_error_shows_a_reference_id(
    slack: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack failure the bot does not expect is one sentence with a reference id for the
    user, and a full log entry for the operator; no exception text reaches the user."""
    original = slack.fake._m_files_completeUploadExternal
    slack.fake._m_files_completeUploadExternal = lambda args, token: {  # type: ignore[method-assign]
        "ok": False,
        "error": "internal_error",
    }
    with caplog.at_level(logging.ERROR, logger="adapters.slack.listeners"):
        await slack.command("a broken upload --seed 4")
    slack.fake._m_files_completeUploadExternal = original  # type: ignore[method-assign]
    # Shown where the job's status was (or privately when none was posted yet).
    shown = slack.ephemerals() + [m.text for m in slack.fake.channel_messages(CHANNEL)]
    (text,) = [t for t in shown if "Something went wrong" in t]
    assert "Something went wrong on our side (reference `" in text
    reference = text.split("`")[1]
    assert "internal_error" not in text
    assert any(reference in r.getMessage() for r in caplog.records)


async def test_every_spec_command_is_served(slack: SlackHarness) -> None:
    """Each core command gets an answer: a modal for image commands, text or a result for
    the rest (unknown commands are refused with the list)."""
    for name, spec in registry.for_platform("slack").items():
        text = {"imagine": "a pear --seed 5", "show": "nope12345678", "history": "1"}.get(name, "")
        await slack.command(text, f"/{name}")
        if spec.takes_image:
            view = slack.opened_view()
            assert view["title"]["text"] == f"/{name}"
    assert len(slack.fake.calls_to("views.open")) == 6
    await slack.command("", "/paint")
    assert "Unknown command `/paint`" in slack.fake.responses[-1]["text"]


async def test_show_reposts_a_past_job_with_live_buttons(slack: SlackHarness) -> None:
    """/show job_id posts the stored images again (same bytes) with working buttons."""
    await slack.command("a green door --seed 21")
    (first,) = slack.results()
    job_id = button(first, "U1")["action_id"].split(":")[2]
    await slack.command(job_id, "/show", user=BOB)
    again = slack.results()[-1]
    assert again.ts != first.ts and again.blocks == first.blocks
    first_share, second_share = slack.fake.shared
    assert [slack.fake.uploads[f] for f in first_share["files"]] == [
        slack.fake.uploads[f] for f in second_share["files"]
    ]
    await slack.press(again, "U1", user=BOB)
    assert slack.offline.requests[-1].path == "/upscale"


async def test_posted_messages_lead_back_to_their_job(slack: SlackHarness) -> None:
    """The result message and the status message are recorded for their job by channel and
    ``ts``, so either finds the job again, also after a restart."""
    slack.offline.faults.latency_s = 0.3  # long enough for the status message to be posted
    await slack.command("a quiet harbour --seed 3")
    (result,) = slack.results()
    (status,) = slack.statuses()
    job_id = result.blocks[-1]["elements"][0]["action_id"].split(":")[2]
    engine = slack.app.engine
    assert await engine.job_of_message("slack", result.channel, result.ts) == job_id
    assert await engine.job_of_message("slack", status.channel, status.ts) == job_id
    await slack.restart()
    assert await slack.app.engine.job_of_message("slack", CHANNEL, result.ts) == job_id
    assert await slack.app.engine.job_of_message("slack", CHANNEL, "1.000000") is None
