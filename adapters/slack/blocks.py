"""Block Kit rendering: results, status lines, the image modals and the App Home tab.

Everything here is a pure function from core values to Slack payload dicts, so it can be tested
without a network. The core writes a light Markdown subset (``**bold**``, `` `code` ``, fenced
code blocks); :func:`to_mrkdwn` turns it into Slack ``mrkdwn`` and escapes ``&``, ``<`` and
``>`` so that user text (a prompt containing ``<!channel>``) can never ping anyone.

Slack limits followed (Block Kit reference, "Blocks" and "Block elements"): section text ≤ 3,000
characters, button text ≤ 75, ``action_id`` ≤ 255, ``value`` ≤ 2,000, ≤ 25 elements per actions
block, modal title ≤ 24 characters, ``private_metadata`` ≤ 3,000 characters, ≤ 100 blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.commands.registry import CommandSpec, for_platform
from bot.types import Action, Caption, JobResult

# -- Slack-only wording (the core's sentences live in bot.messages) ----------------------------

NOT_IN_CHANNEL = (
    "I can't post in this channel, so I sent this to you in a direct message; "
    "invite me with `/invite @Ideogram` to post here."
)
SHORTCUT_NEEDS_IMAGE = "Use this shortcut on a message that has an image file (PNG, JPEG or WebP)."
SLACK_HELP_NOTE = (
    "On Slack, `/remix`, `/describe`, `/upscale`, `/reframe`, `/replace-bg` and `/remove-bg` open "
    "a form where you attach the image; the message shortcuts *Remix this image*, *Describe this "
    "image* and *Upscale this image* work on any message with an image."
)
HOME_SETTINGS_HINT = (
    "Change a value with `/settings set KEY VALUE`; `/settings reset KEY` undoes it."
)

# -- limits ---------------------------------------------------------------------------------

SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2000
MODAL_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
PLAIN_TEXT_INPUT_MAX = 3000

#: ``callback_id`` of every image-command modal; the command travels in ``private_metadata``.
MODAL_CALLBACK_ID = "ig_image_command"
IMAGE_BLOCK_ID = "ig_image"
IMAGE_ACTION_ID = "file"
PROMPT_BLOCK_ID = "ig_prompt"
PROMPT_ACTION_ID = "text"

#: File types offered by the ``file_input`` picker. Slack treats this as a hint only, so every
#: file is still checked by its bytes (``bot.images.prepare_input_image``).
IMAGE_FILETYPES = ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff", "tif", "heic")

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_MENTION_MARK = "\x00"
_MENTION = re.compile(f"{_MENTION_MARK}([A-Z0-9]+){_MENTION_MARK}")


# -- text -----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape the three characters Slack gives meaning to in message text (``&``, ``<``, ``>``).

    Slack docs: "Formatting text for app surfaces", section "Escaping text".
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Convert the core's Markdown subset to Slack ``mrkdwn``: ``**bold**`` → ``*bold*``.

    Backticks and fenced code blocks mean the same in both. ``&``, ``<``, ``>`` are escaped
    first, so links and mentions can only come from :func:`mention`.
    """
    return _BOLD.sub(r"*\1*", escape(text))


def mention(user_id: str) -> str:
    """``<@U123>``: a user mention in ``mrkdwn`` (only for ids, never for user text)."""
    return f"<@{user_id}>"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking a cut with ``…``."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def caption_mrkdwn(caption: Caption) -> str:
    """The core's result caption (:func:`bot.messages.caption_text`) in ``mrkdwn``, the
    requester as a real mention."""
    # Mentions are inserted after escaping, through a marker the escaping leaves alone.
    marked = messages.caption_text(
        caption, mention=lambda uid: f"{_MENTION_MARK}{uid}{_MENTION_MARK}"
    )
    return _MENTION.sub(lambda m: mention(m.group(1)), to_mrkdwn(marked))


def section(text: str) -> dict[str, Any]:
    """A ``section`` block with ``mrkdwn`` text (cut to Slack's 3,000 characters)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_MAX)}}


def context(text: str) -> dict[str, Any]:
    """A ``context`` block with one ``mrkdwn`` element."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2000)}]}


def plain(text: str, limit: int = 150) -> dict[str, Any]:
    """A ``plain_text`` object (emoji allowed)."""
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


# -- results --------------------------------------------------------------------------------


def button(action: Action) -> dict[str, Any]:
    """A Block Kit button for a core :class:`~bot.types.Action`.

    ``action_id`` and ``value`` both carry ``ig:<kind>:<job_id>:<index>`` (≤ 39 characters), so
    the press can be served from SQLite alone, after a restart, on an old message.
    """
    action_id = action.action_id
    if len(action_id) > ACTION_ID_MAX:  # pragma: no cover - the core keeps ids ≤ 39 chars
        raise ValueError(f"action_id longer than {ACTION_ID_MAX}: {action_id!r}")
    return {
        "type": "button",
        "text": plain(action.label, BUTTON_TEXT_MAX),
        "action_id": action_id,
        "value": action_id[:BUTTON_VALUE_MAX],
    }


