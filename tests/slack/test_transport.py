"""Connection modes and installs: Socket Mode, OAuth (multi-workspace), events, the CLI."""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import yaml
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from slack_sdk.oauth.installation_store import Installation

from adapters.slack.app import BOT_SCOPES, SlackAdapter
from adapters.slack.cli import build_web_app, config_problem, serving
from adapters.slack.listeners import SHORTCUTS, command_name
from bot.app import BotApp
from bot.cli import build_parser
from bot.commands import registry
from bot.config import Settings
from tests.slack import payloads
from tests.slack.conftest import ALICE, CHANNEL, SlackHarness
from tests.slack.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, fake: FakeSlack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_path": tmp_path / "data" / "bot.sqlite3",
        "slack_api_url": fake.api_url,
        "slack_bot_token": SecretStr(BOT_TOKEN),
        "slack_signing_secret": SecretStr(payloads.SIGNING_SECRET),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_socket_mode_receives_envelopes_and_acks_them(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """With SLACK_APP_TOKEN the bot opens a Socket Mode WebSocket from apps.connections.open
    (called with the app token), acks each envelope by its id, and runs the command; a retried
    envelope of the same command starts no second job."""
    settings = _settings(
        tmp_path, fake_slack, slack_app_token=SecretStr(APP_TOKEN), slack_signing_secret=None
    )
    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session, status_interval_s=0)
        await app.start()
        async with serving(adapter, settings, "127.0.0.1") as summary:
            assert summary == "Socket Mode"
            await fake_slack.wait_for(lambda: fake_slack.socket_connections == 1)
            (connect,) = fake_slack.calls_to("apps.connections.open")
            assert connect.token == APP_TOKEN

            fields = payloads.slash_command(
                "/imagine",
                "a paper boat --seed 6",
                user=ALICE,
                channel=CHANNEL,
                response_url=fake_slack.response_url(),
            )
            first = await fake_slack.push_envelope("slash_commands", fields)
            await fake_slack.wait_for(
                lambda: any(a.get("envelope_id") == first for a in fake_slack.socket_acks)
            )
            retry = await fake_slack.push_envelope("slash_commands", fields, retry_attempt=1)
            await fake_slack.wait_for(
                lambda: any(a.get("envelope_id") == retry for a in fake_slack.socket_acks)
            )
            await adapter.drain()
            await fake_slack.wait_for(lambda: bool(fake_slack.shared))
            assert len(app.offline.requests) == 1  # type: ignore[union-attr]

            home = await fake_slack.push_envelope("events_api", payloads.app_home_opened(ALICE))
            await fake_slack.wait_for(
                lambda: any(a.get("envelope_id") == home for a in fake_slack.socket_acks)
            )
            await adapter.drain()
        await adapter.close()
    results = [m for m in fake_slack.channel_messages(CHANNEL) if m.blocks]
    assert len(results) == 1 and "a paper boat" in results[0].text
    assert fake_slack.calls_to("views.publish")[0].args["user_id"] == ALICE


async def test_app_home_shows_usage_and_settings_to_admins(slack: SlackHarness) -> None:
    """Opening the App Home publishes the viewer's usage; admins also see the settings."""
    await slack.command("a swan --seed 2")
    body = json.dumps(payloads.app_home_opened(ALICE))
    status, _ = await slack.send(body, content_type="application/json")
    assert status == 200
    view = slack.fake.calls_to("views.publish")[-1].args["view"]
    text = json.dumps(view)
    assert view["type"] == "home" and "*Your usage*" in text and "daily_quota" not in text

    slack.fake.admins.add(ALICE)
    await slack.send(json.dumps(payloads.app_home_opened(ALICE)), content_type="application/json")
    admin_view = json.dumps(slack.fake.calls_to("views.publish")[-1].args["view"])
    assert "Workspace settings" in admin_view and "daily_quota" in admin_view


async def test_uninstall_events_are_acknowledged(slack: SlackHarness) -> None:
    """Subscribed lifecycle events get 200, so Slack does not retry them."""
    event = payloads.app_home_opened(ALICE)
    event["event"] = {"type": "app_uninstalled", "event_ts": "1.0"}
    status, _ = await slack.send(json.dumps(event), content_type="application/json")
    assert status == 200


