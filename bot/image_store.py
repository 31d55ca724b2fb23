"""Content-addressed image files under ``DATA_DIR`` (README, "Configuration").

Every result and input image is kept as ``DATA_DIR/images/<aa>/<sha256>`` so that follow-ups
re-upload the exact stored bytes long after Ideogram's URLs expired. Writes are atomic
(temporary file + rename) and idempotent: the same bytes always land at the same path. Only
the bot's user can read them: directories are created 0700 and files 0600.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from bot.errors import NotFound


class ImageStore:
    """Store and load image bytes by their SHA-256.

    Args:
        data_dir: the bot's data directory; images go in its ``images/`` subdirectory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "images"

    def path_for(self, sha256: str) -> Path:
        """Return the file path of the image with hex digest ``sha256``."""
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        """Store ``data`` and return its SHA-256 hex digest (64 chars)."""
        return await asyncio.to_thread(self._put, data)

    def _put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.exists():
            return digest
        # Owner-only: directories 0700 (each level made here, as ``parents=True`` would give
        # the missing ones the default mode), files 0600 (``mkstemp`` creates them so).
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    async def get(self, sha256: str) -> bytes:
        """Return the bytes stored under ``sha256``.

        Raises:
            NotFound: no such file (the data directory was cleaned or moved).
        """
        try:
            return await asyncio.to_thread(self.path_for(sha256).read_bytes)
        except FileNotFoundError:
            raise NotFound(
                "The stored image for this job is missing from the bot's data."
            ) from None