def result_message(result: JobResult) -> tuple[str, list[dict[str, Any]]]:
    """The message under a job's uploaded files: caption, descriptions, note, buttons.

    Returns:
        ``(text, blocks)``: ``text`` is the notification fallback, ``blocks`` hold one
        ``section`` for the caption, one per ``/describe`` text, and one ``actions`` block per
        core button row (each ≤ 5 buttons).
    """
    caption = caption_mrkdwn(result.caption)
    blocks: list[dict[str, Any]] = [section(caption)]
    for number, text in enumerate(result.descriptions, start=1):
        blocks.append(section(f"*{number}.* {escape(text)}"))
    if result.error:
        blocks.append(context(f":x: {to_mrkdwn(result.error)}"))
    for n, row in enumerate(result.rows):
        blocks.append(
            {
                "type": "actions",
                "block_id": f"ig_actions_{result.job_id}_{n}",
                "elements": [button(a) for a in row],
            }
        )
    return truncate(caption, 3000), blocks


def failure_text(result: JobResult) -> str:
    """A failed or cancelled job in one message: its caption, then the reason."""
    reason = result.error or messages.SERVER_ERROR
    return f"{caption_mrkdwn(result.caption)}\n:x: {to_mrkdwn(reason)}"


def status_text(headline: str, progress_text: str) -> str:
    """The in-channel status line of a running job (queue position, then "Generating…")."""
    return f":hourglass_flowing_sand: {headline} — {to_mrkdwn(progress_text)}"


def status_message(
    headline: str, progress_text: str, cancel: Action | None
) -> tuple[str, list[dict[str, Any]]]:
    """The status message of a queued or running job: its line and, while the job can still
    be stopped, the core's Cancel button (only the job's owner may use it)."""
    text = status_text(headline, progress_text)
    message_blocks = [section(text)]
    if cancel is not None:
        message_blocks.append(
            {
                "type": "actions",
                "block_id": f"ig_status_{cancel.job_id}",
                "elements": [button(cancel)],
            }
        )
    return text, message_blocks


def command_headline(user_id: str, command: str, text: str) -> str:
    """``<@U1> /imagine *a fox in the snow*``: who ran what, for status lines."""
    shown = truncate(" ".join(text.split()), 150)
    prompt = f" *{escape(shown)}*" if shown else ""
    return f"{mention(user_id)} /{command}{prompt}"


def press_headline(user_id: str, label: str, job_id: str) -> str:
    """``<@U1> U2 on job `abc…```: who pressed which button of which job."""
    return f"{mention(user_id)} {escape(label)} on job `{job_id}`"


def ephemeral_text(text: str) -> str:
    """A core :class:`~bot.types.TextReply` (or :class:`~bot.errors.UserError`) as ``mrkdwn``."""
    return to_mrkdwn(text)


# -- modals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModalState:
    """What an image-command modal carries in ``private_metadata`` (a view has no channel).

    Attributes:
        command: the core command (``remix``).
        channel_id: where the command was run and the result goes.
        thread_ts: the thread to answer in, if any.
        source: for message shortcuts, the Slack file object (``id``, ``name``, ``mimetype``,
            ``url_private`` …) taken from the message instead of a ``file_input``.
    """

    command: str
    channel_id: str
    thread_ts: str | None = None
    source: Mapping[str, Any] | None = None

    def dump(self) -> str:
        """Encode as JSON of at most :data:`PRIVATE_METADATA_MAX` characters."""
        data: dict[str, Any] = {"cmd": self.command, "ch": self.channel_id}
        if self.thread_ts:
            data["th"] = self.thread_ts
        if self.source:
            data["src"] = slim_file(self.source)
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > PRIVATE_METADATA_MAX:  # pragma: no cover - slim_file bounds every field
            raise ValueError("private_metadata too long")
        return text

    @classmethod
    def load(cls, text: str) -> ModalState:
        """Decode :meth:`dump`'s JSON.

        Raises:
            ValueError: not ours (malformed JSON or missing fields).
        """
        data = json.loads(text or "{}")
        if not isinstance(data, dict) or not data.get("cmd") or not data.get("ch"):
            raise ValueError("not an ideogram-bot modal")
        source = data.get("src")
        return cls(
            command=str(data["cmd"]),
            channel_id=str(data["ch"]),
            thread_ts=data.get("th"),
            source=source if isinstance(source, dict) else None,
        )


