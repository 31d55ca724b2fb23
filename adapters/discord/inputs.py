"""Discord attachments → the core's :class:`~bot.images.InputImage` (slash-command options and
message context menus).

An attachment arrives in ``data.resolved.attachments`` of an interaction (a slash command's
``discord.Attachment`` option, or the target message of a context menu). Its ``url`` is signed and
expires, so it is read at once. Checks, in order, each a one-sentence
:class:`~bot.errors.InvalidImage` and no API call:

1. the claimed ``content_type`` must be an image type (or absent) — a text file or a video is
   refused without downloading it;
2. the claimed ``size`` must not exceed :data:`bot.images.MAX_RAW_INPUT_BYTES`;
3. the URL must be on one of Discord's file hosts (``cdn.discordapp.com``,
   ``media.discordapp.net``) or on the host of a configured ``DISCORD_API_BASE_URL``: the
   bot fetches images only from the chat platform's own file hosts;
4. the download is read in chunks and stops as soon as it passes the cap, whatever ``size``
   or ``Content-Length`` claimed (redirects are not followed);
5. the bytes are sniffed and converted by :func:`bot.images.prepare_input_image_async`, in the
   bounded decode pool.

The caller checks the user's limits (:meth:`bot.engine.Engine.admit`) before any of this, so a
refused user costs no download.

Platform doc followed: discord-api-docs, "Message resource › Attachment object" and
"Receiving and responding › Interaction data › Resolved data structure".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import aiohttp
import discord

from bot.errors import InvalidImage
from bot.http_read import TooLarge, read_capped
from bot.images import MAX_RAW_INPUT_BYTES, InputImage, prepare_input_image_async

log = logging.getLogger(__name__)

#: Discord's own file hosts (attachment ``url`` and ``proxy_url``).
DISCORD_FILE_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})

#: Seconds a download from the CDN may take before the user is asked to try again.
_DOWNLOAD_TIMEOUT_S = 60.0

#: Extensions treated as images when an attachment carries no ``content_type``.
_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)


def file_hosts(api_base_url: str) -> frozenset[str]:
    """Return the hosts attachments may be fetched from, given ``DISCORD_API_BASE_URL``.

    Args:
        api_base_url: the REST root (``https://discord.com/api/v10`` or a compatible server).

    Returns:
        Discord's CDN hosts, plus the API root's host when it is not ``discord.com`` (a
        Discord-compatible server serves its own files).
    """
    host = urlsplit(api_base_url).hostname or ""
    if host and host not in {"discord.com", "discordapp.com"}:
        return DISCORD_FILE_HOSTS | {host}
    return DISCORD_FILE_HOSTS


def looks_like_image(attachment: discord.Attachment) -> bool:
    """Return whether an attachment claims to be an image (content type, else extension).

    Used to pick the image of a message for the context menus; the bytes are still checked.
    """
    if attachment.content_type:
        return attachment.content_type.split(";")[0].strip().lower().startswith("image/")
    return PurePosixPath(attachment.filename.lower()).suffix in _IMAGE_EXTENSIONS


def first_image(attachments: Iterable[discord.Attachment]) -> discord.Attachment | None:
    """Return the first attachment that claims to be an image, or ``None``."""
    return next((a for a in attachments if looks_like_image(a)), None)


def _name(attachment: discord.Attachment) -> str:
    return discord.utils.escape_markdown(attachment.filename)[:60] or "attachment"


async def fetch_input_image(
    attachment: discord.Attachment,
    *,
    session: aiohttp.ClientSession,
    allowed_hosts: frozenset[str],
    max_bytes: int = MAX_RAW_INPUT_BYTES,
) -> InputImage:
    """Download an attachment and make it an input image for the API.

    Args:
        attachment: from ``data.resolved.attachments`` (discord.py resolves it for us).
        session: the process's shared HTTP session (``BotApp.session``).
        allowed_hosts: hosts the URL may point at (:func:`file_hosts`).
        max_bytes: the most bytes read; the download stops past it.

    Returns:
        The prepared image (PNG/JPEG/WebP ≤ 10 MB; other formats converted, large ones shrunk).

    Raises:
        InvalidImage: not an image by its claimed type, too large (claimed or actually sent),
            not on a Discord file host, the download failed, or the bytes are not a usable
            image.
    """
    name = _name(attachment)
    claimed = (attachment.content_type or "").split(";")[0].strip().lower()
    if claimed and not claimed.startswith("image/"):
        raise InvalidImage(f"`{name}` is not an image. Please attach a PNG, JPEG or WebP file.")
    if attachment.size > max_bytes:
        raise InvalidImage(_too_large(name))
    host = urlsplit(attachment.url).hostname or ""
    if host not in allowed_hosts:
        # Only Discord-sent URLs reach here, but a compatible server could send anything.
        log.warning("refused attachment %s on host %r", attachment.id, host)
        raise InvalidImage(f"`{name}` is not hosted by Discord, so I can't read it.")
    data = await _download(session, attachment, name, max_bytes)
    return await prepare_input_image_async(data, attachment.filename)


def _too_large(name: str) -> str:
    return f"`{name}` is too large to read; please attach a smaller image."


async def _download(
    session: aiohttp.ClientSession, attachment: discord.Attachment, name: str, max_bytes: int
) -> bytes:
    """The attachment's bytes, refused as soon as they pass ``max_bytes``.

    discord.py's ``Attachment.read`` reads the whole body, so the signed URL (it needs no
    token) is fetched with the process's shared session instead.

    Raises:
        InvalidImage: more than ``max_bytes``, or the download failed.
    """
    failed = InvalidImage(f"I couldn't download `{name}` from Discord; please attach it again.")
    timeout = aiohttp.ClientTimeout(total=_DOWNLOAD_TIMEOUT_S)
    try:
        async with session.get(attachment.url, allow_redirects=False, timeout=timeout) as response:
            if response.status != 200:
                log.warning("download of attachment %s: HTTP %s", attachment.id, response.status)
                raise failed
            return await read_capped(response, max_bytes)
    except TooLarge:
        log.warning(
            "attachment %s sent more than %d bytes (claimed %d); stopped",
            attachment.id,
            max_bytes,
            attachment.size,
        )
        raise InvalidImage(_too_large(name)) from None
    except (aiohttp.ClientError, OSError, TimeoutError):
        log.warning("download of attachment %s failed", attachment.id, exc_info=True)
        raise failed from None
