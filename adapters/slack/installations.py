"""Where multi-workspace Slack installations are kept: slack-sdk's SQLite installation store,
in a file only the bot's user can read, with the tokens encrypted when ``BOT_ENCRYPTION_KEY``
is set (:mod:`bot.encryption`).

:class:`EncryptedInstallationStore` wraps any ``AsyncInstallationStore`` (slack-sdk's store
interface, which Bolt's OAuth flow and authorization use): it seals the secret fields of an
installation or bot before the inner store saves them, and opens them on every find.
"""

from __future__ import annotations

import copy
import logging
import os
from logging import Logger
from pathlib import Path
from typing import TypeVar

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.encryption import SecretBox

__all__ = [
    "BOT_SECRET_FIELDS",
    "INSTALLATION_SECRET_FIELDS",
    "EncryptedInstallationStore",
    "create_private_file",
]

log = logging.getLogger(__name__)

#: The fields of an ``Installation`` that grant access: tokens and the incoming-webhook URL.
INSTALLATION_SECRET_FIELDS = (
    "bot_token",
    "bot_refresh_token",
    "user_token",
    "user_refresh_token",
    "incoming_webhook_url",
)
#: The fields of a ``Bot`` that grant access.
BOT_SECRET_FIELDS = ("bot_token", "bot_refresh_token")

_T = TypeVar("_T", Installation, Bot)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists, so that SQLite, which opens it
    later, never creates it world-readable (its journal files copy the database file's mode).

    Raises:
        OSError: the file cannot be created (its directory must exist).
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class EncryptedInstallationStore(AsyncInstallationStore):
    """An ``AsyncInstallationStore`` that encrypts secrets before ``inner`` stores them.

    Args:
        inner: the store that keeps the rows (slack-sdk's SQLite store).
        box: seals and opens values (:class:`bot.encryption.SecretBox`); without a key it stores
            them in clear and refuses to read encrypted ones.

    Finds raise :class:`bot.encryption.DecryptionError` when a stored token is encrypted with a
    key that is not configured.
    """

    def __init__(self, inner: AsyncInstallationStore, box: SecretBox) -> None:
        self.inner = inner
        self._box = box
        self._warned_clear = False

    @property
    def logger(self) -> Logger:
        return self.inner.logger

    async def async_save(self, installation: Installation) -> None:
        await self.inner.async_save(self._seal(installation, INSTALLATION_SECRET_FIELDS))

    async def async_save_bot(self, bot: Bot) -> None:
        await self.inner.async_save_bot(self._seal(bot, BOT_SECRET_FIELDS))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        bot = await self.inner.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if bot is None else self._open(bot, BOT_SECRET_FIELDS)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self.inner.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if found is None else self._open(found, INSTALLATION_SECRET_FIELDS)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        await self.inner.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    def _seal(self, item: _T, fields: tuple[str, ...]) -> _T:
        # A copy: Bolt keeps using the object it saved, with the clear tokens.
        sealed = copy.copy(item)
        for name in fields:
            setattr(sealed, name, self._box.seal(getattr(item, name)))
        return sealed

    def _open(self, item: _T, fields: tuple[str, ...]) -> _T:
        for name in fields:
            value = getattr(item, name)
            opened = self._box.open(value)
            if self._box.encrypting and value is not None and opened == value:
                self._warn_clear()
            setattr(item, name, opened)
        return item

    def _warn_clear(self) -> None:
        if not self._warned_clear:
            self._warned_clear = True
            log.warning(
                "Slack tokens saved before BOT_ENCRYPTION_KEY was set are still stored in "
                "clear; they are encrypted when the workspace installs the app again"
            )
