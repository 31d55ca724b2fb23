"""Result buttons: pressed with the custom_ids the bot actually posted, across a restart, twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot import messages
from storage import jobs as jobs_repo
from storage import usage as usage_repo
from tests.discord.conftest import ALICE, BOB, DiscordBot


async def _imagine(bot: DiscordBot, prompt: str, user=ALICE) -> tuple[dict[str, Any], str]:
    record = await bot.send(bot.fake.slash("imagine", user=user, prompt=prompt))
    message = await bot.result_of(record)
    return message, bot.fake.custom_ids(message)[0].split(":")[2]


def _button(fake, message: dict[str, Any], label: str) -> str:
    for row in message["components"]:
        for component in row["components"]:
            if component["label"] == label:
                return component["custom_id"]
    raise AssertionError(f"no {label} button on {fake.custom_ids(message)}")


async def test_upscale_vary_and_reroll_run_follow_up_jobs(bot: DiscordBot) -> None:
    """U1 upscales image 1, V2 remixes image 2 at weight 80, 🔄 re-runs with a new seed; each
    result is a new message, with its own buttons (Vary/Zoom Out/Remove BG on the upscale)."""
    fake = bot.fake
    message, job_id = await _imagine(bot, "a lighthouse --n 2 --seed 7")

    upscale = await bot.send(fake.click(message, _button(fake, message, "U1"), user=ALICE))
    upscaled = await bot.result_of(upscale)
    assert upscale.callback == {"type": 5}  # a new public "thinking" message for the new job
    assert upscaled["id"] != message["id"]
    labels = [c["label"] for row in upscaled["components"] for c in row["components"]]
    assert labels == ["Vary (Subtle)", "Vary (Strong)", "Zoom Out", "Remove BG"]
    upscale_job = fake.custom_ids(upscaled)[0].split(":")[2]
    job = await jobs_repo.get_job(bot.app.db, upscale_job)
    assert job is not None and job.parent_job_id == job_id and job.command == "upscale"
    assert job.parent_index == 0

    vary = await bot.send(fake.click(message, _button(fake, message, "V2"), user=ALICE))
    await bot.result_of(vary)
    reroll = await bot.send(fake.click(message, _button(fake, message, "🔄"), user=ALICE))
    rerolled = await bot.result_of(reroll)
    paths = [r.path for r in bot.offline.requests]
    assert paths == [
        "/v1/ideogram-v3/generate",
        "/upscale",
        "/v1/ideogram-v3/remix",
        "/v1/ideogram-v3/generate",
    ]
    assert b'name="image_weight"\r\n\r\n80' in bot.offline.requests[2].body
    assert "seed 7 ·" not in rerolled["content"]  # a new seed
    assert "**a lighthouse**" in rerolled["content"]

    strong = await bot.send(
        fake.click(upscaled, _button(fake, upscaled, "Vary (Strong)"), user=ALICE)
    )
    await bot.result_of(strong)
    assert b'name="image_weight"\r\n\r\n35' in bot.offline.requests[-1].body


async def test_anyone_may_press_and_the_job_is_theirs(bot: DiscordBot) -> None:
    """Bob presses V1 on Alice's result: the new job is Bob's, charged to Bob, mentions Bob."""
    fake = bot.fake
    message, _job_id = await _imagine(bot, "a red kite")
    record = await bot.send(fake.click(message, _button(fake, message, "V1"), user=BOB))
    varied = await bot.result_of(record)
    new_job = fake.custom_ids(varied)[0].split(":")[2]
    result = await bot.app.engine.result(new_job)
    assert result.owner_id == BOB.id
    assert f"<@{BOB.id}>" in varied["content"]
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    where = {"platform": "discord", "server_id": fake.guild_id, "day": day}
    bob = await usage_repo.user_totals(bot.app.db, user_id=BOB.id, **where)
    alice = await usage_repo.user_totals(bot.app.db, user_id=ALICE.id, **where)
    assert (bob.jobs, bob.images) == (1, 1)
    assert (alice.jobs, alice.images) == (1, 1)


async def test_buttons_work_after_a_restart(bot: DiscordBot) -> None:
    """The bot restarts between posting a result and a click on it: the click still works,
    with state from SQLite (discord.py rebuilds the button from the message's components)."""
    fake = bot.fake
    message, job_id = await _imagine(bot, "an old harbour --n 2")
    await bot.restart()
    assert fake.identified == 2

    record = await bot.send(fake.click(message, _button(fake, message, "U2"), user=ALICE))
    upscaled = await bot.result_of(record)
    new_job = fake.custom_ids(upscaled)[0].split(":")[2]
    job = await jobs_repo.get_job(bot.app.db, new_job)
    assert job is not None and job.parent_job_id == job_id and job.parent_index == 1
    assert [r.path for r in bot.offline.requests] == ["/upscale"]


async def test_double_click_starts_one_job(bot: DiscordBot) -> None:
    """Two clicks on the same button by the same user: one job; whichever click comes second
    is told so, privately."""
    fake = bot.fake
    message, job_id = await _imagine(bot, "a windmill")
    custom_id = _button(fake, message, "U1")
    first = await bot.send(fake.click(message, custom_id, user=ALICE))
    second = await bot.send(fake.click(message, custom_id, user=ALICE))
    await fake.wait_for(lambda: first.acked_type and second.acked_type)
    await bot.settle()
    # The two clicks race inside the bot; either may be the one that starts the job.
    results = [fake.original(r) for r in (first, second)]
    winner, loser = (first, second) if results[0] is not None else (second, first)
    await bot.result_of(winner)
    reply = await bot.ephemeral_reply(loser)
    assert fake.original(loser) is None  # its public "thinking" message was removed
    children = [
        j
        for j in await jobs_repo.recent_jobs(
            bot.app.db, platform="discord", owner_id=ALICE.id, limit=10
        )
        if j.parent_job_id == job_id
    ]
    assert len(children) == 1
    # The first click's job was still queued or running when the second arrived.
    assert reply["content"] in {
        messages.DUPLICATE_PRESS.format(job_id=children[0].id, status=status)
        for status in ("queued", "running")
    }
    assert [r.path for r in bot.offline.requests].count("/upscale") == 1


async def test_the_same_click_delivered_twice_starts_one_job(bot: DiscordBot) -> None:
    """The same INTERACTION_CREATE arrives twice: Discord refuses the second acknowledgement
    (40060) and the bot leaves it at that; one job, one API call."""
    fake = bot.fake
    message, job_id = await _imagine(bot, "a lantern")
    payload = fake.click(message, _button(fake, message, "U1"), user=ALICE)
    record = await bot.send(payload)
    await bot.send(payload)
    await bot.result_of(record)
    await bot.settle()
    callbacks = fake.calls_to("POST", f"/interactions/{record.id}/")
    assert sorted(c.status for c in callbacks) == [200, 400]
    assert [r.path for r in bot.offline.requests].count("/upscale") == 1
    children = [
        j
        for j in await jobs_repo.recent_jobs(
            bot.app.db, platform="discord", owner_id=ALICE.id, limit=10
        )
        if j.parent_job_id == job_id
    ]
    assert len(children) == 1 and children[0].request_key == f"discord:{record.id}"


async def test_a_button_of_an_unknown_job_is_answered_privately(bot: DiscordBot) -> None:
    """A click on a button whose job is gone gets the core's sentence, ephemerally."""
    fake = bot.fake
    message, _ = await _imagine(bot, "a moth")
    stale = dict(message)
    stale["components"] = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 2, "label": "U1", "custom_id": "ig:upscale:zzzzzzzzzzzz:1"}
            ],
        }
    ]
    record = await bot.send(fake.click(stale, "ig:upscale:zzzzzzzzzzzz:1", user=BOB))
    reply = await bot.ephemeral_reply(record)
    assert reply["content"] == messages.ACTION_STALE


async def test_buttons_and_reactions_work_in_a_dm(bot: DiscordBot) -> None:
    """In the bot's DM, U1 runs an upscale posted in the DM, and ❌ deletes a result there."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, guild=False, prompt="a dm moon"))
    message = await bot.result_of(record)
    click = await bot.send(
        fake.click(message, _button(fake, message, "U1"), user=ALICE, guild=False)
    )
    upscaled = await bot.result_of(click)
    assert upscaled["channel_id"] == fake.dm_channels[ALICE.id]
    await fake.react(upscaled, "❌", user=ALICE)
    await fake.wait_for(lambda: upscaled["id"] in fake.deleted)
