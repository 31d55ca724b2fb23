"""A loopback stand-in for the Slack Web API, file hosts, ``response_url`` and Socket Mode.

Serves the methods the bot calls under ``/api/`` and records every call in :attr:`FakeSlack.calls`
with its arguments (the async client sends form-style methods as URL query parameters with an
empty body and JSON methods as a JSON body: both are read) and the bearer token. Also:

* ``files.getUploadURLExternal`` hands out loopback ``upload_url``s; the POST of the bytes is
  kept in :attr:`FakeSlack.uploads`; ``files.completeUploadExternal`` shares them.
* ``url_private`` files (:meth:`FakeSlack.add_file`) are served only with
  ``Authorization: Bearer <bot token>``; otherwise, like Slack, an HTML sign-in page with 200.
* ``response_url`` posts land in :attr:`FakeSlack.responses`.
* ``apps.connections.open`` (app token only) returns a ``ws://`` URL whose WebSocket says
  ``hello``, lets a test :meth:`FakeSlack.push_envelope`, and records acks.

Channel history is modelled just enough for assertions: :meth:`FakeSlack.channel_messages`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-test-app-token"
TEAM_ID = "T0001"
BOT_USER_ID = "UBOT"


@dataclass
class Call:
    """One Web API call: method name, merged arguments, bearer token."""

    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class Message:
    """A message in the fake's channel history."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    files: list[str] = field(default_factory=list)
    deleted: bool = False
    edits: list[str] = field(default_factory=list)


@dataclass
class Download:
    """A ``url_private`` request: the path and the ``Authorization`` header it carried."""

    path: str
    authorization: str | None


