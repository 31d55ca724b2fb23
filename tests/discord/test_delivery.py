"""Getting results to people: an expired interaction token, jobs resumed after a restart, and the
✉️ / ❌ reactions."""

from __future__ import annotations

from typing import Any

from bot import messages
from storage import jobs as jobs_repo
from tests.discord.conftest import ADMIN, ALICE, BOB, DiscordBot
from tests.discord.fake_discord import FakeDiscord


def _job_of(fake: FakeDiscord, message: dict[str, Any]) -> str:
    return fake.custom_ids(message)[0].split(":")[2]


async def _linked_job(bot: DiscordBot, message: dict[str, Any]) -> str | None:
    """The job the bot recorded for a posted message, if any."""
    return await bot.app.engine.job_of_message("discord", message["channel_id"], message["id"])


def _strip_job_marks(message: dict[str, Any]) -> None:
    """Leave nothing on a stored message that names its job: no buttons, unrelated file names."""
    message["components"] = []
    for n, attachment in enumerate(message["attachments"]):
        attachment["filename"] = f"holiday-{n}.png"


async def test_an_expired_token_falls_back_to_a_channel_message(bot: DiscordBot) -> None:
    """When every webhook path answers 50027 (the 15 minutes are over), the result is posted
    in the channel with the bot token, and the stale "thinking" message is removed."""
    fake = bot.fake
    fake.token_ttl_s = 0.0  # the callback still works; every webhook call is too late
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a late fox --n 2"))
    posted = await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
    await bot.settle()
    message = posted[0]
    assert any(c.status == 401 for c in fake.calls_to("PATCH", record.token))
    create = fake.calls_to("POST", f"/channels/{fake.channel_id}/messages")[0]
    assert create.auth == f"Bot {fake.token}"
    job_id = _job_of(fake, message)
    stored = [img.data for img in (await bot.app.engine.result(job_id)).images]
    assert [f.data for f in create.files] == stored
    assert message["content"].startswith("**a late fox** — <@")
    assert record.original_id in fake.deleted
    assert fake.calls_to("DELETE", f"/channels/{fake.channel_id}/messages/{record.original_id}")
    assert await _linked_job(bot, message) == job_id


async def test_a_job_resumed_after_a_restart_is_posted_in_its_channel(
    one_lane_bot: DiscordBot,
) -> None:
    """A job still queued when the bot stops is run at the next start and its result posted in
    the channel it came from; the job that was running is reported as interrupted there."""
    bot, fake = one_lane_bot, one_lane_bot.fake
    bot.offline.faults.hang_next = 1  # the first job never gets an answer
    first = await bot.send(fake.slash("imagine", user=ALICE, prompt="stuck"))
    await bot.until(lambda: bot.offline.requests)
    second = await bot.send(fake.slash("imagine", user=BOB, prompt="waiting"))
    await fake.wait_for(lambda: second.acked_type)
    await bot.until(lambda: jobs_repo.list_jobs_by_status(bot.app.db, ["queued"]))
    assert first.acked_type == 5
    await bot.restart()
    posted = await fake.wait_for(lambda: [m for m in fake.channel_messages() if m["attachments"]])
    message = posted[0]
    assert message["content"].startswith("**waiting** — <@" + BOB.id)
    assert "ig:upscale:" in fake.custom_ids(message)[0]
    job = await jobs_repo.get_job(bot.app.db, _job_of(fake, message))
    assert job is not None and job.status == "succeeded" and job.owner_id == BOB.id
    assert len(message["attachments"]) == 1
    assert await bot.until(lambda: _linked_job(bot, message)) == job.id


async def test_mail_reaction_dms_the_images_to_whoever_reacts(bot: DiscordBot) -> None:
    """✉️ by Bob on Alice's result: Bob gets the exact images in a DM, without buttons."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a postcard --n 2"))
    message = await bot.result_of(record)
    await fake.react(message, "✉️", user=BOB)
    dm_id = await fake.wait_for(lambda: fake.dm_channels.get(BOB.id))
    dm = (await fake.wait_for(lambda: fake.channel_messages(dm_id)))[0]
    sent = fake.calls_to("POST", f"/channels/{dm_id}/messages")[0]
    stored = [img.data for img in (await bot.app.engine.result(_job_of(fake, message))).images]
    assert [f.data for f in sent.files] == stored
    assert dm["components"] == [] and "**a postcard**" in dm["content"]
    assert sent.json["allowed_mentions"]["parse"] == []


async def test_cross_reaction_by_the_requester_deletes_the_result(bot: DiscordBot) -> None:
    """❌ by someone else does nothing; ❌ by the requester deletes the result message."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a mistake"))
    message = await bot.result_of(record)
    await fake.react(message, "❌", user=BOB)
    await fake.react(message, "👍", user=ALICE)
    await fake.react(message, "❌", user=ALICE)
    await fake.wait_for(lambda: message["id"] in fake.deleted)
    await bot.settle()
    deletes = [c for c in fake.calls if c.method == "DELETE"]
    assert [c.path.rsplit("/", 1)[1] for c in deletes] == [message["id"]]
    job = await jobs_repo.get_job(bot.app.db, _job_of(fake, message))
    assert job is not None and job.status == "succeeded"  # the job and its images stay


