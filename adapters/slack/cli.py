"""``ideogram-bot slack``: run the Slack adapter in Socket Mode or HTTP mode.

* ``SLACK_APP_TOKEN`` set → Socket Mode: Bolt's ``AsyncSocketModeHandler`` opens a WebSocket
  from ``apps.connections.open``; no public URL needed.
* otherwise → HTTP mode: an aiohttp server on ``SLACK_PORT`` answering ``POST /slack/events``
  (commands, interactivity and events share the one URL), every request verified by Bolt with
  ``SLACK_SIGNING_SECRET``.
* ``SLACK_CLIENT_ID`` + ``SLACK_CLIENT_SECRET`` set → also ``GET /slack/install`` and
  ``GET /slack/oauth_redirect`` (Bolt's OAuth flow) on ``SLACK_PORT``, in either mode.

The HTTP side is Bolt's own aiohttp application (``AsyncApp.web_app``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from adapters.slack.app import SlackAdapter
from bot.app import BotApp
from bot.config import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
#: HTTP mode listens on every interface by default: Slack must reach it (behind a proxy or
#: a tunnel in practice). ``--host 127.0.0.1`` narrows it.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104


def register(subparsers: Any) -> None:
    """Add ``slack`` to the ``ideogram-bot`` command line."""
    slack = subparsers.add_parser(
        "slack", help="run the Slack adapter (Socket Mode with SLACK_APP_TOKEN, else HTTP mode)"
    )
    slack.add_argument(
        "--host", default=DEFAULT_HOST, help="HTTP mode / OAuth: interface to listen on"
    )
    slack.set_defaults(run=run_slack)


def config_problem(settings: Settings) -> str | None:
    """The first missing piece of Slack configuration, as one sentence; ``None`` if usable."""
    oauth = bool(settings.slack_client_id and settings.slack_client_secret)
    if settings.slack_client_id and not settings.slack_client_secret:
        return "SLACK_CLIENT_ID is set without SLACK_CLIENT_SECRET."
    if not oauth and settings.slack_bot_token is None:
        return "Set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET."
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        return "HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)."
    if settings.slack_app_token is not None and not (
        settings.slack_app_token.get_secret_value().startswith("xapp-")
    ):
        return "SLACK_APP_TOKEN must be an app-level token (xapp-…) with connections:write."
    return None


def build_web_app(bolt: AsyncApp, *, events: bool = True, port: int = 3000) -> web.Application:
    """The aiohttp application Slack talks to: Bolt's own (``AsyncApp.web_app``), serving
    ``POST /slack/events`` and, when OAuth is configured, Bolt's install and redirect pages.

    Args:
        bolt: the adapter's Bolt app.
        events: serve ``POST /slack/events`` (HTTP mode). Off in Socket Mode, where only
            Bolt's OAuth pages are served: without a signing secret Bolt's events endpoint
            answers every request with a 500 and an error traceback in the log.
        port: the port it will be served on (Bolt keeps it for its own ``start``).
    """
    if events:
        return bolt.web_app(path=EVENTS_PATH, port=port)
    app = web.Application()
    flow = bolt.oauth_flow
    if flow is not None:
        oauth_pages = bolt.server(path=EVENTS_PATH, port=port).handle_get_requests
        app.router.add_get(flow.install_path, oauth_pages)
        app.router.add_get(flow.redirect_uri_path, oauth_pages)
    return app


@contextlib.asynccontextmanager
async def serving(adapter: SlackAdapter, settings: Settings, host: str) -> AsyncIterator[str]:
    """Connect the adapter to Slack for the ``async with`` block; yields a one-line summary.

    Socket Mode when ``SLACK_APP_TOKEN`` is set, else the HTTP server on ``SLACK_PORT``; the
    OAuth pages are served on ``SLACK_PORT`` in both modes when OAuth is configured.
    """
    socket_mode = settings.slack_app_token is not None
    runner: web.AppRunner | None = None
    handler: AsyncSocketModeHandler | None = None
    parts = []
    try:
        if not socket_mode or adapter.oauth_flow is not None:
            web_app = build_web_app(adapter.bolt, events=not socket_mode, port=settings.slack_port)
            runner = web.AppRunner(web_app)
            await runner.setup()
            await web.TCPSite(runner, host, settings.slack_port).start()
            if not socket_mode:
                parts.append(f"HTTP mode on http://{host}:{settings.slack_port}{EVENTS_PATH}")
            if adapter.oauth_flow is not None:
                install = adapter.oauth_flow.install_path
                parts.append(f"install at http://{host}:{settings.slack_port}{install}")
        if socket_mode:
            assert settings.slack_app_token is not None
            handler = AsyncSocketModeHandler(
                adapter.bolt,
                app_token=settings.slack_app_token.get_secret_value(),
                logger=adapter.bolt.logger,
            )
            await handler.connect_async()  # type: ignore[no-untyped-call]
            parts.insert(0, "Socket Mode")
        yield "; ".join(parts)
    finally:
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        if runner is not None:
            await runner.cleanup()


def bolt_logger(settings: Settings) -> logging.Logger:
    """Bolt's logger: warnings only unless ``LOG_LEVEL=DEBUG`` (at INFO Bolt logs request
    bodies of refused signatures, which may carry user text and legacy tokens)."""
    logger = logging.getLogger("adapters.slack.bolt")
    if settings.log_level != "DEBUG":
        logger.setLevel(logging.WARNING)
    return logger


async def run_slack(args: argparse.Namespace, settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code (2 for a configuration problem)."""
    problem = config_problem(settings)
    if problem is not None:
        print(f"ideogram-bot slack: {problem} See .env.example.", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with BotApp(settings, platforms=frozenset({"slack"})) as app:
        adapter = SlackAdapter(
            app.engine, settings, session=app.session, bolt_logger=bolt_logger(settings)
        )
        await app.start()
        try:
            async with serving(adapter, settings, args.host) as summary:
                log.info("Slack adapter running: %s", summary)
                await stop.wait()
                log.info("Slack adapter stopping")
        finally:
            await adapter.close()
    return 0
