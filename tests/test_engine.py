"""The command engine end to end: console lines in, images and refusals out, against the
offline engine over HTTP, with a real SQLite database and image store."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from bot.errors import InvalidImage, InvalidInput, NotAllowed, QuotaExceeded, UserError
from bot.types import Caller, Invocation, JobResult, Press, TextReply
from storage import JobRecord
from storage import jobs as jobs_repo
from storage import usage as usage_repo
from tests.conftest import DEMO_PHOTO, Harness, eventually, png_bytes, sent_field

ADMIN = Caller(platform="console", user_id="admin", server_id="s1", channel_id="c1", is_admin=True)
ALICE = Caller(platform="console", user_id="alice", server_id="s1", channel_id="c1")
BOB = Caller(platform="console", user_id="bob", server_id="s1", channel_id="c1")


async def imagine(h: Harness, text: str, caller: Caller = ALICE, **kw: object) -> JobResult:
    reply = await h.engine.handle(Invocation("imagine", caller, text=text, **kw))  # type: ignore[arg-type]
    assert isinstance(reply, JobResult)
    return reply


def press_id(result: JobResult, label: str) -> str:
    return next(a.action_id for a in result.actions if a.label == label)


async def test_imagine_with_flags_makes_images_and_buttons(harness: Harness):
    """/imagine with flags: one API call with those fields, stored images, U/V/🔄 buttons."""
    result = await imagine(
        harness, "a lighthouse at dusk --ar 16:9 --n 2 --seed 42 --speed quality"
    )
    assert result.ok
    assert len(result.images) == 2
    assert all(i.data and i.width > i.height for i in result.images)
    assert [a.label for a in result.actions] == ["U1", "U2", "V1", "V2", "🔄"]
    assert all(len(a.action_id) <= 100 for a in result.actions)
    sent = harness.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/generate"
    assert await sent_field(sent, "aspect_ratio") == "16x9"
    assert await sent_field(sent, "seed") == "42"
    assert await sent_field(sent, "rendering_speed") == "QUALITY"
    assert result.caption.seed == "42, 43"  # each image has its own seed
    assert result.caption.prompt == "a lighthouse at dusk"


async def test_follow_ups_upscale_vary_reroll(harness: Harness):
    """U1 upscales image 1; V1 remixes it at weight 80 with the prompt; 🔄 draws a new seed."""
    first = await imagine(harness, "a red fox in snow --seed 5 --n 2")
    upscaled = await harness.engine.press(Press(press_id(first, "U1"), BOB))
    assert isinstance(upscaled, JobResult) and upscaled.ok
    assert upscaled.owner_id == "bob"  # the presser owns and pays for it
    assert harness.offline.requests[-1].path == "/upscale"
    assert upscaled.images[0].width == first.images[0].width * 2
    assert [a.label for a in upscaled.actions] == [
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out",
        "Remove BG",
    ]

    varied = await harness.engine.press(Press(press_id(first, "V1"), ALICE))
    assert isinstance(varied, JobResult) and varied.ok
    sent = harness.offline.requests[-1]
    assert sent.path == "/v1/ideogram-v3/remix"
    assert await sent_field(sent, "image_weight") == "80"
    assert await sent_field(sent, "prompt") == "a red fox in snow"

    rerolled = await harness.engine.press(Press(press_id(first, "🔄"), ALICE))
    assert isinstance(rerolled, JobResult) and rerolled.ok
    assert harness.offline.requests[-1].path == "/v1/ideogram-v3/generate"
    assert await sent_field(harness.offline.requests[-1], "seed") is None
    assert rerolled.caption.prompt == first.caption.prompt
    assert rerolled.caption.seed != first.caption.seed

    strong = await harness.engine.press(Press(press_id(upscaled, "Vary (Strong)"), ALICE))
    assert isinstance(strong, JobResult) and strong.ok
    assert await sent_field(harness.offline.requests[-1], "image_weight") == "35"
    zoomed = await harness.engine.press(Press(press_id(upscaled, "Zoom Out"), ALICE))
    assert isinstance(zoomed, JobResult) and zoomed.ok
    assert harness.offline.requests[-1].path == "/v1/ideogram-v3/reframe"
    removed = await harness.engine.press(Press(press_id(upscaled, "Remove BG"), ALICE))
    assert isinstance(removed, JobResult) and removed.ok
    with Image.open(io.BytesIO(removed.images[0].data or b"")) as im:
        assert im.mode == "RGBA"
    job = await jobs_repo.get_job(harness.db, varied.job_id)
    assert job is not None and job.parent_job_id == first.job_id and job.parent_index == 0


async def test_remix_and_describe_a_real_photo_then_imagine_from_a_description(harness: Harness):
    """/remix and /describe on the shipped photograph; Imagine 1 uses description 1."""
    lines = [
        f'/remix "{DEMO_PHOTO}" the same cup as a watercolor --weight 40',
        f"/describe {DEMO_PHOTO}",
    ]
    for line in lines:
        await harness.console.run_line(line)
    remix, describe = harness.console.results[-2:]
    assert remix.ok and remix.images[0].data
    assert describe.ok and describe.descriptions
    assert describe.actions[0].label == "Imagine 1"
    imagined = await harness.console.run_line("Imagine 1")
    assert isinstance(imagined, JobResult) and imagined.ok
    assert imagined.caption.prompt == describe.descriptions[0]


async def test_console_saves_images_and_prints_their_paths(harness: Harness):
    await harness.console.run_line("/imagine a blue bird --n 2")
    out = harness.output.getvalue()
    assert len(harness.console.saved) == 2
    for path in harness.console.saved:
        assert path.exists() and str(path) in out
        with Image.open(path) as im:
            im.load()
    assert "[U1] [U2] [V1] [V2] [🔄]" in out


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a cat --ar 16:8", "16:10"),
        ("a cat --speed fsat", "flash"),
        ("a cat --aspect 16:9", "--ar"),
        ("--seed 4", "describe the image"),
        ("a cat --n 9", "1"),
        ("x" * 10_000, "10000"),
    ],
)
async def test_bad_flags_are_refused_before_any_api_call(harness: Harness, text, fragment):
    before = harness.api_calls
    with pytest.raises(InvalidInput) as caught:
        await imagine(harness, text)
    assert fragment.lower() in caught.value.message.lower()
    assert harness.api_calls == before


def _truncated_png() -> bytes:
    return png_bytes((400, 400), "green")[:200]


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (14_000, 14_000)).save(out, format="PNG")
    return out.getvalue()


def _huge() -> bytes:
    import os

    out = io.BytesIO()
    Image.frombytes("RGB", (3300, 3300), os.urandom(3300 * 3300 * 3)).save(out, format="BMP")
    data = out.getvalue()
    assert len(data) > 30 * 1024 * 1024
    return data


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"just some text\n"),
        ("broken.png", _truncated_png()),
        ("bomb.png", _bomb()),
        ("empty.png", b""),
    ],
)
async def test_unusable_images_are_refused_before_any_api_call(harness: Harness, name, data):
    path = harness.settings.data_dir.parent / name
    path.write_bytes(data)
    before = harness.api_calls
    reply = await harness.console.run_line(f"/remix {path} a watercolor")
    assert reply is None
    assert "✖" in harness.output.getvalue()
    assert harness.api_calls == before
    with pytest.raises(InvalidImage):
        from bot.images import prepare_input_image

        prepare_input_image(data, name)


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
async def test_gif_and_bmp_are_converted_to_png(harness: Harness, fmt):
    path = harness.settings.data_dir.parent / f"in.{fmt.lower()}"
    path.write_bytes(png_bytes((120, 90), "orange", fmt=fmt))
    reply = await harness.console.run_line(f"/describe {path}")
    assert isinstance(reply, JobResult) and reply.ok
    sent = harness.offline.requests[-1].body
    assert b"Content-Type: image/png" in sent


async def test_a_30_mb_image_is_downscaled_to_fit(harness: Harness):
    path = harness.settings.data_dir.parent / "huge.bmp"
    path.write_bytes(_huge())
    reply = await harness.console.run_line(f"/describe {path}")
    assert isinstance(reply, JobResult) and reply.ok
    assert len(harness.offline.requests[-1].body) < 10 * 1024 * 1024 + 4096


async def test_daily_quota_refuses_with_no_api_call_and_rejected_jobs_are_not_charged(
    harness: Harness,
):
    await harness.engine.handle(Invocation("settings", ADMIN, text="set daily_quota 3"))
    await imagine(harness, "a fox --n 2")
    before = harness.api_calls
    with pytest.raises(QuotaExceeded) as caught:
        await imagine(harness, "a fox --n 2")
    assert "quota of 3 images: you have used 2 today" in caught.value.message
    assert harness.api_calls == before
    # A safety rejection is not charged: quota left stays 1.
    harness.offline.faults.safety_reject_next = 1
    failed = await imagine(harness, "a fox")
    assert failed.status == "failed" and "safety" in (failed.error or "")
    usage = await harness.engine.handle(Invocation("usage", ALICE))
    assert isinstance(usage, TextReply)
    assert "1 of 3 images left" in usage.text


async def test_monthly_budget_refuses_with_no_api_call(harness: Harness):
    await harness.engine.handle(Invocation("settings", ADMIN, text="set monthly_budget_usd 0.10"))
    await imagine(harness, "a fox --n 3 --speed turbo")  # 0.09
    before = harness.api_calls
    with pytest.raises(QuotaExceeded) as caught:
        await imagine(harness, "a fox --speed turbo", caller=BOB)  # server-wide
    assert "$0.09 of $0.10" in caught.value.message
    assert harness.api_calls == before


async def test_settings_changes_need_an_admin(harness: Harness):
    with pytest.raises(NotAllowed):
        await harness.engine.handle(Invocation("settings", ALICE, text="set daily_quota 5"))
    with pytest.raises(NotAllowed):
        await harness.engine.handle(Invocation("settings", ALICE, text="reset daily_quota"))
    shown = await harness.engine.handle(Invocation("settings", ALICE, text="show"))
    assert isinstance(shown, TextReply) and "daily_quota" in shown.text
    with pytest.raises(InvalidInput, match="default_speed"):
        await harness.engine.handle(Invocation("settings", ADMIN, text="set default_sped turbo"))
    ok = await harness.engine.handle(Invocation("settings", ADMIN, text="set default_speed flash"))
    assert isinstance(ok, TextReply) and "flash" in ok.text
    result = await imagine(harness, "a fox")
    assert result.caption.speed == "FLASH"


async def test_blocked_words_and_allowed_channels(harness: Harness):
    await harness.engine.handle(
        Invocation("settings", ADMIN, text="set blocked_words gore, spider")
    )
    before = harness.api_calls
    with pytest.raises(NotAllowed, match="spider"):
        await imagine(harness, "a big Spider web")
    await harness.engine.handle(Invocation("settings", ADMIN, text="set allowed_channels c9"))
    with pytest.raises(NotAllowed, match="channel"):
        await imagine(harness, "a fox")
    with pytest.raises(NotAllowed, match="channel"):
        await harness.engine.handle(Invocation("usage", ALICE))
    # /settings still answers there, so an admin can fix the list where they are.
    shown = await harness.engine.handle(Invocation("settings", ALICE, text="show"))
    assert isinstance(shown, TextReply) and "c9" in shown.text
    assert harness.api_calls == before


async def test_api_failures_become_one_clear_sentence_and_are_not_charged(harness: Harness):
    harness.offline.faults.server_error_next = 1
    failed = await imagine(harness, "a fox")
    assert failed.status == "failed"
    assert failed.error and "not re-sent" in failed.error
    assert len([r for r in harness.offline.requests if r.status == 500]) == 1
    assert await usage_repo.ledger_by_job(harness.db) == {}


async def test_withheld_images_are_reported_and_billed(harness: Harness):
    harness.offline.faults.withhold_indices = {0}
    result = await imagine(harness, "a fox --n 2")
    assert result.ok
    assert result.images[0].withheld and not result.images[1].withheld
    assert result.caption.note and "withheld" in result.caption.note
    assert [a.label for a in result.actions] == ["U2", "V2", "🔄"]
    ledger = await usage_repo.ledger_by_job(harness.db)
    assert ledger[result.job_id][0] == 2


async def test_double_click_starts_one_job(harness: Harness):
    first = await imagine(harness, "a fox")
    before = harness.api_calls
    replies = await asyncio.gather(
        harness.engine.press(Press(press_id(first, "U1"), BOB)),
        harness.engine.press(Press(press_id(first, "U1"), BOB)),
    )
    kinds = sorted(type(r).__name__ for r in replies)
    assert kinds == ["JobResult", "TextReply"]
    assert harness.api_calls == before + 1


async def test_pressing_again_after_the_result_is_a_new_request(harness: Harness):
    """A second press of V1 after the first variation has finished starts a second job at
    once; a press while it is still running is answered truthfully with its state."""
    first = await imagine(harness, "a fox")
    varied = await harness.engine.press(Press(press_id(first, "V1"), BOB))
    assert isinstance(varied, JobResult) and varied.ok
    again = await harness.engine.press(Press(press_id(first, "V1"), BOB))
    assert isinstance(again, JobResult) and again.ok and again.job_id != varied.job_id

    harness.offline.faults.latency_s = 1.0
    running = asyncio.create_task(harness.engine.press(Press(press_id(first, "V1"), BOB)))

    async def started() -> bool:
        return harness.engine.runner.in_flight > 0

    await eventually(started)
    duplicate = await harness.engine.press(Press(press_id(first, "V1"), BOB))
    assert isinstance(duplicate, TextReply) and duplicate.duplicate
    assert duplicate.text.endswith("is still running.")
    harness.offline.faults.latency_s = 0.0
    await running


async def test_the_same_delivery_twice_starts_one_job(harness: Harness):
    one = await imagine(harness, "a fox", request_key="interaction-1")
    again = await harness.engine.handle(
        Invocation("imagine", ALICE, text="a fox", request_key="interaction-1")
    )
    assert isinstance(again, TextReply) and again.duplicate and one.job_id in again.text


async def test_restart_keeps_history_and_working_buttons(harness: Harness):
    """A new engine on the same database and data dir: /history lists the job, U1 still works."""
    first = await imagine(harness, "a castle in the clouds --seed 9")
    await harness.restart()
    history = await harness.engine.handle(Invocation("history", ALICE))
    assert (
        isinstance(history, TextReply) and first.job_id in history.text and "seed 9" in history.text
    )
    shown = await harness.engine.handle(Invocation("show", ALICE, text=first.job_id))
    assert isinstance(shown, JobResult) and shown.images[0].data == first.images[0].data
    upscaled = await harness.engine.press(Press(press_id(shown, "U1"), ALICE))
    assert isinstance(upscaled, JobResult) and upscaled.ok


async def test_restart_resumes_queued_jobs_and_fails_running_ones_honestly(harness: Harness):
    harness.offline.faults.hang_next = 1
    harness.settings.max_user_active_jobs = 5
    task = asyncio.create_task(imagine(harness, "stuck job"))
    await eventually(lambda: harness.engine.runner.in_flight)
    running = [j for j in await jobs_repo.list_jobs_by_status(harness.db, ["running"])]
    assert len(running) == 1
    await harness.restart()
    task.cancel()
    job = await jobs_repo.get_job(harness.db, running[0].id)
    assert job is not None and job.status == "failed" and "restart" in (job.error or "")
    assert await usage_repo.ledger_by_job(harness.db) == {}


async def test_unknown_command_and_stale_button(harness: Harness):
    with pytest.raises(InvalidInput, match="/imagine"):
        await harness.engine.handle(Invocation("imagin", ALICE, text="a fox"))
    with pytest.raises(UserError):
        await harness.engine.press(Press("ig:upscale:aaaaaaaaaaaa:1", ALICE))
    with pytest.raises(UserError):
        await harness.engine.press(Press("not-ours", ALICE))


async def test_owner_cancels_a_queued_job(harness: Harness):
    harness.engine.runner.max_in_flight = 1
    harness.offline.faults.latency_s = 0.5
    harness.settings.max_user_active_jobs = 5
    first = asyncio.create_task(imagine(harness, "first"))
    second = asyncio.create_task(imagine(harness, "second"))

    async def one_running_one_queued() -> list[JobRecord]:
        # The queued one cannot start before the running one ends (one place in flight).
        running = await jobs_repo.list_jobs_by_status(harness.db, ["running"])
        queued = await jobs_repo.list_jobs_by_status(harness.db, ["queued"])
        return queued if running and queued else []

    queued = await eventually(one_running_one_queued)
    assert queued
    with pytest.raises(NotAllowed):
        await harness.engine.cancel(queued[0].id, BOB)
    reply = await harness.engine.cancel(queued[0].id, ALICE)
    assert reply.text == "Cancelled."
    results = await asyncio.gather(first, second)
    assert sorted(r.status for r in results) == ["cancelled", "succeeded"]
    assert len(harness.offline.requests) == 1


async def test_typed_options_and_inline_flags_are_checked_together(harness: Harness):
    """A typed `transparent` with an inline `--style` conflicts: refused, nothing sent."""
    before = harness.api_calls
    with pytest.raises(InvalidInput, match="--transparent"):
        await imagine(harness, "a fox sticker --style design", options={"transparent": True})
    assert harness.api_calls == before
