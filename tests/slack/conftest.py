"""The Slack adapter against fakes: the real Bolt app served over loopback HTTP, signed
requests, the fake Slack Web API (:mod:`tests.slack.fake_slack`) and the real core on the
offline engine (built by the composition root, :class:`bot.app.BotApp`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from adapters.slack.app import SlackAdapter
from adapters.slack.cli import EVENTS_PATH, build_web_app
from bot.app import BotApp
from bot.config import Settings
from bot.offline import OfflineIdeogram
from tests.slack import payloads
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack, Message

CHANNEL = "C0GENERAL"
ALICE = "UALICE"
BOB = "UBOB"


class SlackHarness:
    """The bot process (BotApp + SlackAdapter + HTTP endpoint) talking to :class:`FakeSlack`.

    :meth:`restart` stops the whole bot side and starts a new one on the same database and
    data directory, as a process restart would; the fake (Slack) keeps its history.
    """

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeSlack,
        *,
        adapter_options: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        self.fake = fake
        self.adapter_options = {"status_interval_s": 0.0, **(adapter_options or {})}
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path / "data",
            database_path=tmp_path / "data" / "bot.sqlite3",
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(payloads.SIGNING_SECRET),
            slack_api_url=fake.api_url,
            **overrides,
        )
        self.app: BotApp
        self.adapter: SlackAdapter
        self._server: TestServer | None = None
        self.http: aiohttp.ClientSession
        self.url = ""
        self.ideogram_roots: list[str] = []

    async def start(self) -> SlackHarness:
        self.app = await BotApp(self.settings).__aenter__()
        self.ideogram_roots.append(self.offline.base_url)
        self.adapter = SlackAdapter(
            self.app.engine, self.settings, session=self.app.session, **self.adapter_options
        )
        await self.app.start()
        self._server = TestServer(build_web_app(self.adapter.bolt))
        await self._server.start_server()
        self.url = str(self._server.make_url(EVENTS_PATH))
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the bot side; without ``drain``, listeners still waiting on jobs are cancelled
        (a process killed mid-job)."""
        if drain:
            await self.adapter.drain()
        await self.adapter.close(grace_s=0.0)
        await self.http.close()
        if self._server is not None:
            await self._server.close()
        await self.app.__aexit__(None, None, None)

    def assert_no_ideogram_urls(self) -> None:
        """Nothing the bot sent to Slack contains an address of the (offline) Ideogram API:
        images travel as uploaded files only."""
        sent = json.dumps([c.args for c in self.fake.calls] + self.fake.responses, default=str)
        for root in self.ideogram_roots:
            assert root.split("//")[1] not in sent, f"an Ideogram URL ({root}) reached Slack"

    async def restart(self, *, drain: bool = True) -> None:
        await self.stop(drain=drain)
        await self.start()

    @property
    def offline(self) -> OfflineIdeogram:
        assert self.app.offline is not None
        return self.app.offline

    async def settle(self) -> None:
        """Wait until every listener the bot started has finished."""
        await self.adapter.drain()

    # -- sending -----------------------------------------------------------------------------

    async def send(
        self,
        body: str,
        *,
        content_type: str = payloads.FORM,
        headers: dict[str, str] | None = None,
        secret: str = payloads.SIGNING_SECRET,
        settle: bool = True,
    ) -> tuple[int, str]:
        """POST a signed body to /slack/events; returns (status, response text)."""
        signed = payloads.signed_headers(body, secret=secret, content_type=content_type)
        signed.update(headers or {})
        async with self.http.post(self.url, data=body.encode(), headers=signed) as response:
            text = await response.text()
            status = response.status
        if settle:
            await self.settle()
        return status, text

    async def command(
        self,
        text: str,
        command: str = "/imagine",
        *,
        user: str = ALICE,
        channel: str = CHANNEL,
        trigger: str | None = None,
        headers: dict[str, str] | None = None,
        settle: bool = True,
    ) -> tuple[int, str]:
        fields = payloads.slash_command(
            command,
            text,
            user=user,
            channel=channel,
            response_url=self.fake.response_url(),
            trigger=trigger,
        )
        return await self.send(payloads.form(fields), headers=headers, settle=settle)

    async def press(
        self,
        message: Message,
        label: str,
        *,
        user: str = ALICE,
        trigger: str | None = None,
        headers: dict[str, str] | None = None,
        settle: bool = True,
    ) -> tuple[int, str]:
        """Press the button labelled ``label`` on a message the bot posted, sending exactly
        the ``action_id`` and ``value`` the bot put on it."""
        payload = payloads.block_actions(
            message,
            button(message, label),
            user=user,
            response_url=self.fake.response_url(),
            trigger=trigger,
        )
        return await self.send(payloads.interactive(payload), headers=headers, settle=settle)

    async def submit(
        self,
        view: dict[str, Any],
        *,
        user: str = ALICE,
        files: list[dict[str, Any]] | None = None,
        text: str | None = None,
    ) -> tuple[int, str]:
        payload = payloads.view_submission(view, user=user, files=files, text=text)
        return await self.send(payloads.interactive(payload))

    async def shortcut(
        self,
        callback_id: str,
        message: dict[str, Any],
        *,
        user: str = ALICE,
        channel: str = CHANNEL,
    ) -> tuple[int, str]:
        payload = payloads.message_action(
            callback_id,
            user=user,
            channel=channel,
            message=message,
            response_url=self.fake.response_url(),
        )
        return await self.send(payloads.interactive(payload))

    # -- reading what the bot did --------------------------------------------------------------

    def results(self, channel: str = CHANNEL) -> list[Message]:
        """Result messages in ``channel``: a caption (and buttons), not a file share, a status
        line or a failure."""
        return [
            m
            for m in self.fake.channel_messages(channel)
            if m.blocks and not m.text.startswith(":hourglass") and "\n:x: " not in m.text
        ]

    def statuses(self) -> list[Message]:
        """Every status message the bot posted (deleted ones included), oldest first."""
        return [m for m in self.fake.messages if (m.edits or [m.text])[0].startswith(":hourglass")]

    def opened_view(self) -> dict[str, Any]:
        """The last view the bot opened, with the id the fake gave it."""
        call = self.fake.calls_to("views.open")[-1]
        view = call.args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        return {**view, "id": f"V-opened-{len(self.fake.calls_to('views.open'))}"}

    def ephemerals(self) -> list[str]:
        """Texts shown privately: response_url posts and chat.postEphemeral calls."""
        texts = [r.get("text", "") for r in self.fake.responses]
        texts += [c.args.get("text", "") for c in self.fake.calls_to("chat.postEphemeral")]
        return texts


def form_value(request: Any, name: str) -> str | None:
    """A text field's value from a multipart request the offline engine recorded."""
    boundary = request.content_type.split("boundary=")[1].strip('"').encode()
    for part in request.body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in head:
            return value.removesuffix(b"\r\n").decode()
    return None


def button(message: Message, label: str) -> dict[str, Any]:
    """The button element labelled ``label`` in a message's blocks."""
    for block in message.blocks:
        if block.get("type") == "actions":
            for element in block["elements"]:
                if element["text"]["text"] == label:
                    return element
    raise AssertionError(f"no {label!r} button on the message: {message.blocks}")


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def slack(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[SlackHarness]:
    harness = await SlackHarness(tmp_path, fake_slack).start()
    try:
        yield harness
    finally:
        await harness.stop()
    harness.assert_no_ideogram_urls()
