"""The bot's two tiers of errors.

* :class:`UserError` and its subclasses carry a message written for the person who ran the
  command; adapters show it as is (ephemeral where the platform allows).
* :class:`IdeogramError` and its subclasses are raised by the Ideogram client and carry the HTTP
  status and the API's own error text for the operator's log. The job runner turns them into a
  user-facing sentence from :mod:`bot.messages`; their ``str()`` is never shown to users.
* Anything else is unexpected: adapters show a generic sentence with a reference id from
  :func:`new_reference_id` and log the exception in full.
"""

from __future__ import annotations

import secrets


class BotError(Exception):
    """Base class of every error the bot raises on purpose."""


class UserError(BotError):
    """A problem the user can fix; ``str(self)`` is one sentence shown to them verbatim."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(UserError):
    """A command, flag, option or value is not valid (docs/commands.md lists the valid ones)."""


class InvalidImage(UserError):
    """An input image cannot be used: wrong type, unreadable, too large to fit in 10 MB."""


class NotAllowed(UserError):
    """The caller may not do this here: settings without admin rights, a blocked channel."""


class QuotaExceeded(UserError):
    """The daily image quota or the monthly budget would be exceeded (server settings)."""


class NotFound(UserError):
    """A job or image the user named does not exist (or is not theirs to see)."""


class Busy(UserError):
    """The user already has as many jobs running as the per-user limit allows."""


class IdeogramError(BotError):
    """An error answer (or no answer) from the Ideogram API.

    Attributes:
        status: HTTP status code, or ``None`` when no response arrived (timeout, connection).
        api_message: the API's own error text (``{"error": ...}`` or the raw body, truncated to
            500 characters) for the operator's log; never shown to users.
        billed: whether the API may have run (and charged for) the request.
    """

    billed: bool = False

    def __init__(self, status: int | None, api_message: str) -> None:
        super().__init__(f"Ideogram API error {status}: {api_message}")
        self.status = status
        self.api_message = api_message


class IdeogramInvalidRequest(IdeogramError):
    """400: the API refused the request as invalid."""


class IdeogramAuthError(IdeogramError):
    """401 / 403: the API key is missing, wrong or lacks access."""


class IdeogramCreditsError(IdeogramError):
    """402: the organisation is out of credits."""


class IdeogramSafetyError(IdeogramError):
    """422: the prompt or an input image failed the safety check (not billed)."""


class IdeogramRateLimited(IdeogramError):
    """429 after the client's bounded retries ran out (not billed).

    Attributes:
        retry_after: seconds the API asked to wait, when it said.
    """

    def __init__(self, status: int | None, api_message: str, retry_after: float | None) -> None:
        super().__init__(status, api_message)
        self.retry_after = retry_after


class IdeogramServerError(IdeogramError):
    """5xx: the request may have run and been billed; never re-sent automatically."""

    billed = True


class IdeogramTimeout(IdeogramError):
    """No complete answer in time; the request may have run and been billed; never re-sent."""

    billed = True


class IdeogramDownloadError(IdeogramError):
    """A result image could not be fetched (expired URL, too large, not an image)."""

    billed = True


def new_reference_id() -> str:
    """Return a short id (8 lowercase hex chars) that ties a user's error message to the log."""
    return secrets.token_hex(4)
