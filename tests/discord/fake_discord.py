"""A loopback fake of Discord for driving the real discord.py client in tests and benchmarks.

One aiohttp application serves, on 127.0.0.1:

* **REST** under ``/api/v10`` (set ``DISCORD_API_BASE_URL`` to :attr:`FakeDiscord.api_base`):
  login (``GET /users/@me``, ``GET /oauth2/applications/@me``), ``GET /gateway/bot``, command
  sync (``PUT /applications/{app}/commands``, ``…/guilds/{guild}/commands``), interaction
  callbacks (``POST /interactions/{id}/{token}/callback``), webhooks (followups, ``@original``
  get/edit/delete, tokens that expire with error 50027), channel messages (create with
  ``files[n]`` + ``payload_json``, get, edit, delete), DM channel creation — and records every
  call (:attr:`FakeDiscord.calls`) with its JSON and uploaded file bytes.
* a **CDN** under ``/cdn/`` serving files added with :meth:`FakeDiscord.add_file` and every
  file the bot uploads (so context menus on the bot's own results work).
* the **gateway** websocket at ``/gateway``: HELLO (op 10), IDENTIFY (op 2, token checked),
  READY, heartbeat ACKs (op 1 → op 11), and dispatches (op 0) sent with
  :meth:`FakeDiscord.dispatch`; uncompressed JSON text frames.

Payloads follow discord-api-docs shapes (interaction object with ``application_id``,
``version``, ``attachment_size_limit``, ``app_permissions``, a full ``channel``, ``member`` with
``permissions`` and ``flags``; ``data.resolved.attachments``; a button click carries the message
with its components). Behaviour the bot must cope with is modelled: 40060 for an interaction
acknowledged twice, 10062 for an unknown one, the first followup after a deferral editing the
loading message (ephemeral flag ignored), Discord's message limits (2,000 characters, 10 files,
the interaction's upload limit per file, custom_id ≤ 100 and unique) answered with 400/413.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

DISCORD_EPOCH_MS = 1420070400000
MIB = 1024 * 1024

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

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_counter = itertools.count(1)


def snowflake() -> str:
    """A fresh snowflake id with the current time in it (``Interaction.is_expired`` reads it)."""
    millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((millis << 22) | (next(_counter) & 0x3FFFFF))


def _now_iso() -> str:
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


class FakeDiscord:
    """The fake Discord server (see the module docstring).

    Args:
        token: the bot token IDENTIFY and bot-authenticated REST calls must carry.
        token_ttl_s: life of interaction webhook tokens, seconds (Discord: 15 minutes).
        attachment_size_limit: the upload limit each interaction reports, bytes.
        heartbeat_interval_ms: sent in HELLO.
    """

    app_id = "1300000000000000001"
    bot = FakeUser("1300000000000000001", "ideogram")
    guild_id = "1300000000000000100"
    channel_id = "1300000000000000200"

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        token_ttl_s: float = 15 * 60,
        attachment_size_limit: int = 10 * MIB,
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.token = token
        self.token_ttl_s = token_ttl_s
        self.attachment_size_limit = attachment_size_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.calls: list[Call] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self._deleted_messages: list[dict[str, Any]] = []
        self.interactions: dict[str, InteractionRecord] = {}
        self.synced: dict[str, list[dict[str, Any]]] = {}
        self.identified = 0
        self.heartbeats = 0
        self.cdn_files: dict[str, tuple[bytes, str]] = {}
        self.cdn_hits: list[str] = []
        self.dm_channels: dict[str, str] = {}
        self.ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.root = ""
        self.app = web.Application(client_max_size=200 * MIB)
        self._routes()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        """Listen on a free loopback port."""
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Close the gateway socket and stop serving."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        """The REST root for ``DISCORD_API_BASE_URL``."""
        return f"{self.root}/api/v10"

    # -- waiting ---------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], limit_s: float = 15.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every request); return it.

        Raises:
            TimeoutError: not within ``limit_s`` seconds (a failing test, not a slow one).
        """
        async with asyncio.timeout(limit_s):
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()

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

    # -- routes ----------------------------------------------------------------------------

    def _routes(self) -> None:
        r = self.app.router
        api = "/api/v10"
        r.add_get("/gateway", self._gateway)
        r.add_get("/cdn/attachments/{id}/{filename}", self._cdn)
        r.add_route("*", api + "/{tail:.*}", self._api)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        files: list[UploadedFile] = []
        payload: Any = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                data = await part.read()  # type: ignore[union-attr]
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(data)
                else:
                    files.append(UploadedFile(name, part.filename or "", bytes(data)))
        elif request.can_read_body:
            raw = await request.read()
            payload = json.loads(raw) if raw else None
        return payload, files

    async def _api(self, request: web.Request) -> web.StreamResponse:
        payload, files = await self._read_body(request)
        call = Call(
            method=request.method,
            path=request.path,
            json=payload,
            files=files,
            auth=request.headers.get("Authorization"),
            at=time.perf_counter(),
            query=dict(request.query),
        )
        self.calls.append(call)
        try:
            response = await self._route(request, call)
        except Exception as exc:  # a bug in the fake must show up as a failing call
            response = discord_error(500, 0, f"fake error: {exc!r}")
        call.status = response.status
        await self._notify()
        return response

    def _bot_auth(self, call: Call) -> bool:
        return call.auth == f"Bot {self.token}"

    async def _route(self, request: web.Request, call: Call) -> web.Response:
        parts = request.match_info["tail"].strip("/").split("/")
        method = request.method
        if parts[0] == "interactions" and len(parts) == 4 and method == "POST":
            return self._callback(parts[1], parts[2], call)
        if parts[0] == "webhooks" and len(parts) >= 3:
            return self._webhook(method, parts[1], parts[2], parts[3:], call)
        if not self._bot_auth(call):
            return discord_error(401, 0, "401: Unauthorized")
        if parts == ["users", "@me"] and method == "GET":
            return json_response({**self.bot.payload(), "bot": True, "flags": 0})
        if parts == ["oauth2", "applications", "@me"] and method == "GET":
            return json_response(self._application())
        if parts == ["gateway", "bot"] and method == "GET":
            return json_response(
                {
                    "url": self.root.replace("http", "ws", 1) + "/gateway",
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[0] == "applications" and method == "PUT":
            scope = "global" if parts[2] == "commands" else f"guild:{parts[3]}"
            return self._sync(scope, call.json or [])
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel_messages(method, parts[1], parts[3:], call)
        if parts == ["users", "@me", "channels"] and method == "POST":
            recipient = str((call.json or {}).get("recipient_id"))
            dm_id = self.dm_channels.setdefault(recipient, snowflake())
            return json_response(
                {
                    "id": dm_id,
                    "type": 1,
                    "last_message_id": None,
                    "recipients": [
                        {
                            "id": recipient,
                            "username": "someone",
                            "discriminator": "0",
                            "avatar": None,
                        }
                    ],
                }
            )
        return discord_error(404, 0, "404: Not Found")

    def _application(self) -> dict[str, Any]:
        return {
            "id": self.app_id,
            "name": "ideogram",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": {
                "id": "1300000000000000999",
                "username": "owner",
                "discriminator": "0",
                "avatar": None,
            },
            "verify_key": "00" * 32,
            "flags": 0,
            "team": None,
            "summary": "",
            "rpc_origins": [],
        }

    def _sync(self, scope: str, commands: list[dict[str, Any]]) -> web.Response:
        out = []
        for command in commands:
            out.append(
                {
                    "id": snowflake(),
                    "application_id": self.app_id,
                    "version": snowflake(),
                    "type": command.get("type", 1),
                    "description": command.get("description", ""),
                    "options": command.get("options", []),
                    "default_member_permissions": command.get("default_member_permissions"),
                    **command,
                }
            )
        self.synced[scope] = out
        return json_response(out)

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
            "timestamp": _now_iso(),
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

    # -- interactions ----------------------------------------------------------------------

    def _callback(self, interaction_id: str, token: str, call: Call) -> web.Response:
        record = self.interactions.get(interaction_id)
        if record is None or record.token != token:
            return discord_error(404, 10062, "Unknown interaction")
        if record.acked_type is not None:
            return discord_error(400, 40060, "Interaction has already been acknowledged.")
        payload = call.json or {}
        kind = int(payload.get("type", 0))
        data = payload.get("data") or {}
        record.acked_type = kind
        record.acked_at = call.at
        record.callback = payload
        response: dict[str, Any] = {"interaction": {"id": record.id, "type": record.type}}
        message: dict[str, Any] | None = None
        if kind in (4, 5):
            error = self._check_message(data, call.files, self.attachment_size_limit)
            if error is not None:
                record.acked_type = None
                return error
            flags = int(data.get("flags") or 0)
            if kind == 5:
                flags |= LOADING
            message = self._new_message(
                record.channel_id,
                via="webhook",
                token=record.token,
                flags=flags,
                message_type=20 if record.type == 2 else 0,
            )
            if kind == 4:
                self._apply(message, data, call.files)
            record.original_id = message["id"]
            record.loading = kind == 5
            response["interaction"].update(
                response_message_id=message["id"],
                response_message_loading=kind == 5,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
        elif kind in (6, 7) and record.message is not None:
            record.original_id = record.message["id"]
            if kind == 7 and record.original_id in self.messages:
                message = self.messages[record.original_id]
                self._apply(message, data, call.files)
        if message is not None:
            response["resource"] = {"type": kind, "message": self.public(message)}
        return json_response(response)

    def _webhook(
        self, method: str, app_id: str, token: str, rest: list[str], call: Call
    ) -> web.Response:
        record = next((r for r in self.interactions.values() if r.token == token), None)
        if record is None or app_id != self.app_id:
            return discord_error(404, 10015, "Unknown Webhook")
        if record.expired or time.monotonic() - record.created > self.token_ttl_s:
            return discord_error(401, 50027, "Invalid Webhook Token")
        if record.acked_type is None:
            return discord_error(404, 10015, "Unknown Webhook")
        limit = self.attachment_size_limit
        if not rest and method == "POST":
            payload = call.json or {}
            error = self._check_message(payload, call.files, limit)
            if error is not None:
                return error
            original = self.original(record)
            if record.loading and not record.edited_after_defer and original is not None:
                # Discord: the first followup after a deferral edits the loading message and
                # keeps its visibility (the followup's ephemeral flag is ignored).
                payload = {k: v for k, v in payload.items() if k != "flags"}
                self._apply(original, payload, call.files)
                original["flags"] &= ~LOADING
                record.edited_after_defer = True
                return json_response(self.public(original))
            message = self._new_message(
                record.channel_id,
                via="webhook",
                token=token,
                flags=int(payload.get("flags") or 0) & EPHEMERAL,
            )
            self._apply(message, {k: v for k, v in payload.items() if k != "flags"}, call.files)
            return json_response(self.public(message))
        if len(rest) == 2 and rest[0] == "messages":
            message_id = record.original_id if rest[1] == "@original" else rest[1]
            message = self.messages.get(message_id or "")
            if message is None:
                return discord_error(404, 10008, "Unknown Message")
            if method == "GET":
                return json_response(self.public(message))
            if method == "DELETE":
                self._delete(message["id"])
                return web.Response(status=204)
            if method == "PATCH":
                payload = call.json or {}
                error = self._check_message(payload, call.files, limit)
                if error is not None:
                    return error
                self._apply(message, payload, call.files)
                message["edited_timestamp"] = _now_iso()
                if message["id"] == record.original_id:
                    message["flags"] &= ~LOADING
                    record.edited_after_defer = True
                return json_response(self.public(message))
        return discord_error(404, 0, "404: Not Found")

    def expire_tokens(self) -> None:
        """Make every interaction token seen so far expired (as after 15 minutes)."""
        for record in self.interactions.values():
            record.expired = True

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

    # -- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        )
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            op = frame.get("op")
            if op == 2:
                if frame["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                self.identified += 1
                await self._send(
                    "READY",
                    {
                        "v": 10,
                        "user": {
                            **self.bot.payload(),
                            "bot": True,
                            "verified": True,
                            "mfa_enabled": False,
                            "flags": 0,
                        },
                        "guilds": [],
                        "session_id": secrets.token_hex(16),
                        "resume_gateway_url": self.root.replace("http", "ws", 1) + "/gateway",
                        "application": {"id": self.app_id, "flags": 0},
                        "private_channels": [],
                    },
                )
                self.ready.set()
                await self._notify()
            elif op == 1:
                self.heartbeats += 1
                await ws.send_str(json.dumps({"op": 11}))
                await self._notify()
        if self._ws is ws:
            self._ws = None
            self.ready.clear()
        return ws

    async def _send(self, event: str, data: Mapping[str, Any]) -> float:
        if self._ws is None:
            raise RuntimeError("no gateway connection")
        self._seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        sent = time.perf_counter()
        await self._ws.send_str(frame)
        return sent

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> float:
        """Send one dispatch (op 0) on the gateway; returns ``perf_counter()`` at sending."""
        return await self._send(event, data)

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
