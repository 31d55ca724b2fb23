"""Child process of ``make bench``: 200 concurrent 4-image jobs in a fresh bot process, then
print its peak resident set size (``ru_maxrss``) as one JSON line.

Usage: ``python -m benchmarks.rss_probe DATA_DIR BASE_URL``
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from benchmarks.core_bench import bot_job, bot_settings
from bot.app import BotApp


async def main(root: Path, base_url: str) -> None:
    async with BotApp(bot_settings(root, base_url, "rss")) as app:
        await app.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(bot_job(app, i, 4) for i in range(200)))
        elapsed = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {"peak_rss_mb": round(peak_kib / 1024, 1), "jobs_per_s": round(200 / elapsed, 1)}
        )
    )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
