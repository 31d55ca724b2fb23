"""What the fake Discord keeps: its one guild and channel, messages, files, and every call.

:class:`DiscordState` is the state half of :class:`~tests.discord.fake_discord.FakeDiscord`:
stored messages with Discord's limits and edit semantics (2,000 characters, 10 files, the
upload limit per file, ≤ 5 rows of ≤ 5 buttons, custom_id ≤ 100 and unique), uploaded files
served again on the fake CDN, and helpers to read what the bot did. Shapes follow
discord-api-docs "Message resource" and "Channel".
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from PIL import Image

DISCORD_EPOCH_MS = 1420070400000
MIB = 1024 * 1024

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_counter = itertools.count(1)


def snowflake() -> str:
    """A fresh snowflake id with the current time in it (``Interaction.is_expired`` reads it)."""
    millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((millis << 22) | (next(_counter) & 0x3FFFFF))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly (discord.py checks it verbatim)."""
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def discord_error(status: int, code: int, message: str) -> web.Response:
    """Discord's error body: ``{"code": …, "message": …}``."""
    return json_response({"code": code, "message": message}, status)


@dataclass(frozen=True, slots=True)
class FakeUser:
    """A Discord user of the fake (``manage_guild``: the member has Manage Server)."""

    id: str
    username: str
    manage_guild: bool = False

    def payload(self) -> dict[str, Any]:
        """The user object."""
        return {
            "id": self.id,
            "username": self.username,
            "global_name": self.username.title(),
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
        }

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(slots=True)
class UploadedFile:
    """A file part of a request: its form field (``files[0]``), name and exact bytes."""

    field: str
    filename: str
    data: bytes


@dataclass(slots=True)
class Call:
    """One REST request the fake received.

    Attributes:
        method, path: e.g. ``"PATCH"``, ``"/api/v10/webhooks/1/tok/messages/@original"``.
        json: the JSON body, or the ``payload_json`` part of a multipart body.
        files: uploaded ``files[n]`` parts with their bytes.
        auth: the ``Authorization`` header (``"Bot …"``), or ``None``.
        status: the status answered.
        at: ``time.perf_counter()`` when it arrived.
    """

    method: str
    path: str
    json: Any
    files: list[UploadedFile]
    auth: str | None
    at: float
    status: int = 0
    query: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class InteractionRecord:
    """An interaction the fake dispatched, and what the bot did with it."""

    id: str
    token: str
    type: int
    channel_id: str
    guild_id: str | None
    user: FakeUser
    sent_at: float
    message: dict[str, Any] | None = None  # the clicked message (components)
    acked_type: int | None = None
    acked_at: float | None = None
    callback: dict[str, Any] | None = None
    original_id: str | None = None
    loading: bool = False
    edited_after_defer: bool = False
    expired: bool = False
    created: float = field(default_factory=time.monotonic)


