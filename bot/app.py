"""The composition root: builds every resource from one :class:`~bot.config.Settings`.

``async with BotApp(settings) as app:`` opens the database (applying migrations), the image
store, one aiohttp session, the offline engine when no API key is set, the Ideogram client and
the engine (:func:`build_engine`), and closes them in reverse order; :meth:`BotApp.start` starts
the job queue once the adapters are attached. Nothing is built at import time.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

import aiohttp

from bot import messages
from bot.config import Settings
from bot.engine import Engine
from bot.ideogram.client import IdeogramClient
from bot.image_store import ImageStore
from bot.jobs import ALL_PLATFORMS, JobRunner
from bot.offline import OfflineIdeogram
from bot.results import Executor, JobFiles
from storage import Database

log = logging.getLogger(__name__)


def build_engine(
    *,
    db: Database,
    store: ImageStore,
    client: IdeogramClient,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    platforms: frozenset[str] = ALL_PLATFORMS,
    owner: str | None = None,
) -> Engine:
    """Wire the engine: the runner executes jobs through the client, every 429 the client sees
    lowers the runner's in-flight limit, and results nobody awaits go to the engine's
    deliverers. The queue starts with :meth:`Engine.start`, once adapters are attached.

    Args:
        db, store, client, settings: the process's database, image store, Ideogram client and
            configuration.
        clock: Unix seconds, shared by the engine and the runner (tests pin it).
        platforms: the platforms this process serves; the runner resumes and takes over only
            their jobs, so processes serving other platforms can share the database.
        owner: the runner's lease owner id (default: hostname, pid and a random part).
    """
    files = JobFiles(db, store)
    runner = JobRunner(
        db=db,
        store=store,
        execute=Executor(client, files),
        prices=settings.prices,
        max_in_flight=settings.ideogram_max_in_flight,
        max_user_running=settings.max_user_running_jobs,
        clock=clock,
        platforms=platforms,
        owner=owner,
    )
    client.on_rate_limited = runner.on_rate_limited
    engine = Engine(db=db, store=store, runner=runner, files=files, settings=settings, clock=clock)
    runner.on_finished = engine.deliver_unattended
    return engine


class BotApp:
    """Owns the bot's resources for one process.

    Args:
        settings: the configuration.
        platforms: the platforms this process serves (each adapter's command passes its own):
            only their queued jobs are resumed and only their abandoned running jobs are taken
            over, so ``ideogram-bot slack`` beside ``ideogram-bot discord`` on one database
            leave each other's jobs alone. Default: all of them.

    Attributes (after ``__aenter__``):
        settings: the configuration.
        db: the open database.
        engine: the command engine; its queue runs once :meth:`start` was awaited.
        offline: the in-process offline engine, or ``None`` when an API key is set.
        session: the shared aiohttp session (adapters may use it to fetch attachments).
    """

    def __init__(self, settings: Settings, platforms: frozenset[str] = ALL_PLATFORMS) -> None:
        self.settings = settings
        self.platforms = frozenset(platforms)
        self._stack = contextlib.AsyncExitStack()
        self.db: Database
        self.engine: Engine
        self.session: aiohttp.ClientSession
        self.offline: OfflineIdeogram | None = None

    async def __aenter__(self) -> BotApp:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        settings = self.settings
        # Owner-only: it holds the database, the images and the Slack installations.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = await Database.open(settings.database_path)
        self._stack.push_async_callback(self.db.close)
        self.session = aiohttp.ClientSession()
        self._stack.push_async_callback(self.session.close)

        base_url = settings.ideogram_base_url
        api_key = (
            settings.ideogram_api_key.get_secret_value() if settings.ideogram_api_key else None
        )
        if settings.offline:
            self.offline = OfflineIdeogram()
            base_url = await self.offline.start()
            self._stack.push_async_callback(self.offline.close)
            log.warning(messages.OFFLINE_NOTICE)
        client = IdeogramClient(
            self.session,
            base_url=base_url,
            api_key=api_key,
            auth=settings.ideogram_auth,
            timeout_s=settings.ideogram_timeout_s,
            max_retries=settings.ideogram_max_retries,
            max_download_bytes=settings.ideogram_max_download_bytes,
        )
        self.engine = build_engine(
            db=self.db,
            store=ImageStore(settings.data_dir),
            client=client,
            settings=settings,
            platforms=self.platforms,
        )
        self._stack.push_async_callback(self.engine.close, settings.shutdown_grace_s)

    async def start(self) -> None:
        """Start the job queue: resume the served platforms' jobs the last run left queued,
        report running ones whose process is gone as interrupted. Call it once the adapters
        have registered how to post results (:meth:`~bot.engine.Engine.set_deliverer`), so a
        recovered job's result has somewhere to go."""
        resumed, interrupted = await self.engine.start()
        if resumed or interrupted:
            log.info("recovered jobs: %d queued resumed, %d interrupted", resumed, interrupted)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
