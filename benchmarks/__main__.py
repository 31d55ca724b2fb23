"""``make bench``: the bot's own overhead, measured against the offline engine in one run.

Prints one JSON object per figure, then a readable table. Every ratio is measured in the same
run, interleaved with its baseline, so machine noise hits both sides; the spread across rounds
(p50 / p90 / stdev) is printed so a noisy machine is visible.

Figures:
* ``job_vs_direct``: one ``/imagine`` through the engine (parse, SQLite job rows, queue, API
  call, download, image file write, ledger) divided by a baseline that makes the same API call
  with the same client, downloads and writes the file directly.
* ``ledger_writes_per_s``: usage ledger rows committed per second by concurrent writers.
* ``startup_s``: time to open the database, start the offline engine and the engine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.app import BotApp
from bot.config import Settings
from bot.ideogram.client import IdeogramClient
from bot.ideogram.models import GenerateRequestV3
from bot.types import Caller, Invocation, JobResult
from storage import Database, NewJob
from storage import jobs as jobs_repo
from storage import usage as usage_repo

ROUNDS = 15


def _summary(name: str, samples: list[float], unit: str, **extra: object) -> dict[str, object]:
    ordered = sorted(samples)
    figure = {
        "figure": name,
        "unit": unit,
        "n": len(samples),
        "p50": round(statistics.median(ordered), 6),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 6),
        "stdev": round(statistics.pstdev(ordered), 6),
        **extra,
    }
    print(json.dumps(figure), flush=True)
    return figure


async def bench_job_vs_direct(root: Path) -> dict[str, object]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=root / "job",
        database_path=root / "job" / "bot.sqlite3",
        max_user_active_jobs=0,
    )
    caller = Caller(platform="console", user_id="bench", server_id="b", channel_id="b")
    async with BotApp(settings) as app, aiohttp.ClientSession() as session:
        assert app.offline is not None
        client = IdeogramClient(session, base_url=app.offline.base_url, api_key=None)
        out = root / "direct"
        out.mkdir()
        bot_times: list[float] = []
        direct_times: list[float] = []
        for i in range(ROUNDS + 2):
            prompt = f"a lighthouse at dusk number {i} --seed {i}"
            t0 = time.perf_counter()
            reply = await app.engine.handle(Invocation("imagine", caller, text=prompt))
            t1 = time.perf_counter()
            assert isinstance(reply, JobResult) and reply.ok
            images = await client.generate(
                GenerateRequestV3(
                    prompt=f"a lighthouse at dusk number {i}",
                    seed=i,
                    num_images=1,
                )
            )
            await asyncio.to_thread((out / f"{i}.png").write_bytes, images[0].data or b"")
            t2 = time.perf_counter()
            if i >= 2:  # the first rounds warm caches and connection pools
                bot_times.append(t1 - t0)
                direct_times.append(t2 - t1)
        ratios = [b / d for b, d in zip(bot_times, direct_times, strict=True)]
        _summary("direct_call_s", direct_times, "s")
        _summary("bot_job_s", bot_times, "s")
        return _summary("job_vs_direct", ratios, "ratio", target="<= 1.10")


async def bench_ledger_writes(root: Path) -> dict[str, object]:
    db = await Database.open(root / "ledger.sqlite3")
    try:
        total = 400
        for i in range(total):
            await jobs_repo.insert_job(
                db,
                NewJob(
                    id=f"j{i:05d}",
                    platform="console",
                    owner_id=f"u{i % 20}",
                    command="imagine",
                    num_images=1,
                    created_at=time.time(),
                ),
            )
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                usage_repo.charge(
                    db,
                    job_id=f"j{i:05d}",
                    platform="console",
                    server_id="",
                    user_id=f"u{i % 20}",
                    day="2026-01-01",
                    month="2026-01",
                    command="imagine",
                    images=1,
                    cost_usd=0.03,
                    now=time.time(),
                )
                for i in range(total)
            )
        )
        elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    figure = {
        "figure": "ledger_writes_per_s",
        "unit": "rows/s",
        "n": total,
        "value": round(total / elapsed, 1),
    }
    print(json.dumps(figure), flush=True)
    return figure


async def bench_startup(root: Path) -> dict[str, object]:
    samples = []
    for i in range(5):
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=root / f"start{i}",
            database_path=root / f"start{i}" / "bot.sqlite3",
        )
        t0 = time.perf_counter()
        async with BotApp(settings):
            samples.append(time.perf_counter() - t0)
    return _summary("startup_s", samples, "s")


async def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = [
            await bench_job_vs_direct(root),
            await bench_ledger_writes(root),
            await bench_startup(root),
        ]
    print()
    print(f"{'figure':<22} {'p50 / value':>12} {'p90':>10} {'stdev':>10}  target")
    for f in figures:
        value = f.get("p50", f.get("value"))
        print(
            f"{f['figure']:<22} {value!s:>12} {f.get('p90', '')!s:>10} "
            f"{f.get('stdev', '')!s:>10}  {f.get('target', '')}"
        )


if __name__ == "__main__":
    asyncio.run(main())
