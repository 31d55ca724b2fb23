"""The command engine: invocations and button presses in, replies out.

:meth:`Engine.handle` takes a neutral :class:`~bot.types.Invocation`, looks the command up in
the command table (:data:`bot.commands.registry.COMMANDS`), validates it completely (flags,
images, channel, blocked words, quota, budget) before anything reaches the API, runs job commands
through the :class:`~bot.jobs.JobRunner`, and returns a :class:`~bot.types.JobResult` or a
:class:`~bot.types.TextReply`. :meth:`Engine.press` does the same for the buttons of a result
(:mod:`bot.followups`): each is a job with a parent job, owned by and charged to whoever pressed
it. Text commands are answered by their handlers in :mod:`bot.info`.

Refusals raise :class:`~bot.errors.UserError` subclasses; adapters show their text as is.
The composition root (:func:`bot.app.build_engine`) wires the engine, the runner and the client;
``docs/architecture.md`` follows one command through it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot import info, messages
from bot import server_settings as settings_rules
from bot.commands import registry
from bot.commands.endpoints import StoredImage, StoredParts
from bot.commands.grammar import (
    GenerationOptions,
    check_options,
    options_from_typed,
    parse_prompt,
    suggest,
)
from bot.config import Settings
from bot.errors import Busy, InvalidImage, InvalidInput, NotAllowed, NotFound, QuotaExceeded
from bot.followups import FollowUps
from bot.image_store import ImageStore
from bot.images import InputImage
from bot.jobs import JobRunner
from bot.requests import mask_for, new_job, typed_options
from bot.results import JobFiles
from bot.server_settings import ServerSettings
from bot.types import (
    ActionKind,
    Caller,
    Invocation,
    JobResult,
    Press,
    ProgressCallback,
    Reply,
    TextReply,
    parse_action_id,
)
from storage import Database, JobRecord, NewJob, ReserveLimits, ReserveOutcome
from storage import jobs as jobs_repo
from storage import messages as messages_repo
from storage import settings as settings_repo

log = logging.getLogger(__name__)

Deliver = Callable[[JobResult], Awaitable[None]]


class Engine:
    """The platform-neutral core. Build one per process with :func:`bot.app.build_engine`.

    Args:
        db: the open database.
        store: content-addressed image files.
        runner: the job queue that runs API commands (its executor calls the API).
        files: reads jobs' stored images and builds results.
        settings: the process settings (prices, limits).
        clock: returns the current time in Unix seconds (tests pin it).
    """

    def __init__(
        self,
        *,
        db: Database,
        store: ImageStore,
        runner: JobRunner,
        files: JobFiles,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.store = store
        self.runner = runner
        self.files = files
        self.settings = settings
        self._clock = clock
        self._deliverers: dict[str, Deliver] = {}
        self._press_lock = asyncio.Lock()
        self._info = info.InfoContext(
            db=db,
            clock=clock,
            commands=registry.COMMANDS,
            result_of=files.result_of,
            defaults=settings.server_defaults,
        )
        self.followups = FollowUps(
            files=files,
            store=store,
            prices=settings.prices,
            clock=clock,
            check_words=self._check_words,
        )

    async def start(self) -> tuple[int, int]:
        """Recover jobs from the last run and start the queue; returns (resumed, interrupted).

        Register every platform's deliverer first (:meth:`set_deliverer`): a recovered job's
        result is posted through it."""
        return await self.runner.start()

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the queue; running jobs get ``grace_s`` seconds to finish."""
        await self.runner.close(grace_s)

    def set_deliverer(self, platform: str, deliver: Deliver) -> None:
        """Register how to post results of ``platform`` that nobody awaits (jobs resumed or
        interrupted by a restart). Call it before :meth:`start`."""
        self._deliverers[platform] = deliver

    async def deliver_unattended(self, job_id: str) -> None:
        """Post the result of a job nobody awaits through its platform's deliverer (the
        runner's ``on_finished``). Without a deliverer the job stays for ``/show``."""
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None:
            return
        deliver = self._deliverers.get(job.platform)
        if deliver is None:
            log.info("job %s finished on %s, which no adapter here serves", job_id, job.platform)
            return
        try:
            await deliver(await self.files.result_of(job))
        except Exception:
            log.exception("posting the result of job %s on %s failed", job_id, job.platform)

    # -- entry points ----------------------------------------------------------------------

    async def handle(
        self, invocation: Invocation, progress: ProgressCallback | None = None
    ) -> Reply:
        """Run one command and return what to show.

        Args:
            invocation: the command, caller, text, typed options and input images.
            progress: called with queue position / running / final state of a job.

        Returns:
            A :class:`JobResult` for job commands and ``/show``; a :class:`TextReply` for the
            rest (and for a duplicate delivery, with ``duplicate=True``).

        Raises:
            UserError: any refusal, before any API call (bad flag, bad image, no permission,
                quota, budget, unknown command).
        """
        caller = invocation.caller
        spec = registry.get(invocation.command, caller.platform)
        if spec is None:
            offered = list(registry.for_platform(caller.platform))
            hint = suggest(invocation.command, offered, 1)
            raise InvalidInput(
                messages.UNKNOWN_COMMAND.format(
                    name=invocation.command,
                    hint=f" Did you mean `/{hint[0]}`?" if hint else "",
                    names=", ".join(f"/{n}" for n in offered),
                )
            )
        server = await self.server_settings(caller.platform, caller.server_id)
        if not spec.any_channel:
            self._check_channel(caller, server)
        if spec.handle is not None:
            return await spec.handle(self._info, invocation, server)
        new = await self._build_job(spec, invocation, server)
        return await self._run(await self._create(new, server), progress)

    async def admit(self, command: str, caller: Caller) -> None:
        """The cheap checks to pass before an adapter downloads or decodes an input image:
        the command exists, the channel is allowed, and the caller is under the per-user
        active-job limit, the daily quota (room for one image) and the server's budget.

        :meth:`handle` checks all of it again (atomically, with the real job); this only keeps
        a user who is refused anyway from making the bot fetch and decode files.

        Raises:
            UserError: the refusal :meth:`handle` would give.
        """
        spec = registry.get(command, caller.platform)
        if spec is None or spec.build is None:
            return  # handle() answers unknown and text commands itself
        server = await self.server_settings(caller.platform, caller.server_id)
        self._check_channel(caller, server)
        probe = NewJob(
            id="",
            platform=caller.platform,
            server_id=caller.server_id,
            channel_id=caller.channel_id,
            owner_id=caller.user_id,
            command=spec.name,
            num_images=1,
            created_at=self._clock(),
            estimated_cost_usd=_SMALLEST_COST_USD,
        )
        refusal = await jobs_repo.check_limits(self.db, probe, self._limits(server))
        if refusal is not None:
            _raise_for(refusal)

    async def press(self, press: Press, progress: ProgressCallback | None = None) -> Reply:
        """Run the follow-up behind a button.

        Anyone who can see the result may press; the new job is theirs and charged to them.

        Raises:
            UserError: unknown or stale button, no such image, channel not allowed, quota.
        """
        parsed = parse_action_id(press.action_id)
        if parsed is None:
            raise InvalidInput(messages.ACTION_UNKNOWN)
        kind, job_id, index = parsed
        if kind is ActionKind.CANCEL:
            return await self.cancel(job_id, press.caller)
        parent = await jobs_repo.get_job(self.db, job_id)
        caller = press.caller
        # A button works only where its result was posted: same platform, same server (a DM's
        # job only for its owner). An id copied elsewhere reads as unknown, leaking nothing.
        if parent is None or not _same_place(parent, caller):
            raise NotFound(messages.ACTION_STALE)
        server = await self.server_settings(caller.platform, caller.server_id)
        self._check_channel(caller, server)
        new = await self.followups.build(
            kind, index, parent, caller, server, request_key=press.request_key
        )
        # Look-up and insert under one lock, so two clicks arriving together start one job.
        async with self._press_lock:
            earlier = await jobs_repo.find_active_press(
                self.db, owner_id=caller.user_id, parent_job_id=parent.id, action=new.action or ""
            )
            if earlier is not None:
                text = messages.DUPLICATE_PRESS.format(job_id=earlier.id, status=earlier.status)
                return TextReply(text, duplicate=True)
            created = await self._create(new, server)
        return await self._run(created, progress)

    async def cancel(self, job_id: str, caller: Caller) -> TextReply:
        """Cancel a queued or running job of ``caller`` (``❌``, Cancel button, ``cancel``).

        Raises:
            NotFound: no such job.
            NotAllowed: the caller does not own it.
        """
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None:
            raise NotFound(messages.JOB_NOT_FOUND.format(job_id=job_id))
        if job.owner_id != caller.user_id or job.platform != caller.platform:
            raise NotAllowed(messages.NOT_YOURS_TO_CANCEL.format(job_id=job_id))
        previous = await self.runner.cancel(job_id)
        if previous is None:
            return TextReply(messages.NOT_CANCELLABLE.format(job_id=job_id))
        return TextReply(messages.CANCELLED)

    async def result(self, job_id: str) -> JobResult:
        """Build the postable result of a job from the database and the image store.

        Raises:
            NotFound: no such job.
        """
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None:
            raise NotFound(messages.JOB_NOT_FOUND.format(job_id=job_id))
        return await self.files.result_of(job)

    async def link_message(
        self, platform: str, channel_id: str, message_id: str, job_id: str
    ) -> None:
        """Record that a posted message (Discord message id, Slack ``ts``) shows ``job_id``,
        so reactions and later look-ups find the job after restarts."""
        await messages_repo.link_message(
            self.db,
            platform=platform,
            channel_id=channel_id,
            message_id=message_id,
            job_id=job_id,
            now=self._clock(),
        )

    async def job_of_message(self, platform: str, channel_id: str, message_id: str) -> str | None:
        """The id of the job a posted message shows, or ``None`` if none was recorded."""
        return await messages_repo.job_of_message(
            self.db, platform=platform, channel_id=channel_id, message_id=message_id
        )

    async def server_settings(self, platform: str, server_id: str) -> ServerSettings:
        """The settings in force for a server (defaults for keys never set)."""
        stored = await settings_repo.get_settings(self.db, platform=platform, server_id=server_id)
        return settings_rules.load(stored, self.settings.server_defaults)

    # -- building jobs ---------------------------------------------------------------------

    async def _build_job(
        self, spec: registry.CommandSpec, inv: Invocation, server: ServerSettings
    ) -> NewJob:
        assert spec.build is not None
        image = None
        least, most = spec.images
        if spec.takes_image:
            if not inv.images:
                raise InvalidImage(messages.NEEDS_IMAGE.format(command=spec.name))
            if most == 1 and len(inv.images) > 1:
                raise InvalidInput(
                    messages.ONE_IMAGE.format(command=spec.name, count=len(inv.images))
                )
            if not least <= len(inv.images) <= most:
                raise InvalidImage(
                    messages.NEEDS_IMAGES.format(
                        command=spec.name, least=least, most=most, count=len(inv.images)
                    )
                )
            # Adapters build InputImage with prepare_input_image, which has checked it.
            image = inv.images[0]
        extra = inv.images[1:] if spec.takes_image else ()
        if spec.mask and image is not None:
            extra = tuple([await asyncio.to_thread(mask_for, extra[0], image)])

        prompt, opts = parse_prompt(
            inv.text,
            max_num_images=server.max_num_images,
            allow=spec.flags,
            require_prompt=spec.prompt == "required" and not inv.options.get("prompt"),
        )
        typed = typed_options(inv.options)
        if typed:
            opts = opts.merged(options_from_typed(typed, max_num_images=server.max_num_images))
            check_options(opts)  # typed options and inline flags may conflict with each other
        if not prompt and isinstance(inv.options.get("prompt"), str):
            prompt, _ = parse_prompt(
                inv.options["prompt"], max_num_images=server.max_num_images, allow=spec.flags
            )
        self._check_words(server, prompt, opts.negative_prompt)

        references = await self._references(opts, inv)
        request = spec.build(prompt, opts, server, image)
        if extra or references:
            parts = await self._store_parts(extra, mask=spec.mask) if extra else StoredParts()
            request = request.model_copy(update={"parts": parts.model_copy(update=references)})
        input_sha = await self.store.put(image.data) if image is not None else None
        return new_job(
            request,
            command=spec.name,
            caller=inv.caller,
            prompt=prompt,
            input_image=image,
            input_sha=input_sha,
            request_key=inv.request_key,
            prices=self.settings.prices,
            now=self._clock(),
        )

    async def _references(
        self, opts: GenerationOptions, inv: Invocation
    ) -> dict[str, tuple[StoredImage, ...]]:
        """The reference images of ``--sref`` (when not style codes), ``--cref`` and
        ``--cref-mask``, stored, by their ``StoredParts`` field.

        A reference is a file the adapter read (``options["reference_files"]``, the console's
        paths) or ``JOBID[:k]``: image k (default 1) of a job the caller could ``/show``.

        Raises:
            NotFound: a job reference the caller may not see, or no such image.
            InvalidInput: a reference that is neither.
        """
        wanted = {
            "style_reference_images": opts.style_references,
            "character_reference_images": (opts.cref,) if opts.cref else (),
            "character_reference_images_mask": (opts.cref_mask,) if opts.cref_mask else (),
        }
        out: dict[str, tuple[StoredImage, ...]] = {}
        for part, refs in wanted.items():
            if refs:
                out[part] = tuple([await self._reference(ref, inv) for ref in refs])
        return out

    async def _reference(self, ref: str, inv: Invocation) -> StoredImage:
        files = inv.options.get("reference_files") or {}
        image = files.get(ref) if isinstance(files, dict) else None
        if not isinstance(image, InputImage):
            match = _JOB_REFERENCE.fullmatch(ref.strip().lower())
            if match is None:
                raise InvalidInput(messages.REFERENCE_UNKNOWN.format(ref=ref))
            job = await jobs_repo.get_job(self.db, match["job"])
            if job is None or not info.may_show(job, inv.caller):
                raise NotFound(messages.REFERENCE_NOT_FOUND.format(ref=ref))
            image, _ = await self.files.stored_result(job, int(match["index"] or 1) - 1)
        sha = await self.store.put(image.data)
        return StoredImage(sha256=sha, content_type=image.content_type, filename=image.filename)

    async def _store_parts(self, images: tuple[InputImage, ...], *, mask: bool) -> StoredParts:
        """Put a job's images after the first into the image store: the mask, or further
        images (``/edit``, ``/blend``)."""
        stored = [
            StoredImage(
                sha256=await self.store.put(img.data),
                content_type=img.content_type,
                filename=img.filename,
            )
            for img in images
        ]
        if mask:
            return StoredParts(mask=stored[0])
        return StoredParts(images=tuple(stored))

    async def _create(self, new_job: NewJob, server: ServerSettings) -> JobRecord | TextReply:
        """Store ``new_job`` as queued if the limits allow; a duplicate gives a TextReply.

        Raises:
            Busy, QuotaExceeded: a per-user, quota or budget limit refuses it (nothing is stored).
        """
        outcome = await jobs_repo.insert_job(self.db, new_job, limits=self._limits(server))
        if outcome.status == "duplicate":
            return TextReply(
                messages.DUPLICATE_REQUEST.format(job_id=outcome.job_id), duplicate=True
            )
        _raise_for(outcome)
        job = await jobs_repo.get_job(self.db, new_job.id)
        if job is None:  # pragma: no cover - inserted just above
            raise NotFound(messages.JOB_NOT_FOUND.format(job_id=new_job.id))
        log.info(
            "job %s queued: %s by %s:%s in %s/%s (%d images)",
            job.id,
            job.command,
            job.platform,
            job.owner_id,
            job.server_id,
            job.channel_id,
            job.num_images,
        )
        return job

    async def _run(
        self, created: JobRecord | TextReply, progress: ProgressCallback | None
    ) -> Reply:
        """Queue a stored job and wait for its result (a duplicate's reply passes through)."""
        if isinstance(created, TextReply):
            return created
        await self.runner.submit(created, progress)
        return await self.result(created.id)

    def _limits(self, server: ServerSettings) -> ReserveLimits:
        now = datetime.fromtimestamp(self._clock(), UTC)
        return ReserveLimits(
            max_user_active=self.settings.max_user_active_jobs,
            daily_quota=server.daily_quota,
            monthly_budget_usd=server.monthly_budget_usd,
            day=now.strftime("%Y-%m-%d"),
            month=now.strftime("%Y-%m"),
        )

    # -- checks ----------------------------------------------------------------------------

    @staticmethod
    def _check_channel(caller: Caller, server: ServerSettings) -> None:
        if server.allowed_channels and caller.channel_id not in server.allowed_channels:
            raise NotAllowed(messages.CHANNEL_NOT_ALLOWED)

    @staticmethod
    def _check_words(server: ServerSettings, prompt: str, negative: str | None) -> None:
        text = f"{prompt} {negative or ''}".lower()
        for word in server.blocked_words:
            if word and word in text:
                raise NotAllowed(messages.BLOCKED_WORD.format(word=word))


#: A job reference: ``JOBID`` or ``JOBID:k`` (image k, 1-based).
_JOB_REFERENCE = re.compile(r"(?P<job>[a-z2-7]{12})(?::(?P<index>[1-9][0-9]?))?")

#: The probe :meth:`Engine.admit` checks the budget with: a job that costs anything at all.
_SMALLEST_COST_USD = 1e-6


def _raise_for(outcome: ReserveOutcome) -> None:
    """Raise the user-facing refusal of a limit outcome (nothing for ``ok``/``duplicate``)."""
    if outcome.status == "user_busy":
        raise Busy(messages.USER_BUSY.format(active=int(outcome.used)))
    if outcome.status == "daily_quota":
        raise QuotaExceeded(messages.daily_quota(int(outcome.used), int(outcome.limit)))
    if outcome.status == "budget":
        raise QuotaExceeded(messages.BUDGET.format(used=outcome.used, limit=outcome.limit))


def _same_place(job: JobRecord, caller: Caller) -> bool:
    """Whether ``caller`` is where ``job`` was run: its platform and server; for a job run in a
    DM (no server), only its owner."""
    if job.platform != caller.platform or job.server_id != caller.server_id:
        return False
    return bool(job.server_id) or job.owner_id == caller.user_id
