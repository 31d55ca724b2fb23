"""``make bench``: every figure in one run, one JSON line each, then a readable table.

Groups: ``core`` (the bot's overhead over a direct API call at 1 and 200 concurrent jobs,
in-flight utilisation, peak RSS, ledger writes, start-up), ``discord`` and ``slack`` (time to
acknowledge an interaction / a command with 100 arriving at once, against the platform fakes).
``python -m benchmarks core`` runs one group. See the README, "Reading make bench".
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import tempfile
from pathlib import Path

GROUPS = {
    "core": "benchmarks.core_bench",
    "discord": "benchmarks.discord_bench",
    "slack": "benchmarks.slack_bench",
}


def _noise() -> dict[str, object]:
    """How busy the machine was: load averages and cores, printed beside the figures."""
    one, five, _ = os.getloadavg()
    return {"figure": "machine", "cores": os.cpu_count(), "load_1m": one, "load_5m": five}


def _table(figures: list[dict[str, object]]) -> str:
    head = (
        f"{'figure':<24} {'p50 / value':>12} {'p90':>10} {'p99':>10} {'stdev':>10}  "
        f"{'unit':<10} target"
    )
    lines = [head]
    for f in figures:
        if f.get("figure") == "machine":
            continue
        value = f.get("p50", f.get("value", ""))
        unit = str(f.get("unit", ""))
        lines.append(
            f"{f['figure']!s:<24} {value!s:>12} {f.get('p90', '')!s:>10} {f.get('p99', '')!s:>10} "
            f"{f.get('stdev', '')!s:>10}  {(unit if len(unit) <= 10 else 'fraction'):<10} "
            f"{f.get('target', '')}"
        )
    return "\n".join(lines)


async def main(selected: list[str]) -> None:
    import json

    figures: list[dict[str, object]] = []
    noise = _noise()
    print(json.dumps(noise), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in selected:
            module = importlib.import_module(GROUPS[name])
            root = Path(tmp) / name
            root.mkdir()
            figures.extend(await module.run(root))
    print()
    print(f"machine: {noise['cores']} cores, load {noise['load_1m']:.2f} (1 min) at start")
    print(_table(figures))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    wanted = sys.argv[1:] or list(GROUPS)
    unknown = [w for w in wanted if w not in GROUPS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark group(s): {', '.join(unknown)}; use {', '.join(GROUPS)}"
        )
    asyncio.run(main(wanted))
