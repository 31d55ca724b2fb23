"""One way to turn samples into a printed figure, shared by every benchmark group."""

from __future__ import annotations

import json
import math
import statistics


def emit(figure: dict[str, object]) -> dict[str, object]:
    """Print one figure as a JSON line (as it is measured) and return it."""
    print(json.dumps(figure), flush=True)
    return figure


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list (``q`` in 0..1)."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(
    name: str, samples: list[float], unit: str, *, scale: float = 1.0, **extra: object
) -> dict[str, object]:
    """Emit a figure from repeated samples: n, mean, p50, p90, p99, max and stdev.

    Args:
        name: the figure's name.
        samples: the measurements.
        unit: the unit after ``scale`` (``"ms"`` for seconds with ``scale=1000``).
        scale: multiplies every sample first.
        extra: more fields (``target``, counts …).
    """
    ordered = sorted(s * scale for s in samples)
    return emit({
        "figure": name,
        "unit": unit,
        "n": len(ordered),
        "mean": round(statistics.fmean(ordered), 6),
        "p50": round(statistics.median(ordered), 6),
        "p90": round(percentile(ordered, 0.90), 6),
        "p99": round(percentile(ordered, 0.99), 6),
        "max": round(ordered[-1], 6),
        "stdev": round(statistics.pstdev(ordered), 6),
        **extra,
    })  # fmt: skip
