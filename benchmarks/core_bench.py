"""The core's figures: the bot's overhead over a direct API call, queue utilisation, memory,
ledger throughput and start-up, against the offline engine running in its own process (so the
engine's drawing does not share the bot's event loop).

Every ratio is measured in the same run, its two sides interleaved round by round, so machine
noise hits both; each figure prints p50, p90 and the spread across rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from benchmarks.figures import emit, summary
from bot.app import BotApp
from bot.config import Settings
from bot.ideogram.client import IdeogramClient
from bot.ideogram.models import GenerateRequestV3
from bot.types import Caller, Invocation, JobResult
from storage import Database, NewJob
from storage import jobs as jobs_repo
from storage import usage as usage_repo

LIMIT = 10


@contextlib.asynccontextmanager
async def engine_process() -> AsyncIterator[str]:
    """Run ``ideogram-bot fake-ideogram --port 0`` in a child process; yield its base URL."""
    env = {**os.environ, "LOG_LEVEL": "INFO"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "fake-ideogram", "--port", "0",
        env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await proc.stderr.readline()).decode()
                if not line:
                    raise RuntimeError("the offline engine exited before listening")
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    break
        drain = asyncio.create_task(proc.stderr.read())
        yield match.group(1)
    finally:
        proc.terminate()
        await proc.wait()
        with contextlib.suppress(Exception):
            drain.cancel()


def bot_settings(root: Path, base_url: str, name: str) -> Settings:
    """Settings for a bot talking to the engine process (a key, so no in-process engine)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        ideogram_api_key=SecretStr("bench"),
        ideogram_base_url=base_url,
        ideogram_max_in_flight=LIMIT,
        data_dir=root / name,
        database_path=root / name / "bot.sqlite3",
        max_user_active_jobs=0,
        max_user_running_jobs=0,
        default_daily_quota=0,
        default_monthly_budget_usd=0,
    )


def caller(user: str = "bench") -> Caller:
    return Caller(platform="console", user_id=user, server_id="b", channel_id="b")


async def direct_job(
    client: IdeogramClient, out: Path, i: int, n: int, gate: asyncio.Semaphore
) -> None:
    """The baseline: the same API call, download and file write, with no bot around it."""
    async with gate:
        images = await client.generate(
            GenerateRequestV3(prompt=f"a lighthouse {i}", seed=i, num_images=n)
        )
    for image in images:
        await asyncio.to_thread((out / f"{i}-{image.index}.png").write_bytes, image.data or b"")


async def bot_job(app: BotApp, i: int, n: int) -> None:
    reply = await app.engine.handle(
        Invocation("imagine", caller(f"u{i % 50}"), text=f"a lighthouse {i} --seed {i} --n {n}")
    )
    assert isinstance(reply, JobResult) and reply.ok


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def bench_overhead(root: Path, base_url: str) -> list[dict[str, object]]:
    """job_vs_direct at 1 and at 200 concurrent jobs; in-flight utilisation while queued."""
    figures = []
    async with BotApp(bot_settings(root, base_url, "overhead")) as app:
        await app.start()
        async with aiohttp.ClientSession() as session:
            client = IdeogramClient(session, base_url=base_url, api_key="bench")
            out = root / "direct"
            out.mkdir(exist_ok=True)
            gate = asyncio.Semaphore(LIMIT)
            ratios: list[float] = []
            for i in range(22):
                bot_s = await timed(lambda i=i: bot_job(app, i, 1))  # type: ignore[misc]
                direct_s = await timed(lambda i=i: direct_job(client, out, i, 1, gate))  # type: ignore[misc]
                if i >= 2:  # warm-up rounds
                    ratios.append(bot_s / direct_s)
            figures.append(summary("job_vs_direct_1", ratios, "ratio", target="<= 1.10"))

            ratios = []
            utilisation: list[float] = []
            for r in range(3):
                base = 1000 * (r + 1)

                async def many_bot(base: int = base) -> None:
                    await asyncio.gather(*(bot_job(app, base + i, 1) for i in range(200)))

                sampler = asyncio.create_task(_sample_utilisation(app, utilisation))
                bot_s = await timed(many_bot)
                sampler.cancel()

                async def many_direct(base: int = base) -> None:
                    await asyncio.gather(
                        *(direct_job(client, out, base + i, 1, gate) for i in range(200))
                    )

                direct_s = await timed(many_direct)
                ratios.append(bot_s / direct_s)
            figures.append(summary("job_vs_direct_200", ratios, "ratio", target="<= 1.10"))
            figures.append(summary(
                "inflight_utilisation", utilisation, "fraction of limit while queued",
                target=">= 0.90 (mean)",
            ))  # fmt: skip
    return figures


async def _sample_utilisation(app: BotApp, samples: list[float]) -> None:
    runner = app.engine.runner
    while True:
        await asyncio.sleep(0.005)
        if runner.queued:
            samples.append(runner.in_flight / runner.max_in_flight)


async def bench_rss(root: Path, base_url: str) -> dict[str, object]:
    """Peak RSS of a fresh bot process running 200 concurrent 4-image jobs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.rss_probe", str(root / "rss"), base_url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    return emit({
        "figure": "peak_rss_mb", "unit": "MB", "n": 200, "value": result["peak_rss_mb"],
        "jobs_per_s": result["jobs_per_s"], "target": "<= 250",
    })  # fmt: skip


async def bench_ledger(root: Path) -> dict[str, object]:
    """Usage ledger rows committed per second by 400 concurrent writers."""
    db = await Database.open(root / "ledger.sqlite3")
    try:
        total = 400
        for i in range(total):
            await jobs_repo.insert_job(db, NewJob(
                id=f"j{i:05d}", platform="console", owner_id=f"u{i % 20}", command="imagine",
                num_images=1, created_at=time.time(),
            ))  # fmt: skip
        t0 = time.perf_counter()
        await asyncio.gather(*(
            usage_repo.charge(
                db, job_id=f"j{i:05d}", platform="console", server_id="", user_id=f"u{i % 20}",
                day="2026-01-01", month="2026-01", command="imagine", images=1, cost_usd=0.03,
                now=time.time(),
            )
            for i in range(total)
        ))  # fmt: skip
        elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    return emit({
        "figure": "ledger_writes_per_s", "unit": "rows/s", "n": total,
        "value": round(total / elapsed, 1),
    })  # fmt: skip


async def bench_startup(root: Path, base_url: str) -> dict[str, object]:
    """Open the database (migrations), the session and the engine; recover jobs."""
    samples = []
    for i in range(7):
        settings = bot_settings(root, base_url, f"start{i}")
        t0 = time.perf_counter()
        async with BotApp(settings) as app:
            await app.start()
            samples.append(time.perf_counter() - t0)
    return summary("startup_s", samples, "s")


async def run(root: Path) -> list[dict[str, object]]:
    """All core figures."""
    async with engine_process() as base_url:
        figures = await bench_overhead(root, base_url)
        figures.append(await bench_rss(root, base_url))
        figures.append(await bench_startup(root, base_url))
    figures.append(await bench_ledger(root))
    return figures
