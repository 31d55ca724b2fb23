"""Discord figures for ``make bench``: the real discord.py client against the fake Discord.

Three processes, as in production the bot, Discord and Ideogram are on different machines:

* the fake Discord (``tests/discord/fake_discord.py``: REST, gateway websocket, CDN) in a child
  process, with a small control API (``/_bench/…``) that sends bursts of INTERACTION_CREATE and
  reports when each deferral and each result arrived — all times on the fake's clock;
* the offline Ideogram engine in a second child process; the bot uses it as its Ideogram API
  (``IDEOGRAM_BASE_URL`` + a key), so its rendering does not run in the bot's process;
* the bot (``BotApp`` + :class:`~adapters.discord.client.IdeogramBot`) on the caller's loop.

Figures:

* ``discord_defer_ms``: INTERACTION_CREATE sent → deferral (interaction callback type 5)
  received, for ``/imagine`` interactions arriving ``BURST`` (100) at once, over ``ROUNDS``
  bursts; p50 and p99. Target p99 ≤ 100 ms (Discord allows 3 s).
* ``discord_result_ms``: one ``/imagine`` (one image) sent → its result (files + buttons)
  received, one at a time.
* ``direct_call_ms``: the same image made by calling the offline engine directly with the same
  client (request, render, download, file write) — the offline engine's time for one image,
  interleaved with the rounds above.
* ``discord_overhead_ms``: per round, ``discord_result_ms − direct_call_ms``: what the bot adds
  (gateway, deferral, SQLite job, queue, progress edit, upload). Target p50 ≤ 50 ms.

``python -m benchmarks.discord_bench`` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.discord.cli import build_client
from benchmarks.figures import summary
from bot.app import BotApp
from bot.config import Settings
from bot.ideogram.client import IdeogramClient
from bot.ideogram.models import GenerateRequestV3

BURST = 100
ROUNDS = 3
SEQUENTIAL_ROUNDS = 20
WARMUP = 3

_REPO = Path(__file__).resolve().parents[1]
_BENCH_KEY = "bench-key"


# -- child processes ---------------------------------------------------------------------------


async def _serve_fake_discord() -> None:
    """Child: the fake Discord plus the bench control API; prints its root, runs until killed."""
    from aiohttp import web

    from tests.discord.fake_discord import FakeDiscord
    from tests.discord.fake_store import FakeUser, InteractionRecord

    fake = FakeDiscord()
    records: dict[str, InteractionRecord] = {}

    def result_at(record: InteractionRecord) -> float | None:
        for call in fake.calls:
            if call.method == "PATCH" and record.token in call.path and call.files:
                return call.at
        return None

    async def burst(request: web.Request) -> web.Response:
        body = await request.json()
        payloads = [
            fake.slash(
                "imagine",
                user=FakeUser(str(body["user_base"] + i), f"user{i}"),
                prompt=f"a lighthouse {body['tag']} {i} --seed {i}",
            )
            for i in range(body["count"])
        ]
        sent = []
        for payload in payloads:  # back to back, as fast as the socket takes them
            record = await fake.send_interaction(payload)
            records[record.id] = record
            sent.append(record.id)
        return web.json_response({"ids": sent})

    async def wait(request: web.Request) -> web.Response:
        body = await request.json()
        chosen = [records[i] for i in body["ids"]]
        await fake.wait_for(lambda: all(result_at(r) for r in chosen), limit_s=600)
        return web.json_response(
            {r.id: {"sent": r.sent_at, "acked": r.acked_at, "result": result_at(r)} for r in chosen}
        )

    async def ready(_: web.Request) -> web.Response:
        await fake.wait_for(fake.ready.is_set, limit_s=60)
        return web.json_response({"ok": True})

    fake.app.router.add_post("/_bench/burst", burst)
    fake.app.router.add_post("/_bench/wait", wait)
    fake.app.router.add_get("/_bench/ready", ready)
    await fake.start()
    print(json.dumps({"root": fake.root, "token": fake.token}), flush=True)
    await asyncio.Event().wait()


async def _serve_offline() -> None:
    """Child: the offline Ideogram engine; prints its base URL, runs until killed."""
    from bot.offline import OfflineIdeogram

    engine = OfflineIdeogram()
    url = await engine.start()
    print(json.dumps({"root": url}), flush=True)
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def _child(mode: str) -> AsyncIterator[dict[str, Any]]:
    """Start ``python -m benchmarks.discord_bench <mode>``; yield its first JSON line."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.discord_bench",
        mode,
        cwd=_REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        if not line:
            raise RuntimeError(f"benchmark child {mode!r} exited before starting")
        yield json.loads(line)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