class DiscordState:
    """Messages, files and recorded calls of the fake (set up by ``FakeDiscord.__init__``)."""

    app_id = "1300000000000000001"
    bot = FakeUser("1300000000000000001", "ideogram")
    guild_id = "1300000000000000100"
    channel_id = "1300000000000000200"

    root: str
    calls: list[Call]
    messages: dict[str, dict[str, Any]]
    deleted: list[str]
    _deleted_messages: list[dict[str, Any]]
    cdn_files: dict[str, tuple[bytes, str]]
    cdn_hits: list[str]

    # -- recorded state helpers ------------------------------------------------------------

    def calls_to(self, method: str, fragment: str) -> list[Call]:
        """Calls with ``method`` whose path contains ``fragment``."""
        return [c for c in self.calls if c.method == method and fragment in c.path]

    def original(self, record: InteractionRecord) -> dict[str, Any] | None:
        """The original response message of an interaction (``None`` if none or deleted)."""
        if record.original_id is None:
            return None
        return self.messages.get(record.original_id)

    def followups(self, record: InteractionRecord) -> list[dict[str, Any]]:
        """Messages created through the interaction's webhook (not the original)."""
        return [
            m
            for m in self.messages.values()
            if m.get("_token") == record.token and m["id"] != record.original_id
        ] + [
            m
            for m in self._deleted_messages
            if m.get("_token") == record.token and m["id"] != record.original_id
        ]

    def channel_messages(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Messages posted with the bot token (``POST /channels/{id}/messages``)."""
        return [
            m
            for m in self.messages.values()
            if m.get("_via") == "channel" and (channel_id is None or m["channel_id"] == channel_id)
        ]

    def uploaded_files(self) -> list[UploadedFile]:
        """Every file the bot uploaded, in order."""
        return [f for c in self.calls for f in c.files]

    def custom_ids(self, message: Mapping[str, Any]) -> list[str]:
        """The custom_ids of a message's buttons, row by row."""
        return [
            c["custom_id"]
            for row in message.get("components", [])
            for c in row.get("components", [])
            if "custom_id" in c
        ]

    # -- messages --------------------------------------------------------------------------

    def _check_message(
        self, payload: Mapping[str, Any], files: Sequence[UploadedFile], limit: int
    ) -> web.Response | None:
        """Discord's message limits; an error response when broken, else ``None``."""
        content = payload.get("content")
        if content is not None and len(content) > 2000:
            return discord_error(400, 50035, "Invalid Form Body: content too long")
        if len(files) > 10 or len(payload.get("attachments") or []) > 10:
            return discord_error(400, 30015, "Maximum number of attachments exceeded")
        for f in files:
            if len(f.data) > limit:
                return discord_error(413, 40005, "Request entity too large")
        if sum(len(f.data) for f in files) > max(25 * MIB, limit):
            return discord_error(413, 40005, "Request entity too large")
        rows = payload.get("components") or []
        ids: list[str] = []
        if len(rows) > 5:
            return discord_error(400, 50035, "Invalid Form Body: too many rows")
        for row in rows:
            buttons = row.get("components") or []
            if len(buttons) > 5:
                return discord_error(400, 50035, "Invalid Form Body: too many buttons")
            for button in buttons:
                custom_id = button.get("custom_id")
                if custom_id is not None:
                    if not 1 <= len(custom_id) <= 100:
                        return discord_error(400, 50035, "Invalid Form Body: custom_id length")
                    ids.append(custom_id)
                if len(button.get("label") or "") > 80:
                    return discord_error(400, 50035, "Invalid Form Body: label too long")
        if len(ids) != len(set(ids)):
            return discord_error(400, 50035, "Invalid Form Body: duplicate custom_id")
        return None

    def _attachment(self, f: UploadedFile, description: Mapping[str, Any]) -> dict[str, Any]:
        attachment_id = snowflake()
        filename = description.get("filename") or f.filename
        content_type = "application/octet-stream"
        width = height = None
        with contextlib.suppress(Exception):
            with Image.open(io.BytesIO(f.data)) as image:
                width, height = image.size
                content_type = Image.MIME.get(image.format or "", content_type)
        self.cdn_files[attachment_id] = (f.data, content_type)
        url = f"{self.root}/cdn/attachments/{attachment_id}/{filename}"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(f.data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
            "width": width,
            "height": height,
        }

    def _apply(
        self, message: dict[str, Any], payload: Mapping[str, Any], files: Sequence[UploadedFile]
    ) -> None:
        """Apply a create/edit payload to a stored message (Discord's edit semantics)."""
        if "content" in payload:
            message["content"] = payload["content"] or ""
        if "components" in payload:
            message["components"] = payload["components"] or []
        if "embeds" in payload:
            message["embeds"] = payload["embeds"] or []
        if "attachments" in payload:
            by_index = {int(f.field[6:-1]): f for f in files if f.field.startswith("files[")}
            kept = {a["id"]: a for a in message.get("attachments", [])}
            new: list[dict[str, Any]] = []
            for described in payload["attachments"] or []:
                attachment_id = str(described.get("id"))
                if attachment_id in kept:
                    new.append(kept[attachment_id])
                elif attachment_id.isdigit() and int(attachment_id) in by_index:
                    new.append(self._attachment(by_index[int(attachment_id)], described))
            message["attachments"] = new
        elif files:
            message["attachments"] = [self._attachment(f, {}) for f in files]
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = (message.get("flags", 0) & LOADING) | int(payload["flags"])
        if "allowed_mentions" in payload:
            message["_allowed_mentions"] = payload["allowed_mentions"]

    def _new_message(
        self,
        channel_id: str,
        *,
        via: str,
        token: str | None = None,
        flags: int = 0,
        message_type: int = 0,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": snowflake(),
            "channel_id": channel_id,
            "type": message_type,
            "content": "",
            "author": {**self.bot.payload(), "bot": True},
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "flags": flags,
            "components": [],
            "_via": via,
            "_token": token,
        }
        if via == "webhook":
            message["webhook_id"] = self.app_id
            message["application_id"] = self.app_id
        self.messages[message["id"]] = message
        return message

    @staticmethod
    def public(message: Mapping[str, Any]) -> dict[str, Any]:
        """A stored message as Discord returns it (without the fake's bookkeeping keys)."""
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _delete(self, message_id: str) -> bool:
        message = self.messages.pop(message_id, None)
        if message is None:
            return False
        self.deleted.append(message_id)
        self._deleted_messages.append(message)
        return True

    def _channel_messages(
        self, method: str, channel_id: str, rest: list[str], call: Call
    ) -> web.Response:
        if not rest and method == "POST":
            payload = call.json or {}
            error = self._check_message(payload, call.files, 10 * MIB)
            if error is not None:
                return error
            message = self._new_message(channel_id, via="channel")
            self._apply(message, payload, call.files)
            return json_response(self.public(message))
        if len(rest) != 1:
            return discord_error(404, 0, "404: Not Found")
        message = self.messages.get(rest[0])
        if message is None or message["channel_id"] != channel_id:
            return discord_error(404, 10008, "Unknown Message")
        if method == "GET":
            return json_response(self.public(message))
        if method == "DELETE":
            self._delete(rest[0])
            return web.Response(status=204)
        if method == "PATCH":
            self._apply(message, call.json or {}, call.files)
            return json_response(self.public(message))
        return discord_error(405, 0, "405: Method Not Allowed")

    # -- CDN -------------------------------------------------------------------------------

    def add_file(self, filename: str, data: bytes, content_type: str | None) -> dict[str, Any]:
        """Put a file on the fake CDN; return its attachment object (as in ``resolved``)."""
        attachment_id = snowflake()
        self.cdn_files[attachment_id] = (data, content_type or "application/octet-stream")
        url = f"{self.root}/cdn/attachments/{attachment_id}/{filename}"
        attachment: dict[str, Any] = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "ephemeral": True,
        }
        if content_type is not None:
            attachment["content_type"] = content_type
        return attachment

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        attachment_id = request.match_info["id"]
        self.cdn_hits.append(attachment_id)
        stored = self.cdn_files.get(attachment_id)
        if stored is None:
            return web.Response(status=404)
        data, content_type = stored
        return web.Response(body=data, headers={"Content-Type": content_type})
