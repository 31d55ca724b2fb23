"""Every sentence the bot shows users, in one place, so wording is consistent across platforms.

Text uses a light Markdown subset (``**bold**``, ``` `code` ```) that adapters convert to
their platform's markup; keep each failure one clear sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bot.commands.grammar import FLAG_HELP
from bot.types import Caption

if TYPE_CHECKING:
    from bot.commands.registry import CommandSpec

OFFLINE_NOTICE = (
    "No IDEOGRAM_API_KEY is set: using the offline engine, which makes local placeholder "
    "images. Set IDEOGRAM_API_KEY to generate with Ideogram."
)

# -- progress ---------------------------------------------------------------------------------


def queued(position: int) -> str:
    """Progress while waiting: 1-based queue position."""
    if position <= 1:
        return "Queued: you are next."
    return f"Queued: position {position}."


RUNNING = "Generating…"
WAITING_FOR_CAPACITY = "Ideogram is busy; your job is back in the queue and will start shortly."
SUCCEEDED = "Done."
CANCELLED = "Cancelled."

# -- job failures (one sentence each; never the API's own text) -------------------------------

SAFETY = (
    "Ideogram's safety check blocked this prompt or image, so nothing was generated or charged."
)
RATE_LIMITED = (
    "Ideogram is busy right now and asked us to slow down; nothing was charged — "
    "please try again in a minute."
)
INVALID_REQUEST = "Ideogram refused these options as invalid; please check the flags and try again."
AUTH = "The bot's Ideogram API key was refused; please ask a server admin to check the bot's setup."
CREDITS = "The bot's Ideogram account is out of credits; please ask a server admin."
SERVER_ERROR = (
    "Ideogram failed while making this image; it was not re-sent automatically in case it ran, "
    "so press 🔄 or run the command again to retry."
)
TIMEOUT = (
    "Ideogram did not answer in time; it was not re-sent automatically in case it ran, "
    "so press 🔄 or run the command again to retry."
)
DOWNLOAD = "The finished image could not be downloaded from Ideogram; please run the command again."
INTERRUPTED = (
    "This job was interrupted by a bot restart while Ideogram was working on it; it was not "
    "charged twice — please run it again if you did not get the images."
)
STORE_FAILED = (
    "Ideogram made the images, but the bot could not save them (its disk is full or failing), "
    "so they were charged and lost — please tell a server admin before trying again."
)
ALL_WITHHELD = "Ideogram withheld every image of this job after its safety check."
NOTHING_DESCRIBED = "Ideogram returned no description for this image."


def unexpected(reference: str) -> str:
    """The sentence for an unexpected error; ``reference`` ties it to the operator's log."""
    return f"Something went wrong on our side (reference `{reference}`); please try again."


def not_recorded(reference: str) -> str:
    """The sentence for a job whose outcome the bot's database refused to store."""
    return (
        f"The bot's database is failing, so this job's outcome could not be recorded "
        f"(reference `{reference}`); please tell a server admin before trying again."
    )


def possibly_billed(jobs: int, cost_usd: float) -> str:
    """``/usage`` line for admins: calls this month the API may have billed (5xx, timeouts,
    interrupted jobs), which no quota or budget counts."""
    return (
        f"Possibly billed this month: {jobs} jobs, about ${cost_usd:.2f} (Ideogram errors, "
        "timeouts and interruptions it may have charged; not counted in quota or budget)."
    )


def withheld_note(count: int, total: int) -> str:
    """Caption note when some images were withheld by the safety check."""
    if count == 1:
        return f"1 of {total} images was withheld by Ideogram's safety check."
    return f"{count} of {total} images were withheld by Ideogram's safety check."


# -- refusals before any API call ------------------------------------------------------------

NEEDS_IMAGE = "/{command} needs an image: attach a PNG, JPEG or WebP file."
ONE_IMAGE = "/{command} takes one image; you gave {count}."
NEEDS_IMAGES = "/{command} needs {least} to {most} images; you gave {count}."
MASK_NO_BLACK = (
    "The mask has no black part; paint black where the image should be redrawn, white elsewhere."
)
MASK_NOT_IMAGE = "The mask `{name}` is not an image; please give a black-and-white PNG."
NO_TEXT_FOUND = "No text was found in this image."
REFERENCE_UNKNOWN = (
    "`{ref}` is not a reference I can use: give a job id like `3kq9x2m4p7ab:1`, or a file."
)
REFERENCE_NOT_FOUND = "I can't use `{ref}` as a reference: you can't /show that job."
BLEND_PROMPT = "Blend these images into one picture"
NEEDS_IMAGE_FILE = "/{command} needs an image file first, e.g. `{example}`."
NEEDS_RESOLUTION = "/reframe needs a target resolution, e.g. `1344x768`."
CHANNEL_NOT_ALLOWED = (
    "The bot is not enabled in this channel; a server admin can allow it with /settings."
)
BLOCKED_WORD = "This prompt contains a word this server has blocked (`{word}`)."
SETTINGS_ADMIN_ONLY = (
    "Only server admins can change settings; anyone can see them with `/settings show`."
)
USER_BUSY = "You already have {active} jobs queued or running; please wait for one to finish."