# -- figures -----------------------------------------------------------------------------------


class _Control:
    """The fake Discord's bench control API."""

    def __init__(self, session: aiohttp.ClientSession, root: str) -> None:
        self.session = session
        self.root = root
        self.users = 1400000000000000000

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(f"{self.root}{path}", json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def imagine(self, count: int, tag: str) -> dict[str, dict[str, float]]:
        """Send ``count`` /imagine at once (distinct users); wait for and return the times."""
        self.users += count
        sent = await self._post(
            "/_bench/burst", {"count": count, "tag": tag, "user_base": self.users}
        )
        times: dict[str, dict[str, float]] = await self._post("/_bench/wait", {"ids": sent["ids"]})
        return times


async def bench_defer(control: _Control) -> dict[str, object]:
    await control.imagine(10, "warm-up")
    samples: list[float] = []
    for round_index in range(ROUNDS):
        times = await control.imagine(BURST, f"round {round_index}")
        samples += [(t["acked"] - t["sent"]) * 1000 for t in times.values()]
    return summary(
        "discord_defer_ms", samples, "ms", concurrency=BURST, target="p99 <= 100 (Discord: 3000)"
    )


async def bench_overhead(
    control: _Control, client: IdeogramClient, root: Path
) -> list[dict[str, object]]:
    out = root / "direct"
    await asyncio.to_thread(out.mkdir, exist_ok=True)
    totals: list[float] = []
    directs: list[float] = []
    for i in range(SEQUENTIAL_ROUNDS + WARMUP):
        (times,) = (await control.imagine(1, f"single {i}")).values()
        t0 = time.perf_counter()
        images = await client.generate(
            GenerateRequestV3(prompt=f"a lighthouse single {i} 0", seed=0, num_images=1)
        )
        await asyncio.to_thread((out / f"{i}.png").write_bytes, images[0].data or b"")
        direct = time.perf_counter() - t0
        if i >= WARMUP:
            totals.append((times["result"] - times["sent"]) * 1000)
            directs.append(direct * 1000)
    overhead = [t - d for t, d in zip(totals, directs, strict=True)]
    return [
        summary("discord_result_ms", totals, "ms"),
        summary("direct_call_ms", directs, "ms"),
        summary("discord_overhead_ms", overhead, "ms", target="p50 <= 50"),
    ]


async def run(root: Path) -> list[dict[str, object]]:
    """Run the Discord benchmarks in ``root`` (a scratch directory); print and return figures.

    Returns:
        One dict per figure (``figure``, ``unit`` = ms, ``n``, ``p50``, ``p90``, ``p99``,
        ``stdev``, and ``target`` where there is one).
    """
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    async with (
        _child("serve-fake-discord") as discord_info,
        _child("serve-offline") as offline_info,
        aiohttp.ClientSession() as session,
    ):
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=root / "discord",
            database_path=root / "discord" / "bot.sqlite3",
            discord_token=SecretStr(discord_info["token"]),
            discord_api_base_url=f"{discord_info['root']}/api/v10",
            ideogram_api_key=SecretStr(_BENCH_KEY),
            ideogram_base_url=offline_info["root"],
            default_daily_quota=0,
            default_monthly_budget_usd=0,
        )
        control = _Control(session, discord_info["root"])
        async with BotApp(settings) as app:
            client = build_client(app, settings, guild_ready_timeout=0.0)
            await app.start()
            await client.login(discord_info["token"])
            connection = asyncio.create_task(client.connect(reconnect=False))
            try:
                async with session.get(f"{discord_info['root']}/_bench/ready") as response:
                    response.raise_for_status()
                figures = [await bench_defer(control)]
                direct = IdeogramClient(session, base_url=offline_info["root"], api_key=_BENCH_KEY)
                figures += await bench_overhead(control, direct, root)
            finally:
                await client.close()
                await connection
    return figures


def main(argv: list[str]) -> None:
    """``python -m benchmarks.discord_bench [serve-fake-discord | serve-offline]``."""
    logging.basicConfig(level=logging.ERROR)
    if argv[:1] == ["serve-fake-discord"]:
        asyncio.run(_serve_fake_discord())
        return
    if argv[:1] == ["serve-offline"]:
        asyncio.run(_serve_offline())
        return

    async def alone() -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            await run(Path(tmp))

    asyncio.run(alone())


if __name__ == "__main__":
    main(sys.argv[1:])
