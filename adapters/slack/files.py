"""Files in and out of Slack: ``url_private`` downloads and ``files_upload_v2`` uploads.

Input: a Slack file object (from a modal's ``file_input`` or a message shortcut)
is downloaded from its ``url_private_download``/``url_private`` with ``Authorization: Bearer
<bot token>`` (Slack docs: "Working with files", "Authentication"), only from Slack's own file
hosts (the configured ``SLACK_API_URL``'s host counts as one), read in chunks that stop past
the size cap whatever the file object or ``Content-Length`` claimed, then checked by its bytes
with :func:`bot.images.prepare_input_image_async` (the bounded decode pool). The listeners
check the user's limits (:meth:`bot.engine.Engine.admit`) before asking for a download.

Output: result images are shared to the channel with ``files_upload_v2`` — the three
steps ``files.getUploadURLExternal``, a POST of the bytes, ``files.completeUploadExternal``
(``files.upload`` is retired). The bytes are the job's stored bytes, re-encoded only above
Slack's upload limit; Ideogram URLs are never posted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InvalidImage
from bot.http_read import TooLarge, read_capped
from bot.images import (
    MAX_RAW_INPUT_BYTES,
    InputImage,
    fit_for_upload_async,
    prepare_input_image_async,
)
from bot.types import JobResult

log = logging.getLogger(__name__)

#: Hosts that serve ``url_private`` for slack.com and GovSlack workspaces.
SLACK_FILE_HOSTS = frozenset({"files.slack.com", "files.slack-gov.com"})

#: Slack's per-file upload limit (1 GB, files.getUploadURLExternal); above it we re-encode.
SLACK_UPLOAD_LIMIT_BYTES = 1024 * 1024 * 1024

#: Redirects followed on a download, each checked against the allow-list again.
MAX_REDIRECTS = 3

#: Mime types that are never an image we could use, refused before any download.
_IMAGE_TYPES = ("image/",)
_MAYBE_TYPES = ("application/octet-stream", "binary/octet-stream", "")

DOWNLOAD_FAILED = "I couldn't download `{name}` from Slack; please attach it again."
NOT_A_SLACK_FILE = "`{name}` is not stored on Slack, so I can't use it."
NOT_AN_IMAGE = "`{name}` is not an image. Please attach a PNG, JPEG or WebP file."
TOO_LARGE = "`{name}` is too large for me to read; please attach a smaller image."


def file_name(file: Mapping[str, Any]) -> str:
    """A Slack file's display name (``name``, else ``title``, else ``"image"``)."""
    return str(file.get("name") or file.get("title") or "image")


