"""The offline engine's image store: PNGs behind short-lived signed URLs, as Ideogram serves.

A stored image is reachable at ``<origin>/images/<token>.png?exp=<unix seconds>&sig=<hex>``,
where ``sig`` is an HMAC-SHA256 of ``<token>.<exp>`` under a key made per store: a URL with a
changed ``exp`` or no signature is refused (403), one past ``exp`` has expired (403), and the
oldest images are dropped once the store holds too many (404).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["ImageVault", "VaultError"]

#: Bounds of the store: the oldest images are dropped beyond either.
_MAX_STORED_IMAGES: Final = 512
_MAX_STORED_BYTES: Final = 512 * 1024 * 1024


class VaultError(Exception):
    """An image URL that cannot be served; ``str()`` is the ``error`` text.

    Attributes:
        status: 403 (bad signature or expired) or 404 (no longer stored).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Stored:
    png: bytes
    expires_at: float  # time.time() seconds


class ImageVault:
    """Stored PNGs by token, each with its expiry.

    Args:
        ttl_s: lifetime of a URL, seconds.
        max_images: most images kept at once.
        max_bytes: most PNG bytes kept at once.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        max_images: int = _MAX_STORED_IMAGES,
        max_bytes: int = _MAX_STORED_BYTES,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._key = secrets.token_bytes(32)
        self._images: OrderedDict[str, _Stored] = OrderedDict()
        self._stored_bytes = 0

    def _signature(self, token: str, exp: int) -> str:
        return hmac.new(self._key, f"{token}.{exp}".encode(), hashlib.sha256).hexdigest()

    def _drop(self, token: str) -> None:
        stored = self._images.pop(token)
        self._stored_bytes -= len(stored.png)

    def publish(self, origin: str, png: bytes) -> str:
        """Store ``png``; return its signed, expiring URL (``…/images/<token>.png?exp=&sig=``).

        Args:
            origin: scheme, host and port the URL starts with, e.g. ``"http://127.0.0.1:5000"``.
            png: the image bytes.
        """
        now = time.time()
        token = secrets.token_urlsafe(16)
        expires_at = now + self._ttl_s
        exp = math.ceil(expires_at)
        self._images[token] = _Stored(png=png, expires_at=expires_at)
        self._stored_bytes += len(png)
        # Drop the oldest images beyond the bounds (and any that expired on the way).
        while self._images and (
            len(self._images) > self._max_images
            or self._stored_bytes > self._max_bytes
            or next(iter(self._images.values())).expires_at < now
        ):
            self._drop(next(iter(self._images)))
        return f"{origin}/images/{token}.png?exp={exp}&sig={self._signature(token, exp)}"

    def fetch(self, name: str, exp: str, sig: str) -> tuple[bytes, int]:
        """Return the PNG of ``GET /images/<name>?exp=<exp>&sig=<sig>`` and its seconds left.

        Raises:
            VaultError: 403 for a bad signature or an expired URL, 404 for an image dropped.
        """
        token = name.removesuffix(".png")
        try:
            expiry = int(exp)
        except ValueError:
            raise VaultError(403, "Missing or invalid signature.") from None
        expected = self._signature(token, expiry).encode()
        if name == token or not hmac.compare_digest(sig.encode(), expected):
            raise VaultError(403, "Missing or invalid signature.")
        stored = self._images.get(token)
        now = time.time()
        if now > expiry or (stored is not None and now > stored.expires_at):
            if stored is not None:
                self._drop(token)
            raise VaultError(403, "This image URL has expired.")
        if stored is None:
            raise VaultError(404, "This image is no longer available.")
        return stored.png, max(0, int(stored.expires_at - now))
