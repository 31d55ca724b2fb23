"""Slack figure for ``make bench``: how fast the bot acknowledges Slack (the 3-second rule).

``slack_ack_ms``: 100 signed ``/imagine`` commands from 100 users arrive at once at the real
Bolt app (HTTP mode, ``POST /slack/events``); for each, the time from the request reaching the
bot's HTTP handler to its HTTP 200 (the ``ack``), measured on the server side. The jobs then
run to the end against the loopback fake Slack Web API and the offline engine, so the acks are
measured while the bot is also busy posting status messages and starting jobs — as in a real
burst. Target: p99 ≤ 100 ms (Slack allows 3 s).

``slack_ack_client_ms`` is the same requests seen from the sender (loopback connection and
queuing included), for comparison.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from adapters.slack.app import SlackAdapter
from adapters.slack.cli import build_web_app
from benchmarks.figures import summary
from bot.app import BotApp
from bot.config import Settings
from tests.slack import payloads
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack

COMMANDS = 100
TARGET_P99_MS = 100.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def run(root: Path) -> list[dict[str, object]]:
    """Measure the ack figures in ``root`` (a scratch directory); print and return them."""
    fake = await FakeSlack().start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=root / "slack",
        database_path=root / "slack" / "bot.sqlite3",
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=SecretStr(payloads.SIGNING_SECRET),
        slack_api_url=fake.api_url,
        max_user_active_jobs=3,
        default_daily_quota=0,
        default_monthly_budget_usd=0,
    )
    server_times: dict[str, float] = {}

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        server_times[request.headers["X-Bench-Id"]] = time.perf_counter() - started
        return response

    try:
        async with BotApp(settings) as app:
            adapter = SlackAdapter(app.engine, settings, session=app.session)
            await app.start()
            web_app = build_web_app(adapter.bolt)
            web_app.middlewares.append(timing)
            server = TestServer(web_app)
            await server.start_server(access_log=None)
            url = str(server.make_url("/slack/events"))
            connector = aiohttp.TCPConnector(limit=0)  # all requests really arrive at once
            try:
                async with aiohttp.ClientSession(connector=connector) as http:

                    async def send(n: int) -> float:
                        fields = payloads.slash_command(
                            "/imagine",
                            f"a lighthouse number {n} --seed {n} --speed flash",
                            user=f"UBENCH{n:03d}",
                            channel="CBENCH",
                            response_url=fake.response_url(),
                        )
                        body = payloads.form(fields)
                        headers = payloads.signed_headers(body, content_type=payloads.FORM)
                        headers["X-Bench-Id"] = str(n)
                        started = time.perf_counter()
                        async with http.post(url, data=body, headers=headers) as response:
                            await response.read()
                            if response.status != 200:
                                raise RuntimeError(f"command {n}: HTTP {response.status}")
                        return time.perf_counter() - started

                    await send(-1)  # warm-up: auth.test, connection pools, SQLite pages
                    await adapter.drain()
                    server_times.clear()
                    client_times = await asyncio.gather(*(send(n) for n in range(COMMANDS)))
                    await adapter.drain()
            finally:
                await server.close()
                await adapter.close()
    finally:
        await fake.close()
    posted = len(
        [
            m
            for m in fake.channel_messages("CBENCH")
            if any(b["type"] == "actions" for b in m.blocks)
        ]
    )
    server = summary(
        "slack_ack_ms",
        list(server_times.values()),
        "ms",
        scale=1000,
        target=f"p99 <= {TARGET_P99_MS:.0f}",
        results_posted=posted,
    )
    client = summary("slack_ack_client_ms", list(client_times), "ms", scale=1000)
    return [server, client]


if __name__ == "__main__":  # pragma: no cover - ``python -m benchmarks.slack_bench``
    import logging
    import tempfile

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))
