"""Slack request bodies shaped like the real ones, and Slack's request signature.

Slash commands are form bodies (Slack API: "Enabling interactivity with Slash commands");
interactive payloads (``block_actions``, ``view_submission``, ``message_action``) are a form
body with one ``payload=<JSON>`` field; Events API callbacks are JSON
(bolt-python ``tests/scenario_tests_async``).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.slack.fake_slack import TEAM_ID, Message

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
APP_ID = "A0001"
FORM = "application/x-www-form-urlencoded"

_ids = itertools.count(1)


def trigger_id() -> str:
    """A fresh ``trigger_id`` (Slack's shape: ``<digits>.<digits>.<hex>``)."""
    n = next(_ids)
    return f"{13345224609 + n}.738474920.{n:032x}"


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    """Headers Slack sends: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": content_type,
    }


def slash_command(
    command: str,
    text: str,
    *,
    user: str,
    channel: str,
    response_url: str,
    trigger: str | None = None,
    team: str = TEAM_ID,
) -> dict[str, str]:
    """The fields of a slash command request."""
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "team_domain": "example",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger or trigger_id(),
    }


def form(fields: dict[str, str]) -> str:
    """A form-encoded body."""
    return urlencode(fields)


def interactive(payload: dict[str, Any]) -> str:
    """An interactive request body: ``payload=<urlencoded JSON>``."""
    return urlencode({"payload": json.dumps(payload)})


def _user(user: str, team: str) -> dict[str, Any]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}


def block_actions(
    message: Message,
    button: dict[str, Any],
    *,
    user: str,
    response_url: str,
    trigger: str | None = None,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A press of ``button`` (a button element as the bot sent it, with its ``action_id``,
    ``value`` and text) on ``message``, a message the bot posted."""
    return {
        "type": "block_actions",
        "user": _user(user, team),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "trigger_id": trigger or trigger_id(),
        "team": {"id": team, "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": "general"},
        "message": {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
        },
        "response_url": response_url,
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "b1",
                "text": {"type": "plain_text", "text": button["text"]["text"], "emoji": True},
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(
    view: dict[str, Any],
    *,
    user: str,
    files: list[dict[str, Any]] | None = None,
    text: str | None = None,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """The submission of a modal the bot opened (``view`` as sent to ``views.open``, with the
    ``id`` the fake gave it), with the file field and the prompt field filled in."""
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        if element["type"] == "file_input":
            values[block["block_id"]] = {
                element["action_id"]: {"type": "file_input", "files": files or []}
            }
        elif element["type"] == "plain_text_input":
            values[block["block_id"]] = {
                element["action_id"]: {"type": "plain_text_input", "value": text}
            }
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": "example"},
        "user": _user(user, team),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id(),
        "view": {
            **view,
            "team_id": team,
            "type": "modal",
            "hash": "1700000000.abc",
            "state": {"values": values},
            "app_id": APP_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }


def message_action(
    callback_id: str,
    *,
    user: str,
    channel: str,
    message: dict[str, Any],
    response_url: str,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A message shortcut on ``message``."""
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team, "domain": "example"},
        "user": _user(user, team),
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": callback_id,
        "trigger_id": trigger_id(),
        "response_url": response_url,
        "message_ts": message.get("ts"),
        "message": message,
    }


def app_home_opened(user: str, *, team: str = TEAM_ID) -> dict[str, Any]:
    """An Events API callback for ``app_home_opened``."""
    n = next(_ids)
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user}",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        "type": "event_callback",
        "event_id": f"Ev{n:08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": team, "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
        ],
    }
