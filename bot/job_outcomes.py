"""What a job's end leaves behind: its charge, its result images, its final state.

:class:`OutcomeRecorder` stores how each job of the :class:`bot.jobs.JobRunner` ended and tells
its listener (docs/architecture.md, "One command, end to end" and the charging paragraph):

* As soon as the API call returned, what the API billed (:func:`charge_for`) is written to the
  usage ledger in its own transaction (:func:`record_charge`), before anything else can fail;
  then result images are stored by SHA-256 (:func:`image_row`) and the job finishes in one
  transaction. A job cancelled meanwhile is charged too, which settles its pending charge.
* Requests the API rejected (400, 422, 429) and jobs that failed on our side before the call are
  not charged; a call the API may have billed (5xx, timeout, failed download) gets an
  *uncertain* ledger row, shown to admins as "possibly billed" and counted against no limit.
* A failing image store or database never leaves a job hanging: the job ends ``failed`` with a
  clear reason (:func:`failure_text` for API failures). A final state the database refused is
  kept (:class:`FinalState`) for the heartbeat of :mod:`bot.leases` to write again.
* A job no longer active (cancelled while its call ran) keeps its status, and its pending
  charge is settled instead (:func:`store_failure`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot import messages
from bot.commands.endpoints import ENDPOINTS, JobRequest, Outcome, load_request
from bot.config import PriceTable
from bot.errors import (
    IdeogramAuthError,
    IdeogramCreditsError,
    IdeogramDownloadError,
    IdeogramError,
    IdeogramInvalidRequest,
    IdeogramRateLimited,
    IdeogramSafetyError,
    IdeogramServerError,
    IdeogramTimeout,
    UserError,
    new_reference_id,
)
from bot.fair_queue import QueueEntry
from bot.ideogram.client import GeneratedImage
from bot.image_store import ImageStore
from bot.job_progress import emit
from bot.layers import dump_blocks
from bot.types import Progress
from storage import Charge, Database, JobRecord, NewImage
from storage import jobs as jobs_repo
from storage import leases as leases_repo
from storage import usage as usage_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FinalState:
    """A job's final state the database refused to store, to write again later."""

    status: str
    error: str
    error_ref: str | None
    charge: Charge | None


class OutcomeRecorder:
    """Stores how jobs ended (charges, images, final states) and tells their listeners.

    Args:
        db: the database.
        store: where result images are kept.
        prices: the price table for charging.
        clock: Unix seconds, the runner's clock (charge days and finish times are read on it).
        unsaved: where final states the database refused are kept, by job id, for the
            heartbeat to write again (:attr:`bot.leases.Leases.unsaved`).
    """

    def __init__(
        self,
        *,
        db: Database,
        store: ImageStore,
        prices: PriceTable,
        clock: Callable[[], float],
        unsaved: dict[str, FinalState],
    ) -> None:
        self._db = db
        self._store = store
        self._prices = prices
        self._clock = clock
        self._unsaved = unsaved

    async def succeeded(self, entry: QueueEntry, job: JobRecord, outcome: Outcome) -> str:
        """Charge, store the images and finish ``job``, whose call the API answered.

        Returns:
            The job's final status: ``succeeded``, ``failed`` (the image store failed) or
            ``cancelled`` (cancelled while running: the result is discarded).
        """
        job_id = entry.job_id
        # The API billed this call: charge it first, in its own transaction, so no later
        # failure (full disk, broken database) can lose the record. A job cancelled meanwhile
        # is charged too (usage is charged as the API bills), which settles its pending charge.
        now = self._clock()
        stored = load_request(job.request)
        charge = charge_for(job, len(outcome.images), now, self._prices, stored=stored)
        entry.charge = charge
        await record_charge(self._db, job, charge, now)
        entry.charge = None
        try:
            images = [await image_row(self._store, img) for img in outcome.images]
        except OSError:
            reference = new_reference_id()
            log.exception("job %s: storing its images failed (reference %s)", job_id, reference)
            await self.finish(job_id, "failed", messages.STORE_FAILED, reference)
            await emit(entry, Progress(job_id, "failed", None, messages.STORE_FAILED))
            return "failed"
        endpoint = ENDPOINTS[stored.endpoint]
        finished = await jobs_repo.finish_job(
            self._db, job_id, status="succeeded", now=self._clock(), images=images,
            descriptions=stored_texts(endpoint.makes_images, outcome),
        )  # fmt: skip
        if not finished:
            return "cancelled"  # cancelled while running: the result is discarded
        await emit(entry, Progress(job_id, "succeeded", None, messages.SUCCEEDED))
        return "succeeded"

    async def failed(self, entry: QueueEntry, job: JobRecord, exc: IdeogramError) -> str:
        """Store that the API call of ``job`` failed with ``exc``; return ``"failed"``."""
        text = failure_text(exc)
        log.warning(
            "job %s: Ideogram %s (status %s): %s",
            entry.job_id, type(exc).__name__, exc.status, exc.api_message,
        )  # fmt: skip
        # A 5xx, a timeout or a failed download may have been billed: recorded as uncertain,
        # for the operator's estimate, and counted against no user's quota.
        charge = (
            charge_for(job, job.num_images, self._clock(), self._prices, uncertain=True)
            if exc.billed
            else None
        )
        await self.finish(entry.job_id, "failed", text, charge=charge)
        await emit(entry, Progress(entry.job_id, "failed", None, text))
        return "failed"

    async def failed_unexpectedly(self, entry: QueueEntry) -> UserError | None:
        """End a job that failed on our side; if the database refuses that too, keep its final
        state for the heartbeat to store and return the error its caller gets instead."""
        reference = new_reference_id()
        log.exception("job %s failed unexpectedly (reference %s)", entry.job_id, reference)
        text = messages.unexpected(reference)
        final = FinalState("failed", text, reference, entry.charge)
        try:
            await self.finish(entry.job_id, "failed", text, reference, entry.charge)
        except Exception:
            self._unsaved[entry.job_id] = final
            log.exception(
                "job %s: the database refused its final state (reference %s); retried at every"
                " heartbeat; billed and not yet in the ledger: %s",
                entry.job_id, reference, entry.charge,
            )  # fmt: skip
            text = messages.not_recorded(reference)
            await emit(entry, Progress(entry.job_id, "failed", None, text))
            return UserError(text)
        entry.charge = None
        await emit(entry, Progress(entry.job_id, "failed", None, text))
        return None

    async def finish(
        self,
        job_id: str,
        status: str,
        error: str,
        error_ref: str | None = None,
        charge: Charge | None = None,
    ) -> None:
        """Store a job's failure now (see :func:`bot.job_outcomes.store_failure`)."""
        await store_failure(
            self._db, job_id, status=status, error=error, error_ref=error_ref, charge=charge,
            now=self._clock(),
        )  # fmt: skip


