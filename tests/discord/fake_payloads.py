"""What the fake Discord sends the bot: interactions and reactions, as gateway dispatches.

:class:`InteractionSender` builds payloads in discord-api-docs shapes (interaction object with
``application_id``, ``version``, ``attachment_size_limit``, ``app_permissions``, a full
``channel``, ``member`` with ``permissions`` and ``flags``; ``data.resolved.attachments``; a
button click carries the message with its components) and dispatches them with
``INTERACTION_CREATE`` / ``MESSAGE_REACTION_ADD``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from tests.discord.fake_store import DiscordState, FakeUser, InteractionRecord, snowflake

# Permission bits (discord-api-docs "Permissions").
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_APPLICATION_COMMANDS
)
BOT_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
)


class InteractionSender(DiscordState):
    """Builds and dispatches what users do (set up by ``FakeDiscord.__init__``)."""

    attachment_size_limit: int
    dm_channels: dict[str, str]
    synced: dict[str, list[dict[str, Any]]]
    interactions: dict[str, InteractionRecord]

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> float:
        """Send one dispatch (op 0) on the gateway (the server implements it)."""
        raise NotImplementedError

    # -- building interactions -------------------------------------------------------------

    def _channel(self, guild: bool, user: FakeUser) -> tuple[str, dict[str, Any]]:
        if guild:
            return self.channel_id, {
                "id": self.channel_id,
                "type": 0,
                "guild_id": self.guild_id,
                "name": "images",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "rate_limit_per_user": 0,
                "last_message_id": None,
                "flags": 0,
                "permissions": str(MEMBER_PERMISSIONS),
            }
        dm_id = self.dm_channels.setdefault(user.id, snowflake())
        return dm_id, {
            "id": dm_id,
            "type": 1,
            "last_message_id": None,
            "recipients": [user.payload()],
            "flags": 0,
        }

    def interaction(
        self,
        kind: int,
        data: Mapping[str, Any],
        *,
        user: FakeUser,
        guild: bool = True,
        message: Mapping[str, Any] | None = None,
        channel_id: str | None = None,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload of ``kind`` (2 command, 3 component, 4 autocomplete,
        5 modal submit) from ``user``, in the fake guild's channel or in the user's DM."""
        _, channel = self._channel(guild, user)
        if channel_id is not None:
            channel = {**channel, "id": channel_id}
        payload: dict[str, Any] = {
            "id": snowflake(),
            "application_id": self.app_id,
            "type": kind,
            "data": dict(data),
            "token": secrets.token_urlsafe(48),
            "version": 1,
            "locale": "en-US",
            "app_permissions": str(BOT_PERMISSIONS),
            "attachment_size_limit": self.attachment_size_limit,
            "entitlements": [],
            "channel_id": channel["id"],
            "channel": channel,
        }
        if guild:
            permissions = MEMBER_PERMISSIONS | (MANAGE_GUILD if user.manage_guild else 0)
            payload.update(
                guild_id=self.guild_id,
                guild_locale="en-US",
                guild={"id": self.guild_id, "locale": "en-US", "features": []},
                context=0,
                authorizing_integration_owners={"0": self.guild_id},
                member={
                    "user": user.payload(),
                    "roles": [],
                    "premium_since": None,
                    "permissions": str(permissions),
                    "pending": False,
                    "nick": None,
                    "mute": False,
                    "deaf": False,
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "flags": 0,
                    "avatar": None,
                },
            )
        else:
            payload.update(
                user=user.payload(), context=1, authorizing_integration_owners={"0": "0"}
            )
        if message is not None:
            payload["message"] = self.public(message)
        return payload

    @staticmethod
    def option(name: str, value: Any) -> dict[str, Any]:
        """A command option with the type of ``value`` (str 3, int 4, bool 5)."""
        if isinstance(value, bool):
            kind = 5
        elif isinstance(value, int):
            kind = 4
        else:
            kind = 3
        return {"name": name, "type": kind, "value": value}

    def slash(
        self,
        name: str,
        *,
        user: FakeUser,
        guild: bool = True,
        attachments: Mapping[str, Mapping[str, Any]] | None = None,
        subcommand: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """A slash command (type 2, command type 1); ``attachments`` maps option → attachment
        object, resolved in ``data.resolved.attachments`` as Discord sends them."""
        opts = [self.option(k, v) for k, v in options.items() if v is not None]
        resolved: dict[str, Any] = {}
        for option_name, attachment in (attachments or {}).items():
            opts.append({"name": option_name, "type": 11, "value": attachment["id"]})
            resolved.setdefault("attachments", {})[attachment["id"]] = dict(attachment)
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data: dict[str, Any] = {"id": snowflake(), "name": name, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        if self.synced.get(f"guild:{self.guild_id}") and guild:
            data["guild_id"] = self.guild_id
        return self.interaction(2, data, user=user, guild=guild)

    def autocomplete(
        self, name: str, focused: str, typed: str, *, user: FakeUser, **options: Any
    ) -> dict[str, Any]:
        """An autocomplete interaction (type 4) with ``focused`` being typed as ``typed``."""
        opts = [self.option(k, v) for k, v in options.items()]
        opts.append({"name": focused, "type": 3, "value": typed, "focused": True})
        data = {"id": snowflake(), "name": name, "type": 1, "options": opts}
        return self.interaction(4, data, user=user)

    def click(
        self, message: Mapping[str, Any], custom_id: str, *, user: FakeUser, guild: bool = True
    ) -> dict[str, Any]:
        """A button click (type 3): the message with its components, as Discord sends it."""
        data = {"custom_id": custom_id, "component_type": 2}
        return self.interaction(
            3, data, user=user, guild=guild, message=message, channel_id=message["channel_id"]
        )

    def message_command(
        self, name: str, message: Mapping[str, Any], *, user: FakeUser, guild: bool = True
    ) -> dict[str, Any]:
        """A message context menu (type 2, command type 3) on ``message``."""
        target = self.public(message)
        data = {
            "id": snowflake(),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        return self.interaction(2, data, user=user, guild=guild)

    def modal_submit(
        self,
        modal: Mapping[str, Any],
        values: Mapping[str, str],
        *,
        user: FakeUser,
        guild: bool = True,
    ) -> dict[str, Any]:
        """A modal submit (type 5) answering the modal the bot opened (callback type 9)."""
        components = []
        for label in modal.get("components", []):
            inner = label.get("component") or {}
            custom_id = inner.get("custom_id")
            if custom_id in values:
                components.append(
                    {
                        "type": 18,
                        "id": label.get("id", 1),
                        "component": {
                            "type": 4,
                            "id": inner.get("id", 2),
                            "custom_id": custom_id,
                            "value": values[custom_id],
                        },
                    }
                )
        data = {"custom_id": modal["custom_id"], "components": components}
        return self.interaction(5, data, user=user, guild=guild)

    def user_message(
        self, *, author: FakeUser, attachments: Sequence[Mapping[str, Any]], content: str = ""
    ) -> dict[str, Any]:
        """A message by a user in the fake channel (a context-menu target)."""
        message = self._new_message(self.channel_id, via="user")
        message.update(
            author=author.payload(), content=content, attachments=[dict(a) for a in attachments]
        )
        return message

    async def send_interaction(self, payload: Mapping[str, Any]) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE; returns its record (the same id twice → same record)."""
        user_data = (payload.get("member") or {}).get("user") or payload.get("user") or {}
        record = self.interactions.get(payload["id"])
        if record is None:
            record = InteractionRecord(
                id=payload["id"],
                token=payload["token"],
                type=payload["type"],
                channel_id=payload["channel_id"],
                guild_id=payload.get("guild_id"),
                user=FakeUser(user_data.get("id", "0"), user_data.get("username", "?")),
                sent_at=0.0,
                message=payload.get("message"),
            )
            self.interactions[record.id] = record
        record.sent_at = await self.dispatch("INTERACTION_CREATE", payload)
        return record

    async def react(self, message: Mapping[str, Any], emoji: str, *, user: FakeUser) -> None:
        """Dispatch MESSAGE_REACTION_ADD for ``user`` adding ``emoji`` to ``message``."""
        data: dict[str, Any] = {
            "user_id": user.id,
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "emoji": {"id": None, "name": emoji},
            "message_author_id": message["author"]["id"],
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }
        if message["channel_id"] == self.channel_id:
            data["guild_id"] = self.guild_id
            data["member"] = {
                "user": user.payload(),
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        await self.dispatch("MESSAGE_REACTION_ADD", data)
