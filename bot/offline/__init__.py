"""The offline engine: a local HTTP stand-in for the Ideogram API that draws real PNGs.

See :mod:`bot.offline.server` for the endpoints and :class:`OfflineIdeogram` for the API. The
rest of the package: :mod:`~bot.offline.forms` reads request bodies,
:mod:`~bot.offline.validation` checks them, :mod:`~bot.offline.faults` injects failures and
records requests, :mod:`~bot.offline.drawing` and :mod:`~bot.offline.render` make the pictures,
:mod:`~bot.offline.vault` serves them from signed URLs.
"""

from bot.offline.server import FaultPlan, OfflineIdeogram, RecordedRequest, serve_forever

__all__ = ["FaultPlan", "OfflineIdeogram", "RecordedRequest", "serve_forever"]