def daily_quota(used: int, limit: int) -> str:
    """Refusal when a job would pass the user's daily image quota (UTC days)."""
    noun = "image" if limit == 1 else "images"
    return (
        f"That would exceed your daily quota of {limit} {noun}: you have used {used} today; "
        "it resets at midnight UTC."
    )


BUDGET = (
    "That would exceed this server's monthly budget: ${used:.2f} of ${limit:.2f} spent this "
    "month (UTC)."
)
JOB_NOT_FOUND = "I can't find job `{job_id}`; `/history` lists your jobs."
JOB_NO_IMAGE = "Job `{job_id}` has no image {index} to use."
ACTION_STALE = "That button belongs to a job that no longer exists."
ACTION_UNKNOWN = "That button is not one of mine."
DUPLICATE_PRESS = "Already on it: job `{job_id}` for that button is still {status}."
DUPLICATE_REQUEST = "Already received: job `{job_id}`."
UNKNOWN_COMMAND = "Unknown command `/{name}`.{hint} Commands: {names}."
CANCELLED_BY_OWNER = "Cancelled by its owner."
NOT_YOURS_TO_CANCEL = "Only the person who ran job `{job_id}` can cancel it."
NOT_CANCELLABLE = "Job `{job_id}` has already finished."


# -- captions ------------------------------------------------------------------------------


def caption_lines(caption: Caption, mention: Callable[[str], str] = str) -> list[str]:
    """Return the caption under a result as Markdown-subset lines, first line the prompt.

    Args:
        caption: the facts.
        mention: turns the requester's user id into the platform's mention text.
    """
    head = f"**{caption.prompt}**" if caption.prompt else f"**/{caption.command}**"
    lines = [f"{head} — {mention(caption.requester_id)}"]
    if caption.magic_prompt and caption.magic_prompt != caption.prompt:
        lines.append(f"Magic prompt: {caption.magic_prompt}")
    facts = []
    if caption.seed is not None:
        facts.append(f"seed {caption.seed}")
    for label, value in (
        ("speed", caption.speed),
        ("style", caption.style),
        ("ar", caption.aspect_ratio),
    ):
        if value:
            facts.append(f"{label} {value.lower()}")
    facts.append(f"job `{caption.job_id}`")
    lines.append(" · ".join(facts))
    if caption.note:
        lines.append(caption.note)
    return lines


def caption_text(caption: Caption, mention: Callable[[str], str] = str) -> str:
    """The caption as one Markdown-subset string."""
    return "\n".join(caption_lines(caption, mention))


# -- help ------------------------------------------------------------------------------------


def help_text(commands: Mapping[str, CommandSpec]) -> str:
    """``/help``: commands, flags and examples, from the command table ``commands``."""
    lines = ["**Commands**"]
    for spec in commands.values():
        lines.append(f"`{spec.usage}` — {spec.summary}")
    lines.append("")
    lines.append("**Flags** (at the end of the prompt, e.g. `/imagine a fox --ar 16:9 --n 2`)")
    for flag, description, values in FLAG_HELP:
        suffix = f" ({values})" if values else ""
        lines.append(f"`{flag}` — {description}{suffix}")
    lines.append("")
    lines.append(
        "**Buttons** U1…U4 upscale · V1…V4 vary · 🔄 re-roll · Imagine n uses a description"
    )
    lines.append("**Quota** counts images per person per UTC day; /describe counts as one image.")
    lines.append("**Examples**")
    for spec in commands.values():
        if spec.calls_api:
            lines.append(f"`{spec.example}`")
    return "\n".join(lines)


def table(rows: Sequence[tuple[str, ...]], *, fenced: bool = True) -> str:
    """Render rows as aligned monospace lines, inside a code block when ``fenced``."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    body = "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )
    return f"```\n{body}\n```" if fenced else body