def pick_image_file(files: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first file that looks like an image (by ``mimetype``), else the first file."""
    for file in files:
        if str(file.get("mimetype") or "").startswith(_IMAGE_TYPES):
            return file
    return files[0] if files else None


def check_file_type(file: Mapping[str, Any]) -> None:
    """Refuse a file Slack labels as clearly not an image, before downloading it.

    Labels can lie the other way (a ``.png`` that is not one); the bytes are checked after the
    download as well. Unknown or generic types are let through to that check.

    Raises:
        InvalidImage: the ``mimetype`` is set and is neither ``image/*`` nor generic binary.
    """
    mimetype = str(file.get("mimetype") or "").lower()
    if not mimetype.startswith(_IMAGE_TYPES) and mimetype not in _MAYBE_TYPES:
        raise InvalidImage(NOT_AN_IMAGE.format(name=_shown(file_name(file))))
    size = file.get("size")
    if isinstance(size, int) and size > MAX_RAW_INPUT_BYTES:
        raise InvalidImage(TOO_LARGE.format(name=_shown(file_name(file))))


def _shown(name: str) -> str:
    cleaned = "".join(c for c in name if c.isprintable() and c != "`")
    return cleaned[:60] or "image"


class SlackFiles:
    """Download input images from Slack and upload result images to it.

    Args:
        session: the aiohttp session for downloads (the adapter's own).
        api_url: ``SLACK_API_URL``; its host is trusted as a file host too (tests, GovSlack).
        timeout_s: whole-download time limit, seconds.
        max_bytes: largest file read, bytes (more is refused mid-stream).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        timeout_s: float = 20.0,
        max_bytes: int = MAX_RAW_INPUT_BYTES,
    ) -> None:
        self._session = session
        root = urlsplit(api_url)
        self._root_host = (root.hostname or "").lower()
        self._root_scheme = root.scheme.lower()
        self.allowed_hosts = SLACK_FILE_HOSTS | ({self._root_host} if self._root_host else set())
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_bytes

    def is_allowed(self, url: str) -> bool:
        """Whether ``url`` is on a Slack file host: https on a known host, or the configured
        API root's own host and scheme."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            return False
        if parts.scheme == "https":
            return True
        return host == self._root_host and parts.scheme == self._root_scheme

    async def fetch_image(self, file: Mapping[str, Any], token: str) -> InputImage:
        """Download one Slack file with the bot token and check it is a usable image.

        Args:
            file: a Slack file object (``url_private_download`` or ``url_private``, ``name``,
                ``mimetype``, ``size``).
            token: the workspace's bot token (``xoxb-…``), sent only to allowed hosts.

        Returns:
            The image ready for the API (PNG, JPEG or WebP ≤ 10 MB).

        Raises:
            InvalidImage: not an image, not on a Slack host, too large, or not downloadable.
        """
        name = _shown(file_name(file))
        check_file_type(file)
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not url or not self.is_allowed(url):
            log.warning("refused a file outside Slack's file hosts: %s", urlsplit(url).hostname)
            raise InvalidImage(NOT_A_SLACK_FILE.format(name=name))
        data = await self._download(url, token, name)
        return await prepare_input_image_async(data, file_name(file))

    async def _download(self, url: str, token: str, name: str) -> bytes:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self._session.get(
                    url, headers=headers, allow_redirects=False, timeout=self._timeout
                ) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        # Follow by hand so the token only ever goes to an allowed host.
                        target = urljoin(url, response.headers.get("Location", ""))
                        if not self.is_allowed(target):
                            log.warning("refused a redirect to %s", urlsplit(target).hostname)
                            raise InvalidImage(DOWNLOAD_FAILED.format(name=name))
                        url = target
                        continue
                    # Slack answers a bad token with its HTML sign-in page and status 200.
                    if response.status != 200 or response.content_type == "text/html":
                        log.warning(
                            "file download from %s failed: HTTP %s %s",
                            urlsplit(url).hostname,
                            response.status,
                            response.content_type,
                        )
                        raise InvalidImage(DOWNLOAD_FAILED.format(name=name))
                    return await self._read_capped(response, name)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("file download from %s failed: %r", urlsplit(url).hostname, exc)
            raise InvalidImage(DOWNLOAD_FAILED.format(name=name)) from None
        raise InvalidImage(DOWNLOAD_FAILED.format(name=name))

    async def _read_capped(self, response: aiohttp.ClientResponse, name: str) -> bytes:
        try:
            return await read_capped(response, self._max_bytes)
        except TooLarge:
            raise InvalidImage(TOO_LARGE.format(name=name)) from None

    @staticmethod
    async def upload_images(
        client: AsyncWebClient, channel_id: str, result: JobResult, thread_ts: str | None
    ) -> list[str]:
        """Share a result's images to ``channel_id`` as one ``files_upload_v2`` call.

        Withheld images are skipped (the caption says so). Returns the Slack file ids, empty
        when there was nothing to upload.

        Raises:
            slack_sdk.errors.SlackApiError: Slack refused a step (``not_in_channel`` …).
        """
        uploads: list[dict[str, Any]] = []
        alt = result.caption.prompt[:1000] or f"/{result.command} result"
        for image in result.images:
            if image.data is None:
                continue
            data, filename = image.data, image.filename
            if len(data) > SLACK_UPLOAD_LIMIT_BYTES:
                data, _, ext = await fit_for_upload_async(
                    data,
                    image.content_type or "image/png",
                    SLACK_UPLOAD_LIMIT_BYTES,
                )
                filename = f"{filename.rpartition('.')[0] or filename}.{ext}"
            uploads.append(
                {
                    "file": data,
                    "filename": filename,
                    "title": filename,
                    "alt_txt": alt,
                }
            )
        if not uploads:
            return []
        response = await client.files_upload_v2(
            file_uploads=uploads, channel=channel_id, thread_ts=thread_ts
        )
        files = response.get("files") or []
        return [str(f.get("id")) for f in files if isinstance(f, Mapping)]
