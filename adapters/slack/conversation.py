"""Posting in one Slack conversation: messages, edits, deletes, ephemeral answers and result
files, falling back to a direct message when the bot may not post in the channel.

Slack API methods used: ``chat.postMessage``, ``chat.update``, ``chat.delete``,
``chat.postEphemeral``, ``conversations.open`` and ``files_upload_v2`` (through
:class:`~adapters.slack.files.SlackFiles`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.files import SlackFiles
from bot.types import Caller, JobResult

if TYPE_CHECKING:
    from adapters.slack.status import StatusMessage

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Slack errors that mean "the bot may not post here"; results then go to the user by DM.
NOT_POSTABLE = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}
)


def error_code(exc: SlackApiError) -> str:
    """The Web API ``error`` code of a failed call (``""`` when the response has none)."""
    response = getattr(exc, "response", None)
    try:
        return str(response.get("error", "")) if response is not None else ""
    except Exception:  # a response that is not a dict-like: no code to read
        return ""


@dataclass(slots=True)
class Where:
    """The conversation an interaction came from and its answers go to.

    Attributes:
        team_id: the workspace (``T…``); the core's ``server_id``.
        channel_id: the channel the command ran in.
        user_id: who acted.
        thread_ts: answer in this thread, if set.
        response_url: the interaction's ``response_url`` for ephemeral replies, if any.
        is_retry: Slack re-delivered this request (``X-Slack-Retry-Num``).
        dm_channel_id: set once the channel refused the bot; results then go to this DM.
    """

    team_id: str
    channel_id: str
    user_id: str
    thread_ts: str | None = None
    response_url: str | None = None
    is_retry: bool = False
    dm_channel_id: str | None = None

    def caller(self, *, is_admin: bool = False) -> Caller:
        """The core's :class:`~bot.types.Caller` for this conversation."""
        return Caller(
            platform="slack",
            user_id=self.user_id,
            server_id=self.team_id,
            channel_id=self.channel_id,
            is_admin=is_admin,
        )

    def request_key(self, delivery_id: str, kind: str = "trigger") -> str | None:
        """A globally unique key for one Slack delivery (a ``trigger_id``, a view id), for the
        core's duplicate check; ``None`` when Slack sent no id."""
        return f"slack:{self.team_id}:{kind}:{delivery_id}" if delivery_id else None


@dataclass(frozen=True, slots=True)
class Posted:
    """A message the bot posted: its channel and ``ts``."""

    channel_id: str
    ts: str


class Conversation:
    """Posting in one :class:`Where`, falling back to a DM when the channel refuses the bot.

    Args:
        client: a Web API client with the workspace's bot token.
        where: the conversation.
        respond: the interaction's ``respond`` (``response_url``) for ephemeral replies.

    Attributes:
        status: the status message of the job this interaction started, once there is one
            (the error handler shows failures in it).
    """

    def __init__(
        self, client: AsyncWebClient, where: Where, respond: AsyncRespond | None = None
    ) -> None:
        self.client = client
        self.where = where
        self.respond = respond
        self.status: StatusMessage | None = None

    async def _in_channel(self, send: Callable[[str, str | None], Awaitable[T]]) -> T:
        """Run ``send(channel_id, thread_ts)`` in the channel, or in a DM once it refused us."""
        if self.where.dm_channel_id is None:
            try:
                return await send(self.where.channel_id, self.where.thread_ts)
            except SlackApiError as exc:
                if error_code(exc) not in NOT_POSTABLE:
                    raise
                log.info(
                    "cannot post in %s/%s (%s): answering %s by DM",
                    self.where.team_id,
                    self.where.channel_id,
                    error_code(exc),
                    self.where.user_id,
                )
                await self._switch_to_dm()
        assert self.where.dm_channel_id is not None
        return await send(self.where.dm_channel_id, None)

    async def _switch_to_dm(self) -> None:
        opened = await self.client.conversations_open(users=self.where.user_id)
        self.where.dm_channel_id = str(opened["channel"]["id"])
        if self.respond is not None and self.where.response_url:
            with contextlib.suppress(Exception):  # the note is a courtesy; the DM is the answer
                await self.respond(
                    text=blocks.NOT_IN_CHANNEL, response_type="ephemeral", replace_original=False
                )

    async def _post_message(
        self, channel: str, thread_ts: str | None, text: str, message_blocks: Any
    ) -> Posted:
        response = await self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=message_blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        return Posted(str(response.get("channel") or channel), str(response["ts"]))

    async def post(self, text: str, message_blocks: list[dict[str, Any]] | None = None) -> Posted:
        """``chat.postMessage`` in the conversation; returns where it landed."""

        async def send(channel: str, thread_ts: str | None) -> Posted:
            return await self._post_message(channel, thread_ts, text, message_blocks)

        return await self._in_channel(send)

    async def update(self, posted: Posted, text: str, message_blocks: list[dict[str, Any]]) -> None:
        """``chat.update`` of a message the bot posted; ``message_blocks`` replace its blocks."""
        await self.client.chat_update(
            channel=posted.channel_id, ts=posted.ts, text=text, blocks=message_blocks
        )

    async def delete(self, posted: Posted) -> None:
        """``chat.delete`` of a message the bot posted."""
        await self.client.chat_delete(channel=posted.channel_id, ts=posted.ts)

    async def ephemeral(self, text: str) -> None:
        """Show ``text`` (core Markdown subset) to the user only: refusals are private.

        Uses the interaction's ``response_url`` when there is one (works in any channel), else
        ``chat.postEphemeral``; a DM when the channel refuses the bot.
        """
        body = blocks.ephemeral_text(text)
        if self.respond is not None and self.where.response_url:
            await self.respond(text=body, response_type="ephemeral", replace_original=False)
            return
        try:
            await self.client.chat_postEphemeral(
                channel=self.where.channel_id,
                user=self.where.user_id,
                text=body,
                thread_ts=self.where.thread_ts,
            )
        except SlackApiError as exc:
            if error_code(exc) not in NOT_POSTABLE:
                raise
            if self.where.dm_channel_id is None:
                await self._switch_to_dm()
            assert self.where.dm_channel_id is not None
            await self.client.chat_postMessage(channel=self.where.dm_channel_id, text=body)

    async def post_result(self, result: JobResult) -> Posted:
        """Share the result's files (``files_upload_v2``), then post its caption and buttons;
        returns the caption message (files first, so the buttons sit under the images)."""
        text, message_blocks = blocks.result_message(result)

        async def send(channel: str, thread_ts: str | None) -> Posted:
            await SlackFiles.upload_images(self.client, channel, result, thread_ts)
            return await self._post_message(channel, thread_ts, text, message_blocks)

        return await self._in_channel(send)
