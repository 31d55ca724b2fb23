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

The stored messages, files and recorded calls are :class:`~tests.discord.fake_store.DiscordState`;
the interactions and reactions users send are built by
:class:`~tests.discord.fake_payloads.InteractionSender`. Behaviour the bot must cope with is
modelled: 40060 for an interaction
acknowledged twice, 10062 for an unknown one, the first followup after a deferral editing the
loading message (ephemeral flag ignored), Discord's message limits (2,000 characters, 10 files,
the interaction's upload limit per file, custom_id ≤ 100 and unique) answered with 400/413.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from tests.discord.fake_payloads import InteractionSender
from tests.discord.fake_store import (
    EPHEMERAL,
    LOADING,
    MIB,
    Call,
    InteractionRecord,
    UploadedFile,
    discord_error,
    json_response,
    now_iso,
    snowflake,
)


class FakeDiscord(InteractionSender):
    """The fake Discord server (see the module docstring).

    Args:
        token: the bot token IDENTIFY and bot-authenticated REST calls must carry.
        token_ttl_s: life of interaction webhook tokens, seconds (Discord: 15 minutes).
        attachment_size_limit: the upload limit each interaction reports, bytes.
        heartbeat_interval_ms: sent in HELLO.
    """

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
        self.root = ""
        self.app = web.Application(client_max_size=200 * MIB)
        self._routes()
        self._server = TestServer(self.app, host="127.0.0.1", access_log=None)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        """Listen on a free loopback port."""
        await self._server.start_server()
        self.root = str(self._server.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        """Close the gateway socket and stop serving."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        await self._server.close()

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
                message["edited_timestamp"] = now_iso()
                if message["id"] == record.original_id:
                    message["flags"] &= ~LOADING
                    record.edited_after_defer = True
                return json_response(self.public(message))
        return discord_error(404, 0, "404: Not Found")

    def expire_tokens(self) -> None:
        """Make every interaction token seen so far expired (as after 15 minutes)."""
        for record in self.interactions.values():
            record.expired = True

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
