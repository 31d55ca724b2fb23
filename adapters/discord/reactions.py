"""Reactions on results: ✉️ DMs the images, ❌ by the requester deletes the result.

Reactions arrive as ``MESSAGE_REACTION_ADD`` gateway events (intents ``GUILD_MESSAGE_REACTIONS``
and ``DIRECT_MESSAGE_REACTIONS``, not privileged). Most reactions in a server are on other
people's messages, so the event's ``message_author_id`` filters them out before any work. The
job a message shows is the one linked to it when the bot posted it
(:meth:`bot.engine.Engine.job_of_message`); the link is stored, so it holds after a restart,
and a message without one (not ours, or posted before links were recorded) is ignored. Nothing
is said back in the channel: a reaction has no private reply, so failures are only logged.

Platform doc followed: discord-api-docs "Gateway events › Message Reaction Add", "Channel ›
Create Message / Delete Message", "User › Create DM".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from adapters.discord import render
from bot.errors import UserError
from bot.types import Caller

if TYPE_CHECKING:
    from adapters.discord.client import IdeogramBot

log = logging.getLogger(__name__)

#: ✉️ with and without the emoji variation selector (clients send either).
MAIL = frozenset({"\u2709\ufe0f", "\u2709"})
CROSS = frozenset({"\u274c"})


async def on_reaction(client: IdeogramBot, payload: discord.RawReactionActionEvent) -> None:
    """Handle one reaction added anywhere the bot can see.

    ✉️ from anyone: the job's images are sent to them in a DM (files, caption, no buttons).
    ❌ from the requester: the message is deleted, and the job cancelled if still queued.
    Other emoji, other authors' messages and the bot's own reactions are ignored.
    """
    me = client.user
    if me is None or payload.user_id == me.id or payload.emoji.id is not None:
        return
    name = payload.emoji.name or ""
    if name not in MAIL and name not in CROSS:
        return
    if payload.message_author_id is not None and payload.message_author_id != me.id:
        return
    try:
        job_id = await client.engine.job_of_message(
            "discord", str(payload.channel_id), str(payload.message_id)
        )
        if job_id is None:
            return
        if name in MAIL:
            await mail_images(client, job_id, payload.user_id)
        else:
            await delete_result(client, job_id, payload)
    except Exception:
        log.exception(
            "reaction %s by %s on message %s failed", name, payload.user_id, payload.message_id
        )


async def mail_images(client: IdeogramBot, job_id: str, user_id: int) -> None:
    """DM the images of ``job_id`` to ``user_id`` (✉️). Nothing is sent for a job without any."""
    try:
        result = await client.engine.result(job_id)
    except UserError:
        return
    if not result.ok or not any(img.data is not None for img in result.images):
        return
    files = await render.fit_files(
        result.images, limit_bytes=discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
    )
    dm = await client.http.start_private_message(user_id)
    channel = client.get_partial_messageable(int(dm["id"]), type=discord.ChannelType.private)
    try:
        message = await channel.send(
            content=render.caption_markdown(result.caption),
            files=[f.to_file() for f in files],
            allowed_mentions=discord.AllowedMentions.none(),
        )
    except discord.Forbidden:
        # The user does not accept DMs from this server's members (Discord error 50007).
        log.info("cannot DM user %s the images of job %s", user_id, job_id)
        return
    await client.flow.link(channel.id, message.id, job_id)


async def delete_result(
    client: IdeogramBot, job_id: str, payload: discord.RawReactionActionEvent
) -> None:
    """Delete the message of ``job_id`` if the requester reacted ❌; cancel it if queued."""
    try:
        result = await client.engine.result(job_id)
    except UserError:
        return
    if result.owner_id != str(payload.user_id):
        return
    if result.status == "queued":
        caller = Caller(
            platform="discord",
            user_id=str(payload.user_id),
            server_id=str(payload.guild_id or ""),
            channel_id=str(payload.channel_id),
        )
        try:
            await client.engine.cancel(job_id, caller)
        except UserError as exc:
            log.info("❌ could not cancel job %s: %s", job_id, exc.message)
    try:
        await client.http.delete_message(payload.channel_id, payload.message_id)
    except discord.NotFound:
        pass
    log.info("job %s: message %s deleted by its requester", job_id, payload.message_id)
