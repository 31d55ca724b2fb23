"""Reading an HTTP body with a hard size cap, whatever ``Content-Length`` claims.

Every download of bytes from outside (chat platforms' files, Ideogram's result images) goes
through :func:`read_capped`, so a server that lies about a size, or sends forever, costs at most
``max_bytes`` of memory.
"""

from __future__ import annotations

import aiohttp

__all__ = ["TooLarge", "read_capped"]

_CHUNK_BYTES = 256 * 1024


class TooLarge(Exception):
    """The body is longer than the cap (announced, or found while reading)."""


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Read ``response``'s body, stopping as soon as it passes ``max_bytes``.

    Raises:
        TooLarge: ``Content-Length`` announces more than ``max_bytes``, or more arrived.
        aiohttp.ClientError, TimeoutError: the transfer failed.
    """
    if (response.content_length or 0) > max_bytes:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
