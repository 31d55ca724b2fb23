"""Estimated cost of a job in USD from the configurable price table (SPEC §4).

Prices are per output image for the generating endpoints (by rendering speed; ``transparent``
adds its surcharge per image) and per request image for remove-bg, upscale and describe.
"""

from __future__ import annotations

from bot.config import PriceTable

#: Commands billed per output image at the rendering speed's price.
SPEED_PRICED = frozenset({"imagine", "remix", "reframe", "replace-bg"})


def estimate_usd(
    prices: PriceTable,
    *,
    command: str,
    images: int,
    rendering_speed: str | None,
    transparent: bool = False,
) -> float:
    """Return the estimated cost of ``images`` images of ``command``, in USD (rounded to 1/10 ¢).

    Args:
        prices: the price table in force.
        command: the core command (``imagine``, ``remix``, ``upscale`` …).
        images: how many images the API bills (withheld images count; SPEC §4).
        rendering_speed: ``FLASH``/``TURBO``/``DEFAULT``/``QUALITY`` (any case); ``None`` is
            the API's default speed.
        transparent: ``generate-transparent`` was used.
    """
    if images <= 0:
        return 0.0
    if command in SPEED_PRICED:
        speed = (rendering_speed or "default").lower()
        per_image = float(getattr(prices, speed, prices.default))
        if transparent:
            per_image += prices.transparent
    elif command == "remove-bg":
        per_image = prices.remove_bg
    elif command == "upscale":
        per_image = prices.upscale
    elif command == "describe":
        per_image = prices.describe
    else:
        per_image = 0.0
    return round(per_image * images, 4)
