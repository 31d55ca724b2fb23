"""Slash commands through the real discord.py client, the fake Discord and the offline engine."""

from __future__ import annotations

import hashlib
import logging

import pytest

from bot import messages
from bot.commands.registry import for_platform
from storage import jobs as jobs_repo
from tests.discord.conftest import ADMIN, ALICE, BOB, DiscordBot
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_store import EPHEMERAL

EXPECTED_OPTIONS = {
    "imagine": [
        "prompt",
        "aspect_ratio",
        "negative_prompt",
        "seed",
        "speed",
        "style",
        "preset",
        "magic_prompt",
        "num_images",
        "palette",
        "transparent",
    ],
    "describe": ["image"],
    "upscale": ["image", "prompt"],
    "reframe": ["image", "resolution"],
    "replace-bg": ["image", "prompt"],
    "remove-bg": ["image"],
    "usage": [],
    "history": ["count"],
    "show": ["job_id"],
    "help": [],
}


async def test_commands_are_synced_globally_with_spec_names_and_core_help(bot: DiscordBot) -> None:
    """Start-up PUTs every command of docs/commands.md and the three context menus, described
    by the core."""
    synced = {c["name"]: c for c in bot.fake.synced["global"]}
    assert set(synced) == {
        "imagine",
        "remix",
        "describe",
        "upscale",
        "reframe",
        "replace-bg",
        "remove-bg",
        "usage",
        "history",
        "show",
        "settings",
        "help",
        "Remix this image",
        "Describe this image",
        "Upscale this image",
    }
    for name, options in EXPECTED_OPTIONS.items():
        assert [o["name"] for o in synced[name]["options"]] == options, name
    remix_options = [o["name"] for o in synced["remix"]["options"]]
    assert remix_options[:3] == ["image", "prompt", "image_weight"]
    assert synced["imagine"]["description"] == "Create images from a text prompt."
    assert {o["name"]: o["type"] for o in synced["remix"]["options"]}["image"] == 11
    imagine = {o["name"]: o for o in synced["imagine"]["options"]}
    assert [c["value"] for c in imagine["speed"]["choices"]] == [
        "flash",
        "turbo",
        "default",
        "quality",
    ]
    assert imagine["preset"]["autocomplete"] and imagine["aspect_ratio"]["autocomplete"]
    settings = synced["settings"]
    assert int(settings["default_member_permissions"]) == 1 << 5  # Manage Server
    assert settings["contexts"] == [0]  # guild only
    assert [o["name"] for o in settings["options"]] == ["show", "set", "reset"]
    menus = [c for c in synced.values() if c["type"] == 3]
    assert len(menus) == 3


async def test_commands_sync_only_to_the_configured_guild(
    fake_discord: FakeDiscord, discord_settings
) -> None:
    """With DISCORD_GUILD_ID the commands go to that guild, and nothing is synced globally."""
    settings = discord_settings.model_copy(update={"discord_guild_id": int(fake_discord.guild_id)})
    running = await DiscordBot(fake_discord, settings).start()
    try:
        assert "global" not in fake_discord.synced
        guild_commands = fake_discord.synced[f"guild:{fake_discord.guild_id}"]
        assert "imagine" in {c["name"] for c in guild_commands}
        record = await running.send(fake_discord.slash("help", user=ALICE))
        reply = await running.ephemeral_reply(record)
        assert "**Commands**" in reply["content"]
    finally:
        await running.stop()