async def test_reactions_work_on_results_posted_before_a_restart(bot: DiscordBot) -> None:
    """After a restart the job is found from the link stored when the result was posted:
    the message itself is never read (no Read Message History needed)."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="an heirloom"))
    message = await bot.result_of(record)
    await bot.restart()
    await fake.react(message, "❌", user=ALICE)
    await fake.wait_for(lambda: message["id"] in fake.deleted)
    assert not fake.calls_to("GET", f"/channels/{fake.channel_id}/messages/{message['id']}")


async def test_mail_and_cross_after_a_restart_need_nothing_on_the_message(
    bot: DiscordBot,
) -> None:
    """After a restart, on a result whose files have unrelated names and which has no buttons:
    ✉️ still DMs the job's images and ❌ by the requester still deletes the message."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a keepsake --n 2"))
    message = await bot.result_of(record)
    job_id = _job_of(fake, message)
    await bot.restart()
    _strip_job_marks(message)
    await fake.react(message, "✉️", user=BOB)
    dm_id = await fake.wait_for(lambda: fake.dm_channels.get(BOB.id))
    await fake.wait_for(lambda: fake.channel_messages(dm_id))
    sent = fake.calls_to("POST", f"/channels/{dm_id}/messages")[0]
    stored = [img.data for img in (await bot.app.engine.result(job_id)).images]
    assert [f.data for f in sent.files] == stored
    await fake.react(message, "❌", user=ALICE)
    await fake.wait_for(lambda: message["id"] in fake.deleted)
    job = await jobs_repo.get_job(bot.app.db, job_id)
    assert job is not None and job.status == "succeeded"


async def test_every_message_that_shows_a_job_is_linked_to_it(bot: DiscordBot) -> None:
    """The result (the original response), a /show re-post and the ✉️ DM copy are each linked
    to their job; a message the bot did not post for a job is linked to nothing."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a linked fox"))
    message = await bot.result_of(record)
    await bot.settle()
    job_id = _job_of(fake, message)
    assert await _linked_job(bot, message) == job_id
    show = await bot.send(fake.slash("show", user=BOB, job_id=job_id))
    shown = await bot.result_of(show)
    await bot.settle()
    assert shown["id"] != message["id"] and await _linked_job(bot, shown) == job_id
    await fake.react(message, "✉️", user=BOB)
    dm_id = await fake.wait_for(lambda: fake.dm_channels.get(BOB.id))
    (copy,) = await fake.wait_for(lambda: fake.channel_messages(dm_id))
    await bot.settle()
    assert await _linked_job(bot, copy) == job_id
    photo = fake.add_file("cat.png", b"not an image", "image/png")
    other = fake.user_message(author=ALICE, attachments=[photo])
    assert await _linked_job(bot, other) is None


async def test_cross_reaction_cancels_a_job_that_is_still_queued(one_lane_bot: DiscordBot) -> None:
    """❌ by the requester on the progress message of a queued job: the job is cancelled
    before it reaches the API, and the message is deleted."""
    bot, fake = one_lane_bot, one_lane_bot.fake
    bot.offline.faults.latency_s = 0.5
    records = await bot.send_in_turn(
        fake.slash("imagine", user=user, prompt=prompt)
        for user, prompt in ((ALICE, "first"), (BOB, "second"), (ADMIN, "third"))
    )
    third = records[2]
    await fake.wait_for(
        lambda: any(
            "Queued" in (c.json or {}).get("content", "")
            for c in fake.calls_to("PATCH", third.token)
        )
    )
    progress = fake.original(third)
    assert progress is not None
    await fake.react(progress, "❌", user=ADMIN)
    await fake.wait_for(lambda: progress["id"] in fake.deleted)
    await bot.result_of(records[1])
    await bot.settle()
    job_id = progress["content"].split("`")[1]
    job = await jobs_repo.get_job(bot.app.db, job_id)
    assert job is not None and job.status == "cancelled"
    prompts = [r.body for r in bot.offline.requests]
    assert not any(b"third" in body for body in prompts)
    assert len(prompts) == 2


async def test_cancel_button_on_a_queued_job_is_for_its_owner_only(
    one_lane_bot: DiscordBot,
) -> None:
    """The progress message of a waiting job carries the core's Cancel button: another user's
    press is refused privately; the owner's cancels the job, which never reaches the API."""
    bot, fake = one_lane_bot, one_lane_bot.fake
    bot.offline.faults.latency_s = 0.5
    first = await bot.send(fake.slash("imagine", user=ALICE, prompt="first"))
    await fake.wait_for(lambda: first.acked_type)
    second = await bot.send(fake.slash("imagine", user=BOB, prompt="second"))

    def queued_progress() -> dict[str, Any] | None:
        message = fake.original(second)
        if message and message["content"].startswith("Queued") and message["components"]:
            return message
        return None

    progress = await fake.wait_for(queued_progress)
    (cancel_id,) = fake.custom_ids(progress)
    job_id = cancel_id.split(":")[2]
    assert cancel_id == f"ig:cancel:{job_id}:0"

    refused = await bot.send(fake.click(progress, cancel_id, user=ALICE))
    reply = await bot.ephemeral_reply(refused)
    assert reply["content"] == messages.NOT_YOURS_TO_CANCEL.format(job_id=job_id)
    assert refused.callback == {"type": 5, "data": {"flags": 64}}  # private, no new job

    owner = await bot.send(fake.click(progress, cancel_id, user=BOB))
    assert (await bot.ephemeral_reply(owner))["content"] == messages.CANCELLED
    ended = await bot.result_of(second)
    assert ended["content"].endswith(f"✖ {messages.CANCELLED_BY_OWNER}")
    assert ended["components"] == []
    await bot.result_of(first)
    await bot.settle()
    job = await jobs_repo.get_job(bot.app.db, job_id)
    assert job is not None and job.status == "cancelled"
    assert not any(b"second" in r.body for r in bot.offline.requests)
