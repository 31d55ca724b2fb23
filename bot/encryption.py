"""Encryption at rest of the secrets the bot keeps on disk (the Slack installation tokens).

``BOT_ENCRYPTION_KEY`` is one Fernet key (32 random bytes, urlsafe base64), made with::

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"

or several keys separated by commas, to rotate: the first one encrypts, every one decrypts, so a
new key goes first and the old one stays after it until everything was saved again. Fernet
authenticates what it encrypts (AES-128-CBC with HMAC-SHA256), so a wrong key or an altered
value is refused, never decrypted to garbage.

Stored values carry the prefix :data:`PREFIX`; a value without it was saved in clear (before a
key was configured) and is read as it is.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["PREFIX", "DecryptionError", "SecretBox", "load_keys"]

#: Marks an encrypted stored value: ``PREFIX`` + a Fernet token.
PREFIX = "fernet:"

_MAKE_ONE = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class DecryptionError(RuntimeError):
    """A stored value is encrypted but cannot be decrypted: no key is configured, or none of
    the configured keys is the one it was encrypted with. The message names no secret."""


def load_keys(value: str) -> MultiFernet:
    """Parse ``BOT_ENCRYPTION_KEY``: one Fernet key, or several separated by commas.

    Args:
        value: the setting's text.

    Returns:
        A :class:`~cryptography.fernet.MultiFernet` that encrypts with the first key.

    Raises:
        ValueError: no key, or a key that is not 32 bytes of urlsafe base64; the message gives
            the key's position, never its text.
    """
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("BOT_ENCRYPTION_KEY holds no key")
    fernets: list[Fernet] = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:  # binascii.Error is a ValueError too
            raise ValueError(
                f"BOT_ENCRYPTION_KEY: key {position} of {len(keys)} is not a Fernet key "
                f"(32 bytes, urlsafe base64); make one with {_MAKE_ONE}"
            ) from None
    return MultiFernet(fernets)


class SecretBox:
    """Seal secret strings before they are stored and open them when they are read.

    Args:
        keys: the configured keys (:func:`load_keys`), or ``None``: values are then stored in
            clear, and reading an encrypted one raises :class:`DecryptionError`.
    """

    def __init__(self, keys: MultiFernet | None) -> None:
        self._keys = keys

    @property
    def encrypting(self) -> bool:
        """True when :meth:`seal` encrypts (a key is configured)."""
        return self._keys is not None

    def seal(self, plain: str | None) -> str | None:
        """The value to store for ``plain``: ``PREFIX`` + Fernet token, or ``plain`` itself
        when no key is configured; ``None`` stays ``None``."""
        if plain is None or self._keys is None:
            return plain
        return PREFIX + self._keys.encrypt(plain.encode()).decode("ascii")

    def open(self, stored: str | None) -> str | None:
        """The clear text of a stored value (a value saved in clear is returned as it is).

        Raises:
            DecryptionError: the value is encrypted and no configured key opens it.
        """
        if stored is None or not stored.startswith(PREFIX):
            return stored
        if self._keys is None:
            raise DecryptionError(
                "a stored secret is encrypted but BOT_ENCRYPTION_KEY is not set; "
                "set it to the key it was saved with"
            )
        try:
            return self._keys.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise DecryptionError(
                "a stored secret cannot be decrypted with BOT_ENCRYPTION_KEY: it was saved "
                "with another key (to rotate, list the new key first and keep the old one "
                "after it, comma-separated)"
            ) from None
