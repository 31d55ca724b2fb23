"""Shared fixtures: the real engine on a temp database and data directory, against the offline
engine over loopback HTTP (no mocks of our own code)."""

from __future__ import annotations

import asyncio
import inspect
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from adapters.console import ConsoleAdapter
from bot.app import build_engine
from bot.config import Settings
from bot.engine import Deliver, Engine
from bot.ideogram.client import IdeogramClient
from bot.image_store import ImageStore
from bot.offline import OfflineIdeogram
from storage import Database

DEMO_PHOTO = Path(__file__).resolve().parents[1] / "adapters" / "console" / "assets" / "coffee.jpg"


@pytest.fixture
async def offline() -> AsyncIterator[OfflineIdeogram]:
    """The offline engine on a free loopback port."""
    engine = OfflineIdeogram()
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a test: temp storage, fast retries, no .env file, and no operator limits
    (tests of quotas and budgets set them; ``test_operator_defaults`` tests the defaults)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_path=tmp_path / "data" / "bot.sqlite3",
        ideogram_max_retries=2,
        default_daily_quota=0,
        default_monthly_budget_usd=0,
    )


def make_client(
    session: aiohttp.ClientSession, offline: OfflineIdeogram, **kwargs: object
) -> IdeogramClient:
    """A client of the offline engine with near-zero backoff (tests assert the waits asked)."""
    options: dict[str, object] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}
    options.update(kwargs)
    return IdeogramClient(
        session,
        base_url=offline.base_url,
        api_key="test-key",
        **options,  # type: ignore[arg-type]
    )


class Harness:
    """The real engine + console adapter on one database; :meth:`restart` opens a new engine
    on the same database and data directory, as a process restart would."""

    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, offline: OfflineIdeogram
    ) -> None:
        self.settings = settings
        self.session = session
        self.offline = offline
        self.db: Database
        self.engine: Engine
        self.console: ConsoleAdapter
        self.output = io.StringIO()
        #: Deliverers registered at every open, before the engine starts (platform → deliver).
        self.deliverers: dict[str, Deliver] = {}

    async def open(self) -> Harness:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = await Database.open(self.settings.database_path)
        client = make_client(self.session, self.offline)
        self.engine = build_engine(
            db=self.db,
            store=ImageStore(self.settings.data_dir),
            client=client,
            settings=self.settings,
        )
        self.console = ConsoleAdapter(
            self.engine, out_dir=self.settings.data_dir.parent / "out", stdout=self.output
        )
        # As in the composition root: adapters attach before the queue starts.
        for platform, deliver in self.deliverers.items():
            self.engine.set_deliverer(platform, deliver)
        await self.engine.start()
        return self

    async def close(self) -> None:
        await self.engine.close()
        await self.db.close()

    async def restart(self) -> None:
        results = self.console.results
        await self.close()
        await self.open()
        self.console.results = results  # the chat history stays on screen

    @property
    def api_calls(self) -> int:
        """API requests the offline engine has received so far."""
        return len(self.offline.requests)


@pytest.fixture
async def harness(
    settings: Settings, session: aiohttp.ClientSession, offline: OfflineIdeogram
) -> AsyncIterator[Harness]:
    h = await Harness(settings, session, offline).open()
    try:
        yield h
    finally:
        await h.close()


async def eventually(predicate: Callable[[], object], seconds: float = 30.0) -> object:
    """Poll ``predicate`` (sync, or returning an awaitable) until it is truthy and return that
    value; fail after ``seconds``. For state with no event to wait on: database rows, counters."""
    async with asyncio.timeout(seconds):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.005)


async def form_parts(body: bytes, content_type: str) -> dict[str, list[bytes]]:
    """The parts of a recorded multipart body by name, read by the offline engine's parser."""
    from bot.offline.forms import read_multipart

    parts: dict[str, list[bytes]] = {}
    for part in await read_multipart(body, content_type):
        assert part.name
        parts.setdefault(part.name, []).append(part.data)
    return parts


async def sent_field(recorded: object, name: str) -> str | None:
    """One text field of a request the offline engine recorded (``None`` if absent)."""
    parts = await form_parts(recorded.body, recorded.content_type)  # type: ignore[attr-defined]
    values = parts.get(name)
    return values[0].decode() if values else None


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red", fmt: str = "PNG") -> bytes:
    """A small real image in ``fmt``."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()