async def test_oauth_install_and_multi_workspace_tokens(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """With client id/secret, /slack/install starts Bolt's OAuth flow with the manifest's
    scopes, and a request from an installed workspace is served with that workspace's own bot
    token, found in the SQLite installation store."""
    settings = _settings(
        tmp_path,
        fake_slack,
        slack_bot_token=None,
        slack_client_id="111.222",
        slack_client_secret=SecretStr("client-secret"),
    )
    fake_slack.tokens["xoxb-second-team"] = "T0002"
    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session, status_interval_s=0)
        await app.start()
        assert adapter.installation_store is not None
        await adapter.installation_store.async_save(
            Installation(
                app_id=payloads.APP_ID,
                team_id="T0002",
                bot_token="xoxb-second-team",
                bot_id="B2",
                bot_user_id="UBOT2",
                user_id="UINSTALLER",
                bot_scopes=list(BOT_SCOPES),
            )
        )
        server = TestServer(build_web_app(adapter.bolt))
        await server.start_server()
        base = str(server.make_url(""))
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/slack/install", allow_redirects=False) as response:
                    page = await response.text()
                    assert response.status == 200
                authorize = html.unescape(page.split('<a href="')[1].split('"')[0])
                query = parse_qs(urlsplit(authorize).query)
                assert query["client_id"] == ["111.222"]
                assert set(query["scope"][0].split(",")) == set(BOT_SCOPES)

                fields = payloads.slash_command(
                    "/usage",
                    "",
                    user=ALICE,
                    channel=CHANNEL,
                    team="T0002",
                    response_url=fake_slack.response_url(),
                )
                body = payloads.form(fields)
                headers = payloads.signed_headers(body, content_type=payloads.FORM)
                async with http.post(f"{base}/slack/events", data=body, headers=headers) as r:
                    assert r.status == 200
            await adapter.drain()
        finally:
            await server.close()
            await adapter.close()
    assert "*Your usage*" in fake_slack.responses[-1]["text"]
    assert {c.token for c in fake_slack.calls} == {"xoxb-second-team"}


async def test_socket_mode_serves_the_oauth_pages_without_an_events_endpoint(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """In Socket Mode with OAuth, the web app serves Bolt's install page but no
    /slack/events: there is no signing secret to check a request with, so a stray POST is
    "not found", neither run nor a server error."""
    settings = _settings(
        tmp_path,
        fake_slack,
        slack_bot_token=None,
        slack_signing_secret=None,
        slack_app_token=SecretStr(APP_TOKEN),
        slack_client_id="111.222",
        slack_client_secret=SecretStr("client-secret"),
    )
    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session, status_interval_s=0)
        await app.start()
        fields = payloads.slash_command(
            "/usage", "", user=ALICE, channel=CHANNEL, response_url=fake_slack.response_url()
        )
        body = payloads.form(fields)
        forged = payloads.signed_headers(body, secret="guessed", content_type=payloads.FORM)
        async with (
            TestServer(build_web_app(adapter.bolt, events=False)) as server,
            aiohttp.ClientSession() as http,
        ):
            async with http.get(server.make_url("/slack/install")) as response:
                assert response.status == 200
            async with http.post(
                server.make_url("/slack/events"), data=body, headers=forged
            ) as response:
                assert response.status == 404
        await adapter.drain()
        await adapter.close()
    assert fake_slack.responses == [] and app.offline is not None
    assert app.offline.requests == []


def test_config_problems_are_named(tmp_path: Path) -> None:
    """The CLI refuses to start without what the chosen mode needs, naming the variable."""
    base = {"data_dir": tmp_path, "database_path": tmp_path / "db.sqlite3"}
    assert "SLACK_BOT_TOKEN" in (config_problem(Settings(_env_file=None, **base)) or "")
    http_without_secret = Settings(_env_file=None, slack_bot_token=SecretStr("xoxb-1"), **base)
    assert "SLACK_SIGNING_SECRET" in (config_problem(http_without_secret) or "")
    bad_app_token = Settings(
        _env_file=None,
        slack_bot_token=SecretStr("xoxb-1"),
        slack_app_token=SecretStr("xoxb-wrong"),
        **base,
    )
    assert "xapp-" in (config_problem(bad_app_token) or "")
    socket = Settings(
        _env_file=None,
        slack_bot_token=SecretStr("xoxb-1"),
        slack_app_token=SecretStr("xapp-1"),
        **base,
    )
    assert config_problem(socket) is None


def test_cli_has_the_slack_subcommand() -> None:
    """``ideogram-bot slack`` is registered through the adapters entry point."""
    args = build_parser().parse_args(["slack", "--host", "127.0.0.1"])
    assert args.host == "127.0.0.1" and args.run.__module__ == "adapters.slack.cli"


def test_command_names_with_prefixes() -> None:
    """Renamed commands route by their ending; unknown names pass through for the core."""
    assert command_name("/imagine") == "imagine"
    assert command_name("/ig-replace-bg") == "replace-bg"
    assert command_name("/ig_remove-bg") == "remove-bg"
    assert command_name("/IG-Usage") == "usage"
    assert command_name("/paint") == "paint"


def test_manifest_matches_the_bot() -> None:
    """slack-manifest.yaml declares every command, the three shortcuts, the scopes and the
    events the bot handles."""
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text(encoding="utf-8"))
    features = manifest["features"]
    assert {c["command"] for c in features["slash_commands"]} == {
        f"/{name}" for name in registry.for_platform("slack")
    }
    assert all(c["url"].endswith("/slack/events") for c in features["slash_commands"])
    shortcuts = {s["callback_id"]: s["name"] for s in features["shortcuts"]}
    assert shortcuts == {
        "remix_image": "Remix this image",
        "describe_image": "Describe this image",
        "upscale_image": "Upscale this image",
    }
    assert set(shortcuts) == set(SHORTCUTS)
    assert all(s["type"] == "message" for s in features["shortcuts"])
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert features["app_home"]["home_tab_enabled"] is True
