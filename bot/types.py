"""Platform-neutral values that cross the line between the core and the adapters.

Adapters translate platform events into :class:`Invocation` / :class:`Press` and render
:class:`Reply` values (:class:`TextReply`, :class:`JobResult`) back into platform messages
(docs/architecture.md, layers). No platform payload rides along inside these types.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from bot.images import InputImage

Platform = Literal["discord", "slack", "console"]

#: Button ids: ``ig:<kind>:<job_id>:<index>``; all state is loaded from the job, so buttons keep
#: working after a restart. Job ids are 12 lowercase base32 chars, so an id is at most
#: 3 + 20 + 1 + 12 + 1 + 2 = 39 chars: well under Discord's 100 and Slack's 255.
ACTION_ID_PREFIX = "ig"
ACTION_ID_RE = re.compile(r"^ig:(?P<kind>[a-z_]+):(?P<job_id>[a-z0-9]{4,32}):(?P<index>\d{1,2})$")


class ActionKind(StrEnum):
    """Follow-up actions a result offers (the buttons under it, docs/commands.md)."""

    UPSCALE = "upscale"  # U1…Un
    VARY = "vary"  # V1…Vn (subtle weight)
    REROLL = "reroll"  # 🔄
    VARY_SUBTLE = "vary_subtle"  # on upscales
    VARY_STRONG = "vary_strong"  # on upscales
    ZOOM_OUT = "zoom_out"  # on upscales (reframe)
    REMOVE_BG = "remove_bg"  # on upscales
    IMAGINE = "imagine"  # Imagine 1…n on describe results
    CANCEL = "cancel"  # Cancel on a queued or running job's progress message


@dataclass(frozen=True, slots=True)
class Action:
    """A button under a result.

    Attributes:
        kind: what pressing it does.
        job_id: the job whose result carries the button.
        index: 1-based image or description number; 0 when the action is about the whole job.
        label: the button text (``U1``, ``🔄``, ``Vary (Strong)``, ``Imagine 2``).
    """

    kind: ActionKind
    job_id: str
    index: int
    label: str

    @property
    def action_id(self) -> str:
        """``ig:<kind>:<job_id>:<index>``: a Discord ``custom_id`` / Slack ``action_id``."""
        return f"{ACTION_ID_PREFIX}:{self.kind.value}:{self.job_id}:{self.index}"


def parse_action_id(action_id: str) -> tuple[ActionKind, str, int] | None:
    """Split an ``ig:`` id into ``(kind, job_id, index)``; ``None`` if it is not one of ours."""
    match = ACTION_ID_RE.match(action_id)
    if match is None:
        return None
    try:
        kind = ActionKind(match["kind"])
    except ValueError:
        return None
    return kind, match["job_id"], int(match["index"])


@dataclass(frozen=True, slots=True)
class Caller:
    """Who ran a command, and where.

    Attributes:
        platform: ``discord`` / ``slack`` / ``console``.
        user_id: the platform's user id.
        server_id: Discord guild id / Slack team id; ``""`` in a DM or the console.
        channel_id: where the command was run (and where the result goes).
        is_admin: the platform says this user may change server settings (Discord Manage
            Server; Slack admin/owner or ``SLACK_ADMIN_USER_IDS``; the console user).
    """

    platform: Platform
    user_id: str
    server_id: str = ""
    channel_id: str = ""
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Invocation:
    """A slash command as the core sees it.

    Attributes:
        command: the command name without the slash (``imagine``, ``settings`` …).
        caller: who and where.
        text: the free text: prompt with inline flags, or the arguments (``set key value``).
        options: typed options by their Discord option names (``aspect_ratio``, ``seed`` …).
        images: input images, already fetched from the platform's file host.
        request_key: the platform's delivery id (interaction id, Slack trigger id) so that the
            same delivery twice starts one job.
    """

    command: str
    caller: Caller
    text: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[InputImage, ...] = ()
    request_key: str | None = None


@dataclass(frozen=True, slots=True)
class Press:
    """A button press on a result: the parsed ``ig:`` id plus who pressed it, and where."""

    action_id: str
    caller: Caller
    request_key: str | None = None


@dataclass(frozen=True, slots=True)
class Caption:
    """The facts under a result (its caption); adapters format them in their own markup.

    ``requester_id`` is the platform user id; adapters turn it into a mention. ``seed`` is the
    seed text (several seeds joined with ", " when the images differ).
    """

    requester_id: str
    command: str
    prompt: str
    magic_prompt: str | None
    seed: str | None
    speed: str | None
    style: str | None
    aspect_ratio: str | None
    job_id: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ResultImage:
    """One image of a result, with the exact stored bytes (``None`` when withheld)."""

    index: int
    data: bytes | None
    content_type: str | None
    filename: str
    width: int
    height: int
    seed: int | None

    @property
    def withheld(self) -> bool:
        """True when the API withheld this image for safety."""
        return self.data is None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file posted with a result besides its images (``layers_<job>.svg`` of /layerize)."""

    filename: str
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class TextReply:
    """A text answer (``/usage``, ``/help``, an error, a duplicate delivery); adapters show it
    only to the caller. ``duplicate``: the same delivery or press was already handled."""

    text: str
    duplicate: bool = False


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class JobResult:
    """A finished (or failed) job, ready to post.

    Attributes:
        job_id, command, status: the job.
        owner_id, channel_id, server_id, platform: where it belongs.
        caption: the facts for the caption.
        images: result images in order (withheld ones with ``data=None``).
        descriptions: ``/describe`` texts.
        rows: button rows (each ≤ 5 buttons, ≤ 5 rows).
        error: one user-facing sentence when ``status`` is ``failed``/``cancelled``.
        attachments: further files to post beside the images (the SVG of /layerize).
    """

    job_id: str
    command: str
    status: JobStatus
    platform: str
    server_id: str
    channel_id: str
    owner_id: str
    caption: Caption
    images: tuple[ResultImage, ...] = ()
    descriptions: tuple[str, ...] = ()
    rows: tuple[tuple[Action, ...], ...] = ()
    error: str | None = None
    attachments: tuple[Attachment, ...] = ()

    @property
    def actions(self) -> tuple[Action, ...]:
        """All buttons, row by row."""
        return tuple(a for row in self.rows for a in row)

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.status == "succeeded"


Reply = TextReply | JobResult


ProgressState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's progress for adapters to render: queue position, running, final state.

    Attributes:
        job_id: the job.
        state: ``queued`` (with ``position``, or ``None`` while waiting out a rate limit),
            ``running``, or a final state.
        position: 1-based place in the queue while queued, else ``None``.
        text: the sentence to show (from :mod:`bot.messages`).
        cancel: the Cancel button to show while the job is queued or running (only its owner
            may press it), ``None`` once it is final.
    """

    job_id: str
    state: ProgressState
    position: int | None
    text: str
    cancel: Action | None = None


ProgressCallback = Callable[[Progress], Awaitable[None]]
