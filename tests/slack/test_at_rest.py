"""What the bot keeps on disk is for its user alone: the data directory, the database and its
WAL, stored images and the Slack installation store are owner-only (0700 / 0600), and the
Slack tokens in the installation store are encrypted when ``BOT_ENCRYPTION_KEY`` is set."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from slack_sdk.oauth.installation_store import Installation

from adapters.slack.app import BOT_SCOPES, SlackAdapter, installations_path
from adapters.slack.cli import build_web_app
from bot.app import BotApp
from bot.cli import main
from bot.config import Settings
from bot.image_store import ImageStore
from tests.conftest import png_bytes
from tests.slack import payloads
from tests.slack.conftest import ALICE, CHANNEL
from tests.slack.fake_slack import FakeSlack

TEAM = "T0002"
SECRETS = {
    "bot_token": "xoxb-second-team",
    "bot_refresh_token": "xoxe-1-bot-refresh",
    "user_token": "xoxp-installer",
    "user_refresh_token": "xoxe-1-user-refresh",
    "incoming_webhook_url": "https://hooks.slack.com/services/T0002/B0002/webhook-secret",
}
#: What must never appear in the installation store's bytes when a key is set.
CLEAR_MARKERS = (b"xoxb-", b"xoxp-", b"xoxe-", b"hooks.slack.com", b"webhook-secret")


def mode(path: Path) -> int:
    """The permission bits of ``path`` (``0o600`` …)."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask 022, under which files are created world-readable by default."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def oauth_settings(tmp_path: Path, fake: FakeSlack, key: str | None = None) -> Settings:
    """Multi-workspace settings (installations in the store), optionally with a key."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_path": tmp_path / "data" / "bot.sqlite3",
        "slack_api_url": fake.api_url,
        "slack_signing_secret": SecretStr(payloads.SIGNING_SECRET),
        "slack_client_id": "111.222",
        "slack_client_secret": SecretStr("client-secret"),
    }
    if key is not None:
        values["bot_encryption_key"] = SecretStr(key)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def installation() -> Installation:
    return Installation(
        app_id=payloads.APP_ID,
        team_id=TEAM,
        bot_id="B2",
        bot_user_id="UBOT2",
        user_id="UINSTALLER",
        bot_scopes=list(BOT_SCOPES),
        bot_token_expires_in=43200,
        user_token_expires_in=43200,
        **SECRETS,  # type: ignore[arg-type]
    )


def store_bytes(settings: Settings) -> bytes:
    """Every byte of the installation store on disk (the file and any journal beside it)."""
    path = installations_path(settings)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_tokens_are_encrypted_on_disk_and_load_back(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """With BOT_ENCRYPTION_KEY, no token or webhook URL is in the store's bytes; after a
    restart every one loads back in clear, and Bolt serves the workspace with its token."""
    settings = oauth_settings(tmp_path, fake_slack, Fernet.generate_key().decode())
    fake_slack.tokens[SECRETS["bot_token"]] = TEAM
    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session, status_interval_s=0)
        assert adapter.installation_store is not None
        await adapter.installation_store.async_save(installation())
    on_disk = store_bytes(settings)
    assert b"slack_installations" in on_disk  # the store is there ...
    assert [m for m in CLEAR_MARKERS if m in on_disk] == []  # ... and holds no secret in clear

    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session, status_interval_s=0)
        await app.start()
        store = adapter.installation_store
        assert store is not None
        found = await store.async_find_installation(enterprise_id=None, team_id=TEAM)
        assert found is not None
        assert {name: getattr(found, name) for name in SECRETS} == SECRETS
        bot = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
        assert bot is not None
        assert (bot.bot_token, bot.bot_refresh_token) == (
            SECRETS["bot_token"],
            SECRETS["bot_refresh_token"],
        )
        assert (await adapter.client_for_team(TEAM)).token == SECRETS["bot_token"]

        server = TestServer(build_web_app(adapter.bolt))
        await server.start_server()
        try:
            fields = payloads.slash_command(
                "/usage",
                "",
                user=ALICE,
                channel=CHANNEL,
                team=TEAM,
                response_url=fake_slack.response_url(),
            )
            body = payloads.form(fields)
            headers = payloads.signed_headers(body, content_type=payloads.FORM)
            async with (
                aiohttp.ClientSession() as http,
                http.post(str(server.make_url("/slack/events")), data=body, headers=headers) as r,
            ):
                assert r.status == 200
            await adapter.drain()
        finally:
            await server.close()
            await adapter.close()
    assert "*Your usage*" in fake_slack.responses[-1]["text"]
    assert {c.token for c in fake_slack.calls} == {SECRETS["bot_token"]}


async def test_key_rotation_wrong_keys_and_tokens_saved_in_clear(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """A token saved in clear (before a key was set) still loads; one saved with key A loads
    with "B,A" (rotation), and with B alone or no key it is refused with a message that
    names neither key nor token."""
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    async def save(key: str | None, team: str) -> None:
        settings = oauth_settings(tmp_path, fake_slack, key)
        async with BotApp(settings) as app:
            adapter = SlackAdapter(app.engine, settings, session=app.session)
            assert adapter.installation_store is not None
            item = installation()
            item.team_id = team
            await adapter.installation_store.async_save(item)

    async def bot_token(key: str | None, team: str) -> str | None:
        settings = oauth_settings(tmp_path, fake_slack, key)
        async with BotApp(settings) as app:
            adapter = SlackAdapter(app.engine, settings, session=app.session)
            assert adapter.installation_store is not None
            bot = await adapter.installation_store.async_find_bot(enterprise_id=None, team_id=team)
            return None if bot is None else bot.bot_token

    await save(None, "TCLEAR")
    await save(old_key, TEAM)
    assert await bot_token(old_key, "TCLEAR") == SECRETS["bot_token"]
    assert await bot_token(f"{new_key}, {old_key}", TEAM) == SECRETS["bot_token"]
    for wrong in (new_key, None):
        with pytest.raises(RuntimeError) as caught:
            await bot_token(wrong, TEAM)
        message = str(caught.value)
        assert "BOT_ENCRYPTION_KEY" in message
        assert old_key not in message and new_key not in message and "xox" not in message


def test_a_bad_key_is_a_clear_startup_error_that_does_not_echo_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """BOT_ENCRYPTION_KEY that is not a Fernet key stops the start naming the variable, and
    its value appears nowhere in what is printed."""
    monkeypatch.chdir(tmp_path)
    bad = "not-a-fernet-key-but-a-secret-passphrase"
    monkeypatch.setenv("BOT_ENCRYPTION_KEY", bad)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "data" / "bot.sqlite3"))
    assert main(["migrate"]) == 2
    out, err = capsys.readouterr()
    assert "BOT_ENCRYPTION_KEY" in err
    assert bad not in out + err
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    (error,) = caught.value.errors(include_input=False)
    assert "not a Fernet key" in error["msg"] and bad not in error["msg"]


async def test_data_dir_database_images_and_installations_are_owner_only(
    tmp_path: Path, fake_slack: FakeSlack, usual_umask: None
) -> None:
    """Under umask 022, everything the bot creates in DATA_DIR is 0700 (directories) or
    0600 (files): the data directory, the database and its WAL, a stored image and its
    directories, and the Slack installation store (from the moment the adapter starts)."""
    settings = oauth_settings(tmp_path, fake_slack, Fernet.generate_key().decode())
    data = settings.data_dir
    async with BotApp(settings) as app:
        adapter = SlackAdapter(app.engine, settings, session=app.session)
        store_file = installations_path(settings)
        before_any_install = mode(store_file) if store_file.exists() else None
        assert adapter.installation_store is not None
        await adapter.installation_store.async_save(installation())
        digest = await ImageStore(data).put(png_bytes())
        image = ImageStore(data).path_for(digest)
        database = settings.database_path
        wal = database.with_name(database.name + "-wal")
        modes = {
            str(p.relative_to(tmp_path)): oct(mode(p))
            for p in (
                data,
                database,
                wal,
                store_file,
                data / "images",
                image.parent,
                image,
            )
        }
        await adapter.close()
    assert modes == {
        "data": oct(0o700),
        "data/bot.sqlite3": oct(0o600),
        "data/bot.sqlite3-wal": oct(0o600),
        "data/slack-installations.sqlite3": oct(0o600),
        "data/images": oct(0o700),
        f"data/images/{digest[:2]}": oct(0o700),
        f"data/images/{digest[:2]}/{digest}": oct(0o600),
    }
    assert before_any_install == 0o600