def charge_for(
    job: JobRecord,
    images: int,
    now: float,
    prices: PriceTable,
    *,
    uncertain: bool = False,
    stored: JobRequest | None = None,
) -> Charge:
    """What the API billed for ``images`` result images (withheld ones included), or for the
    one request of an endpoint billed per request (which counts as one image against the daily
    quota, as ``/help`` says), charged on the UTC day and month of ``now`` (Unix seconds).
    ``stored`` is ``job.request`` already read back, when the caller has it."""
    stored = stored or load_request(job.request)
    endpoint = ENDPOINTS[stored.endpoint]
    billed = 1 if endpoint.per_request else images
    day = datetime.fromtimestamp(now, UTC)
    cost = endpoint.cost_of(prices, billed, stored)
    return Charge(
        images=billed,
        cost_usd=cost,
        day=day.strftime("%Y-%m-%d"),
        month=day.strftime("%Y-%m"),
        uncertain=uncertain,
    )


async def record_charge(db: Database, job: JobRecord, charge: Charge, now: float) -> None:
    """Write ``charge`` for ``job`` to the usage ledger in its own transaction (``now`` in Unix
    seconds); a job is charged at most once (:func:`storage.usage.charge`)."""
    await usage_repo.charge(
        db, job_id=job.id, platform=job.platform, server_id=job.server_id,
        user_id=job.owner_id, day=charge.day, month=charge.month, command=job.command,
        images=charge.images, cost_usd=charge.cost_usd, now=now,
    )  # fmt: skip


async def image_row(store: ImageStore, image: GeneratedImage) -> NewImage:
    """Store ``image``'s bytes (if the API returned any) and describe it for the job's row.

    Raises:
        OSError: the image store failed.
    """
    sha = await store.put(image.data) if image.data is not None else None
    return NewImage(
        idx=image.index, sha256=sha, content_type=image.content_type,
        width=image.width, height=image.height,
        size_bytes=len(image.data) if image.data is not None else 0,
        seed=image.seed, prompt=image.prompt, is_image_safe=not image.withheld,
    )  # fmt: skip


async def store_failure(
    db: Database,
    job_id: str,
    *,
    status: str,
    error: str,
    error_ref: str | None = None,
    charge: Charge | None = None,
    now: float,
) -> None:
    """Store a job's failure (with ``charge``, if any) at ``now`` (Unix seconds). A job no
    longer active (cancelled while its call ran) keeps its status, and its pending charge is
    settled instead."""
    finished = await jobs_repo.finish_job(
        db, job_id, status=status, now=now, error=error, error_ref=error_ref, charge=charge
    )
    if not finished:
        await leases_repo.settle_charge(db, job_id, now=now, charge=charge)


def failure_text(exc: IdeogramError) -> str:
    """Map an API failure class to its one user-facing sentence."""
    mapping: list[tuple[type[IdeogramError], str]] = [
        (IdeogramSafetyError, messages.SAFETY),
        (IdeogramRateLimited, messages.RATE_LIMITED),
        (IdeogramInvalidRequest, messages.INVALID_REQUEST),
        (IdeogramAuthError, messages.AUTH),
        (IdeogramCreditsError, messages.CREDITS),
        (IdeogramServerError, messages.SERVER_ERROR),
        (IdeogramTimeout, messages.TIMEOUT),
        (IdeogramDownloadError, messages.DOWNLOAD),
    ]
    for cls, text in mapping:
        if isinstance(exc, cls):
            return text
    return messages.SERVER_ERROR


def stored_texts(makes_images: bool, outcome: Outcome) -> list[str] | None:
    """What a job keeps in its descriptions: /describe's texts, layerize's text blocks (as
    JSON, :func:`bot.layers.dump_blocks`), nothing for other image results."""
    if outcome.text_blocks:
        return dump_blocks(outcome.text_blocks)
    return None if makes_images else list(outcome.descriptions)