async def test_imagine_with_flags_posts_stored_bytes_caption_and_buttons(bot: DiscordBot) -> None:
    """/imagine defers at once, then edits the deferral into the result: the stored image bytes
    as files, the result caption, and U/V/🔄 buttons; typed options and flags both apply."""
    fake = bot.fake
    record = await bot.send(
        fake.slash(
            "imagine", user=ALICE, prompt="a red fox --ar 16:9 --n 2", seed=42, speed="flash"
        )
    )
    message = await bot.result_of(record)

    callback = fake.calls_to("POST", f"/interactions/{record.id}/")[0]
    assert callback.json == {"type": 5}  # deferred, public, before any work
    assert message["flags"] & EPHEMERAL == 0
    job_id = fake.custom_ids(message)[0].split(":")[2]
    result = await bot.app.engine.result(job_id)
    assert result.owner_id == ALICE.id
    content = message["content"]
    assert content.startswith("**a red fox** — <@1300000000000001001>")
    assert "seed 42" in content and "speed flash" in content and "ar 16x9" in content
    assert f"job `{job_id}`" in content
    assert [str(u) for u in message["_allowed_mentions"]["users"]] == [ALICE.id]
    assert message["_allowed_mentions"]["parse"] == []

    uploaded = fake.calls_to("PATCH", "/messages/@original")[-1].files
    stored = [img.data for img in result.images]
    assert [f.data for f in uploaded] == stored  # the exact stored bytes
    assert [a["filename"] for a in message["attachments"]] == [
        f"ideogram_{job_id}_1.png",
        f"ideogram_{job_id}_2.png",
    ]
    assert fake.custom_ids(message) == [
        f"ig:upscale:{job_id}:1",
        f"ig:upscale:{job_id}:2",
        f"ig:vary:{job_id}:1",
        f"ig:vary:{job_id}:2",
        f"ig:reroll:{job_id}:0",
    ]
    labels = [c["label"] for row in message["components"] for c in row["components"]]
    assert labels == ["U1", "U2", "V1", "V2", "🔄"]
    request = bot.offline.requests[0]
    assert request.path == "/v1/ideogram-v3/generate"
    assert b"16x9" in request.body and b"FLASH" in request.body


async def test_no_ideogram_url_ever_reaches_discord(bot: DiscordBot) -> None:
    """Nothing the bot sends to Discord contains the Ideogram (offline engine) address."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a lighthouse --n 3"))
    await bot.result_of(record)
    await bot.settle()
    ideogram_root = bot.offline.base_url
    sent = [repr(c.json) for c in fake.calls]
    assert sent and not any(ideogram_root in text or "/images/" in text for text in sent)


async def test_progress_shows_queue_position_then_generating(one_lane_bot: DiscordBot) -> None:
    """With one image in flight at a time, a waiting job shows its queue position, then
    "Generating…", in its original response, before the result replaces it."""
    bot, fake = one_lane_bot, one_lane_bot.fake
    bot.offline.faults.latency_s = 0.2
    records = await bot.send_in_turn(
        fake.slash("imagine", user=user, prompt=prompt)
        for user, prompt in ((ALICE, "one"), (BOB, "two"), (ADMIN, "three"))
    )
    for record in records:
        await bot.result_of(record)
    edits = [
        c.json["content"] for c in fake.calls_to("PATCH", f"/{records[2].token}/messages/@original")
    ]
    job_id = fake.custom_ids(fake.original(records[2]))[0].split(":")[2]
    generating = edits.index(f"Generating… · job `{job_id}`")
    assert generating >= 1
    assert all(
        e.startswith("Queued: ") and e.endswith(f"job `{job_id}`") for e in edits[:generating]
    )
    assert edits[generating + 1 :] == [edits[-1]] and edits[-1].startswith("**three**")


async def test_help_is_ephemeral_and_from_the_core(bot: DiscordBot) -> None:
    """/help answers only the caller with the core's help text, split at Discord's 2,000."""
    record = await bot.send(bot.fake.slash("help", user=ALICE))
    await bot.ephemeral_reply(record)
    await bot.settle()
    assert record.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    parts = [bot.fake.original(record), *bot.fake.followups(record)]
    assert all(p is not None and p["flags"] & EPHEMERAL for p in parts)
    assert all(len(p["content"]) <= 2000 for p in parts)
    assert "\n".join(p["content"] for p in parts) == messages.help_text(for_platform("discord"))


async def test_settings_refused_for_a_member_without_manage_server(bot: DiscordBot) -> None:
    """A non-admin's /settings set is refused by the core's own check, ephemerally."""
    record = await bot.send(
        bot.fake.slash("settings", user=BOB, subcommand="set", key="daily_quota", value="1")
    )
    reply = await bot.ephemeral_reply(record)
    assert reply["content"] == messages.SETTINGS_ADMIN_ONLY
    server = await bot.app.engine.server_settings("discord", bot.fake.guild_id)
    assert server.daily_quota == bot.settings.default_daily_quota != 1  # unchanged


async def test_quota_refusal_is_ephemeral_and_calls_no_api(bot: DiscordBot) -> None:
    """An admin sets a daily quota of 1; a 2-image /imagine is refused privately, unbilled."""
    fake = bot.fake
    admin = await bot.send(
        fake.slash("settings", user=ADMIN, subcommand="set", key="daily_quota", value="1")
    )
    assert "`daily_quota` is now `1`" in (await bot.ephemeral_reply(admin))["content"]

    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="two foxes", num_images=2))
    reply = await bot.ephemeral_reply(record)
    assert reply["content"].startswith("That would exceed your daily quota of 1 image:")
    await bot.settle()
    assert bot.api_calls == 0
    # The public "thinking" message is gone; only Alice saw the refusal.
    assert fake.original(record) is None
    assert record.original_id in fake.deleted


async def test_bad_flag_is_refused_with_a_suggestion(bot: DiscordBot) -> None:
    """An inline flag with a bad value names the closest valid one; nothing is sent to the API."""
    record = await bot.send(bot.fake.slash("imagine", user=ALICE, prompt="a cat --ar 16:8"))
    reply = await bot.ephemeral_reply(record)
    assert "16:10" in reply["content"]
    await bot.settle()
    assert bot.api_calls == 0


async def test_safety_rejection_is_shown_clearly_on_the_result(bot: DiscordBot) -> None:
    """A 422 from Ideogram becomes the result message's one clear sentence, without buttons."""
    record = await bot.send(bot.fake.slash("imagine", user=ALICE, prompt="an unsafe-test image"))
    message = await bot.result_of(record)
    assert f"✖ {messages.SAFETY}" in message["content"]
    assert message["components"] == [] and message["attachments"] == []
    assert "safety check" in message["content"]


