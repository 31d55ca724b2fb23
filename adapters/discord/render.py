"""Core replies → Discord message parts: content markdown, files that fit, mentions.

Pure translation, no network: :func:`render_result` turns a :class:`~bot.types.JobResult` into
a :class:`RenderedResult` (content, files, button rows) that :mod:`adapters.discord.flow` sends
as an interaction edit, a channel message or a DM. Limits followed (discord-api-docs, "Message
resource › Create Message" and "Reference › Uploading files"):

* ``content`` ≤ 2,000 characters: long prompts and descriptions are shortened with ``…``;
* ≤ 10 files per message;
* each file ≤ the upload limit the interaction reports (``attachment_size_limit``, 10 MiB by
  default), and the whole request ≤ 25 MiB: larger images are re-encoded or downscaled with
  :func:`bot.images.fit_for_upload` (off the event loop); every other file keeps the exact
  stored bytes.

Images are always files: an Ideogram URL never reaches a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from io import BytesIO

import discord

from bot import messages
from bot.images import fit_for_upload
from bot.types import Action, Caption, JobResult, Progress, ResultImage

#: Longest message ``content`` Discord accepts, characters.
MAX_CONTENT_CHARS = 2000
#: Most attachments on one message (error 30015 beyond it).
MAX_FILES = 10
#: Largest multipart request Discord accepts for a message, bytes (files + JSON).
MAX_REQUEST_BYTES = 25 * 1024 * 1024
#: Bytes kept free in a request for ``payload_json`` and multipart framing.
_REQUEST_OVERHEAD_BYTES = 256 * 1024
#: Shortening steps for the prompt texts when a caption is too long, characters.
_PROMPT_STEPS = (1500, 800, 400, 200, 100)
#: Shortening steps for each ``/describe`` text, characters.
_DESCRIPTION_STEPS = (600, 300, 150, 80)


@dataclass(frozen=True, slots=True)
class FileData:
    """One file to upload: a name and the bytes (stored bytes, or their fitted re-encoding)."""

    filename: str
    data: bytes
    content_type: str

    def to_file(self) -> discord.File:
        """A fresh :class:`discord.File` (a File is consumed by one send)."""
        return discord.File(BytesIO(self.data), filename=self.filename)


@dataclass(frozen=True, slots=True)
class RenderedResult:
    """A job result ready to send.

    Attributes:
        job_id: the job.
        content: the message text (≤ 2,000 characters).
        files: the images, in order, withheld ones left out.
        rows: button rows of the result (≤ 5 × 5), as core actions.
        requester_id: Discord user id of the requester, the only user the message may ping.
    """

    job_id: str
    content: str
    files: tuple[FileData, ...]
    rows: tuple[tuple[Action, ...], ...]
    requester_id: str

    def new_files(self) -> list[discord.File]:
        """Fresh :class:`discord.File` objects for one send."""
        return [f.to_file() for f in self.files]

    def allowed_mentions(self) -> discord.AllowedMentions:
        """Mentions allowed in the message: the requester only, never @everyone or roles."""
        return requester_only(self.requester_id)


def mention(user_id: str) -> str:
    """The Discord mention of a user id (``<@123>``)."""
    return f"<@{user_id}>" if user_id.isdigit() else discord.utils.escape_markdown(user_id)


def requester_only(user_id: str) -> discord.AllowedMentions:
    """Allowed mentions that let ``user_id`` be pinged and nobody else (prompts are user text)."""
    users = [discord.Object(int(user_id))] if user_id.isdigit() else False
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)


def _shorten(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _escaped(caption: Caption, limit: int | None) -> Caption:
    """The caption with user text escaped for Discord markdown (and shortened to ``limit``)."""
    prompt = caption.prompt if limit is None else _shorten(caption.prompt, limit) or ""
    magic = caption.magic_prompt if limit is None else _shorten(caption.magic_prompt, limit)
    return replace(
        caption,
        prompt=discord.utils.escape_markdown(prompt),
        magic_prompt=discord.utils.escape_markdown(magic) if magic else None,
    )


def caption_markdown(caption: Caption, *, budget: int = MAX_CONTENT_CHARS) -> str:
    """Render the result caption (``docs/commands.md``, "The result") as Discord markdown
    within ``budget`` characters.

    The requester becomes a mention; the prompt and magic prompt are escaped (they are user and
    model text) and shortened with ``…`` until the caption fits.
    """
    for limit in (None, *_PROMPT_STEPS):
        text = messages.caption_text(_escaped(caption, limit), mention=mention)
        if len(text) <= budget:
            return text
    return _shorten(text, budget) or ""


def _description_lines(descriptions: Sequence[str], limit: int | None) -> list[str]:
    shown = [(_shorten(text, limit) if limit else text) or "" for text in descriptions]
    return [
        f"**{i}.** {discord.utils.escape_markdown(text)}" for i, text in enumerate(shown, start=1)
    ]


def result_content(result: JobResult) -> str:
    """The message text of a result: caption, descriptions, and the error of a failed job."""
    tail: list[str] = []
    if result.status == "cancelled":
        tail.append(f"✖ {result.error or messages.CANCELLED_BY_OWNER}")
    elif not result.ok:
        tail.append(f"✖ {result.error or messages.SERVER_ERROR}")
    elif result.error:
        tail.append(result.error)
    for limit in (None, *_DESCRIPTION_STEPS):
        body = _description_lines(result.descriptions, limit) + tail
        body_text = "\n".join(body)
        # One newline joins the caption and the body.
        budget = MAX_CONTENT_CHARS - len(body_text) - (1 if body else 0)
        if budget >= 200:
            caption = caption_markdown(result.caption, budget=budget)
            return "\n".join([caption, *body]) if body else caption
    return _shorten("\n".join([caption_markdown(result.caption), *body]), MAX_CONTENT_CHARS) or ""


def _stem(filename: str) -> str:
    stem, dot, _ = filename.rpartition(".")
    return stem if dot and stem else filename


def _fit_one(image: ResultImage, limit: int) -> FileData:
    assert image.data is not None
    content_type = image.content_type or "image/png"
    data, content_type, extension = fit_for_upload(image.data, content_type, limit)
    if data is image.data:
        return FileData(image.filename, data, content_type)
    return FileData(f"{_stem(image.filename)}.{extension}", data, content_type)


def _fit_all(images: Sequence[ResultImage], limit_bytes: int) -> tuple[FileData, ...]:
    ready = [img for img in images if img.data is not None][:MAX_FILES]
    files = [_fit_one(img, limit_bytes) for img in ready]
    request_budget = max(MAX_REQUEST_BYTES, limit_bytes) - _REQUEST_OVERHEAD_BYTES
    if sum(len(f.data) for f in files) > request_budget:
        # Rare (several near-limit images): give each file an equal share of the request;
        # files already under their share keep their exact bytes.
        share = request_budget // len(files)
        files = [
            _fit_one(img, share) if len(f.data) > share else f
            for img, f in zip(ready, files, strict=True)
        ]
    return tuple(files)


async def fit_files(images: Sequence[ResultImage], *, limit_bytes: int) -> tuple[FileData, ...]:
    """Return the result images as files that Discord will accept.

    Args:
        images: the result's images; withheld ones (``data is None``) are skipped.
        limit_bytes: the per-file upload limit (the interaction's ``attachment_size_limit``).

    Returns:
        At most :data:`MAX_FILES` files, in order; the stored bytes unchanged when they fit,
        else a re-encoded or downscaled version (run in a worker thread: Pillow is slow).

    Raises:
        InvalidImage: an image cannot be made small enough (longer side at 256 px).
    """
    if all(img.data is None or len(img.data) <= limit_bytes for img in images) and (
        sum(len(img.data or b"") for img in images[:MAX_FILES])
        <= max(MAX_REQUEST_BYTES, limit_bytes) - _REQUEST_OVERHEAD_BYTES
    ):
        # The common case: no Pillow work at all, so no thread hop.
        return _fit_all(images, limit_bytes)
    return await asyncio.to_thread(_fit_all, images, limit_bytes)


async def render_result(result: JobResult, *, limit_bytes: int) -> RenderedResult:
    """Render a job result: content, fitted files and button rows.

    Args:
        result: from :meth:`bot.engine.Engine.handle` / ``press`` / ``result``.
        limit_bytes: per-file upload limit in bytes.

    Raises:
        InvalidImage: an image cannot be made small enough for the limit.
    """
    files = await fit_files(result.images, limit_bytes=limit_bytes) if result.ok else ()
    return RenderedResult(
        job_id=result.job_id,
        content=result_content(result),
        files=files,
        rows=result.rows if result.ok else (),
        requester_id=result.owner_id,
    )


def split_content(text: str, limit: int = MAX_CONTENT_CHARS) -> list[str]:
    """Split a long text into messages of at most ``limit`` characters, at line breaks.

    A ```` ``` ```` block cut in two is closed at the end of one part and reopened in the next,
    so each part renders on its own. A single line longer than ``limit`` is cut hard.

    Returns:
        At least one part (``["…"]`` for empty text).
    """
    fence = "```"
    reserve = len(fence) * 2 + 2  # closing and reopening a code block
    parts: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    for line in text.splitlines() or ["…"]:
        pieces = [line[i : i + limit - reserve] for i in range(0, len(line), limit - reserve)]
        for piece in pieces or [""]:
            if current and size + len(piece) + 1 > limit - reserve:
                parts.append("\n".join([*current, fence] if in_code else current))
                current, size = ([fence] if in_code else []), (len(fence) if in_code else 0)
            current.append(piece)
            size += len(piece) + 1
            if piece.strip().startswith(fence):
                in_code = not in_code
    parts.append("\n".join(current))
    return [p for p in parts if p.strip()] or ["…"]


def progress_content(progress: Progress) -> str:
    """The text of the progress message: the core's sentence and the job id."""
    return f"{progress.text} · job `{progress.job_id}`"
