"""The offline engine: a local HTTP stand-in for the Ideogram API that draws real PNGs.

See :mod:`bot.offline.server` for the endpoints and :class:`OfflineIdeogram` for the API.
"""

from bot.offline.server import FaultPlan, OfflineIdeogram, RecordedRequest, serve_forever

__all__ = ["FaultPlan", "OfflineIdeogram", "RecordedRequest", "serve_forever"]