def slim_file(file: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Slack file object the bot needs, each bounded (for metadata)."""
    keep = ("id", "name", "mimetype", "filetype", "size", "url_private", "url_private_download")
    out: dict[str, Any] = {}
    for key in keep:
        value = file.get(key)
        if value is None:
            continue
        out[key] = value if isinstance(value, int) else truncate(str(value), 600)
    return out


def _prompt_field(spec: CommandSpec, prefill: str) -> dict[str, Any]:
    if spec.name == "reframe":
        label, hint = "Resolution", "1344x768 — or 768x1344, 1024x1024 …"
    else:
        label = "Prompt" if spec.prompt == "required" else "Prompt (optional)"
        hint = "Describe what you want; flags like --ar 16:9 go at the end"
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": PROMPT_ACTION_ID,
        "multiline": spec.name != "reframe",
        "max_length": PLAIN_TEXT_INPUT_MAX,
        "placeholder": plain(hint),
    }
    if prefill.strip():
        element["initial_value"] = truncate(prefill.strip(), PLAIN_TEXT_INPUT_MAX)
    return {
        "type": "input",
        "block_id": PROMPT_BLOCK_ID,
        "optional": spec.prompt == "optional",
        "label": plain(label),
        "element": element,
    }


def takes_text(spec: CommandSpec) -> bool:
    """Whether the command's modal has a text field (a prompt, or /reframe's resolution)."""
    return spec.prompt != "none" or spec.name == "reframe"


def image_modal(spec: CommandSpec, state: ModalState, prefill: str = "") -> dict[str, Any]:
    """The modal of an image command: a ``file_input`` (unless the image comes from a message
    shortcut, ``state.source``) plus a prompt field where the command takes one.

    Slack docs: "Modals" and the ``file_input`` element (1 file, files:read scope).
    """
    blocks: list[dict[str, Any]] = [context(escape(spec.summary))]
    if state.source is None:
        blocks.append(
            {
                "type": "input",
                "block_id": IMAGE_BLOCK_ID,
                "label": plain("Image"),
                "element": {
                    "type": "file_input",
                    "action_id": IMAGE_ACTION_ID,
                    "filetypes": list(IMAGE_FILETYPES),
                    "max_files": 1,
                },
            }
        )
    else:
        name = escape(str(state.source.get("name") or "image"))
        blocks.append(section(f":frame_with_picture: Image: `{name}` from the message"))
    if takes_text(spec):
        blocks.append(_prompt_field(spec, prefill))
        if spec.flags:
            flags = " ".join(f"`--{f}`" for f in sorted(spec.flags))
            blocks.append(context(f"Flags: {flags} — `/help` explains them."))
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK_ID,
        "private_metadata": state.dump(),
        "title": plain(f"/{spec.name}", MODAL_TITLE_MAX),
        "submit": plain("Run"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def submitted_files(view: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The Slack file objects of a submitted modal's ``file_input`` (maybe empty)."""
    values = view.get("state", {}).get("values", {})
    field = values.get(IMAGE_BLOCK_ID, {}).get(IMAGE_ACTION_ID, {})
    files = field.get("files") or []
    return [f for f in files if isinstance(f, Mapping)]


def submitted_text(view: Mapping[str, Any]) -> str:
    """The text of a submitted modal's prompt field (``""`` when absent or empty)."""
    values = view.get("state", {}).get("values", {})
    field = values.get(PROMPT_BLOCK_ID, {}).get(PROMPT_ACTION_ID, {})
    return str(field.get("value") or "")


def modal_error_block(spec: CommandSpec, state: ModalState) -> str:
    """The block an image error is shown on: the file field, or the prompt field when the
    image came from a message (a shortcut modal has no file field)."""
    if state.source is None:
        return IMAGE_BLOCK_ID
    return PROMPT_BLOCK_ID if takes_text(spec) else IMAGE_BLOCK_ID


# -- App Home --------------------------------------------------------------------------------


def home_view(usage_text: str, settings_text: str | None) -> dict[str, Any]:
    """The App Home tab: the viewer's usage and, for workspace admins, the settings.

    Args:
        usage_text: the core's ``/usage`` reply (Markdown subset).
        settings_text: the core's ``/settings show`` reply, or ``None`` for non-admins.
    """
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain("Ideogram")},
        section(to_mrkdwn(usage_text)),
    ]
    if settings_text is not None:
        blocks.append({"type": "divider"})
        blocks.append({"type": "header", "text": plain("Workspace settings")})
        blocks.append(section(to_mrkdwn(settings_text)))
        blocks.append(context(to_mrkdwn(HOME_SETTINGS_HINT)))
    blocks.append({"type": "divider"})
    commands = " ".join(f"`/{name}`" for name in for_platform("slack"))
    blocks.append(context(f"Commands: {commands}. Type `/help` for flags and examples."))
    return {"type": "home", "blocks": blocks}


def help_text(core_help: str) -> str:
    """The core's ``/help`` plus how images are given on Slack."""
    return f"{core_help}\n\n{SLACK_HELP_NOTE}"