async def test_unexpected_error_shows_a_reference_not_the_exception(
    bot: DiscordBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything but a UserError: one sentence with a reference id; the log has the details."""

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(bot.app.engine, "handle", broken)
    with caplog.at_level(logging.ERROR, logger="adapters.discord.flow"):
        record = await bot.send(bot.fake.slash("usage", user=ALICE))
        reply = await bot.ephemeral_reply(record)
    assert reply["content"].startswith("Something went wrong on our side (reference `")
    assert "hunter2" not in reply["content"] and "RuntimeError" not in reply["content"]
    reference = reply["content"].split("`")[1]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "command=usage" in logged[0].getMessage()


async def test_usage_history_and_show_in_a_dm(bot: DiscordBot) -> None:
    """Commands work in the bot's DM: the job is posted there; /history and /show find it."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, guild=False, prompt="a dm fox"))
    message = await bot.result_of(record)
    assert message["channel_id"] == fake.dm_channels[ALICE.id]
    job_id = fake.custom_ids(message)[0].split(":")[2]
    job = await jobs_repo.get_job(bot.app.db, job_id)
    assert job is not None and job.server_id == "" and job.channel_id == message["channel_id"]

    history = await bot.send(fake.slash("history", user=ALICE, guild=False, count=5))
    assert job_id in (await bot.ephemeral_reply(history))["content"]
    usage = await bot.send(fake.slash("usage", user=ALICE, guild=False))
    assert "**Your usage**" in (await bot.ephemeral_reply(usage))["content"]

    show = await bot.send(fake.slash("show", user=ALICE, guild=False, job_id=job_id))
    shown = await bot.result_of(show)
    assert fake.custom_ids(shown) == fake.custom_ids(message)
    assert [hashlib.sha256(f.data).hexdigest() for f in fake.calls[-1].files] == [
        hashlib.sha256(f.data).hexdigest()
        for f in fake.calls_to("PATCH", f"/{record.token}/messages/@original")[-1].files
    ]


async def test_autocomplete_offers_presets_and_aspect_ratios(bot: DiscordBot) -> None:
    """Typing in preset / aspect_ratio gets matching choices from the core's lists."""
    fake = bot.fake
    record = await bot.send(fake.autocomplete("imagine", "preset", "water", user=ALICE))
    await fake.wait_for(lambda: record.callback)
    assert record.callback["type"] == 8
    assert [c["value"] for c in record.callback["data"]["choices"]] == ["Watercolor"]

    record = await bot.send(fake.autocomplete("imagine", "aspect_ratio", "16x", user=ALICE))
    await fake.wait_for(lambda: record.callback)
    assert [c["value"] for c in record.callback["data"]["choices"]] == ["16:9", "16:10"]