class FakeSlack:
    """The fake, started with :meth:`start` on a free loopback port.

    Attributes:
        tokens: bot tokens accepted (``xoxb-…``) → team id.
        admins: user ids ``users.info`` reports as workspace admins.
        not_in_channel: channels where posting answers ``not_in_channel``.
        calls, uploads, downloads, responses, socket_acks: what happened, in order.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {BOT_TOKEN: TEAM_ID}
        self.admins: set[str] = set()
        self.not_in_channel: set[str] = set()
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.uploads: dict[str, bytes] = {}
        self.upload_names: dict[str, str] = {}
        self.shared: list[dict[str, Any]] = []
        self.downloads: list[Download] = []
        self.responses: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0
        self._files: dict[str, tuple[bytes, str]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API root to configure as ``SLACK_API_URL``."""
        return f"{self.root}/api/"

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._file)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._server = TestServer(app)
        await self._server.start_server()
        assert self._server.port is not None
        self.port = self._server.port
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._server is not None:
            await self._server.close()

    # -- helpers for tests -------------------------------------------------------------------

    def add_file(
        self, name: str, data: bytes, mimetype: str, *, host: str | None = None
    ) -> dict[str, Any]:
        """Store a file and return its Slack file object (as in payloads' ``files``)."""
        file_id = f"F{next(self._ids):04d}"
        self._files[file_id] = (data, mimetype)
        root = f"http://{host}:{self.port}" if host else self.root
        url = f"{root}/files-pri/{TEAM_ID}-{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rpartition(".")[2],
            "size": len(data),
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    def response_url(self, key: str = "r") -> str:
        """A loopback ``response_url`` for a payload."""
        return f"{self.root}/respond/{key}-{next(self._ids)}"

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    def channel_messages(self, channel: str) -> list[Message]:
        """Messages still in ``channel`` (not deleted), oldest first."""
        return [m for m in self.messages if m.channel == channel and not m.deleted]

    def message(self, channel: str, ts: str) -> Message:
        """One message by channel and ts."""
        for m in self.messages:
            if m.channel == channel and m.ts == ts:
                return m
        raise KeyError((channel, ts))

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every request the fake serves);
        raises ``TimeoutError`` after ``within_s`` seconds, so a broken test fails, not hangs."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(predicate)

    async def push_envelope(
        self, kind: str, payload: Mapping[str, Any], *, retry_attempt: int | None = None
    ) -> str:
        """Send a Socket Mode envelope on the open WebSocket; returns its ``envelope_id``."""
        if not self._sockets:
            raise RuntimeError("no Socket Mode connection")
        envelope_id = f"env-{next(self._ids)}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": kind != "events_api",
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout"
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope_id

    # -- plumbing ----------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            if request.content_type == "application/json":
                args.update(json.loads(body))
            else:
                args.update(parse_qsl(body.decode(), keep_blank_values=True))
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = self._bearer(request)
        args = await self._args(request)
        self.calls.append(Call(method, args, token))
        try:
            if method == "apps.connections.open":
                if not (token or "").startswith("xapp-"):
                    return _json({"ok": False, "error": "not_allowed_token_type"})
                self.socket_connections += 1
                return _json({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"})
            if token not in self.tokens:
                return _json({"ok": False, "error": "invalid_auth"})
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                return _json({"ok": False, "error": "unknown_method"})
            return _json(handler(args, token))
        finally:
            await self._notify()

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    # -- Web API methods ---------------------------------------------------------------------

    def _m_auth_test(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "ideogram",
            "team_id": self.tokens[token],
            "user_id": BOT_USER_ID,
            "bot_id": "BBOT",
            "is_enterprise_install": False,
        }

    def _posting_refused(self, channel: str) -> dict[str, Any] | None:
        if channel in self.not_in_channel:
            return {"ok": False, "error": "not_in_channel"}
        return None

    def _m_chat_postMessage(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        channel = str(args.get("channel"))
        refused = self._posting_refused(channel)
        if refused:
            return refused
        blocks = _maybe_json(args.get("blocks")) or []
        message = Message(
            channel, self._next_ts(), str(args.get("text") or ""), blocks, args.get("thread_ts")
        )
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": {"text": message.text}}

    def _m_chat_postEphemeral(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        refused = self._posting_refused(str(args.get("channel")))
        return refused or {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_update(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            message = self.message(str(args.get("channel")), str(args.get("ts")))
        except KeyError:
            return {"ok": False, "error": "message_not_found"}
        message.edits.append(message.text)
        message.text = str(args.get("text") or "")
        if "blocks" in args:
            message.blocks = _maybe_json(args.get("blocks")) or []
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_chat_delete(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            message = self.message(str(args.get("channel")), str(args.get("ts")))
        except KeyError:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_views_open(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = _maybe_json(args.get("view")) or {}
        return {"ok": True, "view": {**view, "id": f"V{next(self._ids):04d}"}}

    def _m_views_publish(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        return {"ok": True, "view": _maybe_json(args.get("view")) or {}}

    def _m_users_info(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        user = str(args.get("user"))
        admin = user in self.admins
        return {
            "ok": True,
            "user": {"id": user, "is_admin": admin, "is_owner": False, "is_primary_owner": False},
        }

    def _m_conversations_open(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": f"D{args.get('users')}"}}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):04d}"
        self.upload_names[file_id] = str(args["filename"])
        return {"ok": True, "upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        files = _maybe_json(args.get("files")) or []
        channel = args.get("channel_id")
        if channel:
            refused = self._posting_refused(str(channel))
            if refused:
                return refused
        missing = [f["id"] for f in files if f["id"] not in self.uploads]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        self.shared.append(
            {
                "channel": channel,
                "thread_ts": args.get("thread_ts"),
                "files": [f["id"] for f in files],
            }
        )
        if channel:
            message = Message(str(channel), self._next_ts(), "", [], args.get("thread_ts"))
            message.files = [f["id"] for f in files]
            self.messages.append(message)
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    # -- non-API endpoints -------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = await request.read()
        await self._notify()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}", content_type="text/plain")

    async def _file(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        self.downloads.append(Download(request.path, auth))
        await self._notify()
        file_id = request.match_info["file_id"].rpartition("-")[2]
        stored = self._files.get(file_id)
        if auth not in {f"Bearer {t}" for t in self.tokens}:
            # Slack answers a missing or wrong token with its sign-in page, status 200.
            return web.Response(text="<html>Sign in</html>", content_type="text/html")
        if stored is None:
            return web.Response(status=404)
        data, mimetype = stored
        return web.Response(body=data, content_type=mimetype)

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append({"url": str(request.url), **body})
        await self._notify()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
                    await self._notify()
        finally:
            self._sockets.remove(ws)
        return ws


def _json(payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
