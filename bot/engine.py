"""The command engine: invocations and button presses in, replies out (SPEC §2-5).

:meth:`Engine.handle` takes a neutral :class:`~bot.types.Invocation`, validates it completely
(flags, images, channel, blocked words, quota, budget) before anything reaches the API, runs
API commands as jobs through the :class:`~bot.jobs.JobRunner`, and returns a
:class:`~bot.types.JobResult` or a :class:`~bot.types.TextReply`. :meth:`Engine.press` does the
same for the follow-up buttons of a result (upscale, vary, re-roll, zoom out, remove
background, imagine from a description): each is a job with a parent job, owned by and charged
to whoever pressed it.

Refusals raise :class:`~bot.errors.UserError` subclasses; adapters show their text as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot import messages
from bot import server_settings as settings_rules
from bot.commands import registry
from bot.commands.grammar import (
    GenerationOptions,
    check_options,
    options_from_typed,
    parse_prompt,
    suggest,
)
from bot.config import Settings
from bot.errors import (
    Busy,
    InvalidImage,
    InvalidInput,
    NotAllowed,
    NotFound,
    QuotaExceeded,
)
from bot.ideogram.client import IdeogramClient
from bot.ideogram.models import (
    DescribeRequest,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    ReframeRequestV3,
    RemixRequestV3,
    ReplaceBackgroundRequestV3,
    UpscaleInitialImageRequest,
    dump,
)
from bot.image_store import ImageStore
from bot.images import InputImage, image_size, prepare_input_image, sniff_content_type
from bot.jobs import JobRunner, Outcome
from bot.pricing import estimate_usd
from bot.requests import (
    request_for,
    typed_options,
    vary_request,
    zoom_out_input,
)
from bot.server_settings import ServerSettings
from bot.types import (
    Action,
    ActionKind,
    Caller,
    Caption,
    Invocation,
    JobResult,
    Press,
    ProgressCallback,
    Reply,
    ResultImage,
    TextReply,
    parse_action_id,
)
from storage import Database, JobRecord, NewJob, ReserveLimits
from storage import jobs as jobs_repo
from storage import settings as settings_repo
from storage import usage as usage_repo

log = logging.getLogger(__name__)

Deliver = Callable[[JobResult], Awaitable[None]]

#: A second press of the same button by the same person within this many seconds is a
#: double click, not a new request (SPEC §3: "a double click … never bills twice").
DOUBLE_CLICK_WINDOW_S = 10.0
HISTORY_DEFAULT = 10
HISTORY_MAX = 25
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

#: Commands whose results carry U/V/🔄 buttons.
_GENERATION_COMMANDS = frozenset({"imagine", "remix", "reframe", "replace-bg"})


def new_job_id() -> str:
    """Return a fresh job id: 12 lowercase base32 characters (60 random bits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class Engine:
    """The platform-neutral core. Build one per process in the composition root.

    Args:
        db: the open database.
        store: content-addressed image files.
        client: the Ideogram client (real API or the offline engine).
        settings: the process settings (prices, limits).
        clock: returns the current time in Unix seconds (tests pin it).
    """

    def __init__(
        self,
        *,
        db: Database,
        store: ImageStore,
        client: IdeogramClient,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.store = store
        self.client = client
        self.settings = settings
        self._clock = clock
        self._deliverers: dict[str, Deliver] = {}
        # Results that finished unattended before their platform registered a deliverer.
        self._undelivered: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._press_lock = asyncio.Lock()
        self.runner = JobRunner(
            db=db,
            store=store,
            execute=self._execute,
            prices=settings.prices,
            max_in_flight=settings.ideogram_max_in_flight,
            max_user_running=settings.max_user_running_jobs,
            on_finished=self._deliver_unattended,
        )
        # Every 429 the client sees lowers the runner's adaptive in-flight limit.
        client.on_rate_limited = self.runner.on_rate_limited

    async def start(self) -> tuple[int, int]:
        """Recover jobs from the last run and start the queue; returns (resumed, interrupted)."""
        return await self.runner.start()

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the queue (running jobs get ``grace_s`` seconds to finish) and any delivery
        still in progress."""
        await self.runner.close(grace_s)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def set_deliverer(self, platform: str, deliver: Deliver) -> None:
        """Register how to post results of ``platform`` that nobody awaits (jobs resumed or
        interrupted by a restart). Results that finished before it was registered are
        delivered in the background, in the order they finished (call it inside the loop)."""
        self._deliverers[platform] = deliver
        pending = self._undelivered.pop(platform, [])
        if pending:
            task = asyncio.get_running_loop().create_task(self._deliver_all(pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver_all(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            await self._deliver_unattended(job_id)

    # -- entry points ----------------------------------------------------------------------

    async def handle(
        self, invocation: Invocation, progress: ProgressCallback | None = None
    ) -> Reply:
        """Run one command and return what to show.

        Args:
            invocation: the command, caller, text, typed options and input images.
            progress: called with queue position / running / final state of a job.

        Returns:
            A :class:`JobResult` for API commands and ``/show``; a :class:`TextReply` for the
            rest (and for a duplicate delivery, with ``duplicate=True``).

        Raises:
            UserError: any refusal, before any API call (bad flag, bad image, no permission,
                quota, budget, unknown command).
        """
        spec = registry.get(invocation.command)
        if spec is None:
            hint = suggest(invocation.command, list(registry.COMMANDS), 1)
            raise InvalidInput(
                messages.UNKNOWN_COMMAND.format(
                    name=invocation.command,
                    hint=f" Did you mean `/{hint[0]}`?" if hint else "",
                    names=", ".join(f"/{n}" for n in registry.COMMANDS),
                )
            )
        caller = invocation.caller
        if spec.name == "help":
            return TextReply(messages.help_text())
        if spec.name == "settings":
            return await self._settings_command(invocation)
        server = await self.server_settings(caller.platform, caller.server_id)
        # /help and /settings answer everywhere, so admins can always fix allowed_channels.
        self._check_channel(caller, server)
        if spec.name == "usage":
            return await self._usage(caller, server)
        if spec.name == "history":
            return await self._history(caller, invocation)
        if spec.name == "show":
            return await self._show(caller, invocation)

        new_job = await self._build_job(spec.name, invocation, server)
        return await self._create_and_run(new_job, server, progress)

    async def press(self, press: Press, progress: ProgressCallback | None = None) -> Reply:
        """Run the follow-up behind a button (SPEC §3).

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
        if parent is None:
            raise NotFound(messages.ACTION_STALE)
        caller = press.caller
        server = await self.server_settings(caller.platform, caller.server_id)
        self._check_channel(caller, server)
        action_label = f"{kind.value}:{index}"
        new_job = await self._build_follow_up(kind, index, parent, caller, server)
        new_job = replace(new_job, action=action_label, request_key=press.request_key)
        # Look-up and insert under one lock, so two clicks arriving together start one job.
        async with self._press_lock:
            recent = await jobs_repo.find_recent_press(
                self.db,
                owner_id=caller.user_id,
                parent_job_id=parent.id,
                action=action_label,
                since=self._clock() - DOUBLE_CLICK_WINDOW_S,
            )
            if recent is not None:
                return TextReply(messages.DUPLICATE_PRESS.format(job_id=recent.id), duplicate=True)
            created = await self._create(new_job, server)
        if isinstance(created, TextReply):
            return created
        await self.runner.submit(created, progress)
        return await self.result(created.id)

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
        """Build the postable result of a job from SQLite and the image store.

        Raises:
            NotFound: no such job.
        """
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None:
            raise NotFound(messages.JOB_NOT_FOUND.format(job_id=job_id))
        return await self._result_of(job)

    async def server_settings(self, platform: str, server_id: str) -> ServerSettings:
        """The settings in force for a server (defaults for keys never set)."""
        stored = await settings_repo.get_settings(self.db, platform=platform, server_id=server_id)
        return settings_rules.load(stored)

    # -- building jobs ---------------------------------------------------------------------

    async def _build_job(self, command: str, inv: Invocation, server: ServerSettings) -> NewJob:
        spec = registry.COMMANDS[command]
        image: InputImage | None = None
        if spec.takes_image:
            if not inv.images:
                raise InvalidImage(messages.NEEDS_IMAGE.format(command=command))
            if len(inv.images) > 1:
                raise InvalidInput(
                    messages.ONE_IMAGE.format(command=command, count=len(inv.images))
                )
            # Adapters build InputImage with prepare_input_image, which has checked it.
            image = inv.images[0]

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

        endpoint, request = request_for(command, prompt, opts, server, image)
        input_sha = await self.store.put(image.data) if image is not None else None
        return self._new_job(
            command=command,
            caller=inv.caller,
            prompt=prompt,
            endpoint=endpoint,
            request=request,
            transparent=opts.transparent,
            input_image=image,
            input_sha=input_sha,
            request_key=inv.request_key,
        )

    async def _build_follow_up(
        self,
        kind: ActionKind,
        index: int,
        parent: JobRecord,
        caller: Caller,
        server: ServerSettings,
    ) -> NewJob:
        base = parent.request.get("request", {})
        common: dict[str, Any] = {"caller": caller, "request_key": None}
        if kind is ActionKind.REROLL:
            request = {k: v for k, v in base.items() if k != "seed"}
            stored_input = await self._stored_input(parent)
            return self._new_job(
                command=parent.command,
                prompt=parent.prompt,
                endpoint=parent.request["endpoint"],
                request=request,
                transparent=bool(parent.request.get("transparent")),
                input_image=stored_input,
                input_sha=parent.input_sha256,
                parent=parent,
                **common,
            )
        if kind is ActionKind.IMAGINE:
            if not 1 <= index <= len(parent.descriptions):
                raise NotFound(messages.JOB_NO_IMAGE.format(job_id=parent.id, index=index))
            prompt = parent.descriptions[index - 1]
            self._check_words(server, prompt, None)
            endpoint, req = request_for("imagine", prompt, GenerationOptions(), server, None)
            return self._new_job(
                command="imagine",
                prompt=prompt,
                endpoint=endpoint,
                request=req,
                transparent=False,
                input_image=None,
                input_sha=None,
                parent=parent,
                parent_index=index - 1,
                **common,
            )

        # Every other action works on one stored result image.
        image_index = index - 1 if kind in (ActionKind.UPSCALE, ActionKind.VARY) else 0
        image, sha = await self._stored_result(parent, image_index)
        prompt = parent.prompt
        if kind is ActionKind.UPSCALE:
            endpoint, req = "upscale", dump(UpscaleInitialImageRequest())
            command = "upscale"
        elif kind in (ActionKind.VARY, ActionKind.VARY_SUBTLE, ActionKind.VARY_STRONG):
            weight = (
                server.vary_strong_weight
                if kind is ActionKind.VARY_STRONG
                else server.vary_subtle_weight
            )
            command = "remix"
            endpoint = "remix"
            req = vary_request(parent, prompt, weight, server, image)
        elif kind is ActionKind.ZOOM_OUT:
            command, endpoint = "reframe", "reframe"
            image, resolution = await asyncio.to_thread(zoom_out_input, image)
            req = dump(
                ReframeRequestV3(
                    resolution=resolution,
                    rendering_speed=server.default_speed,
                    num_images=1,
                )
            )
            sha = await self.store.put(image.data)
        elif kind is ActionKind.REMOVE_BG:
            command, endpoint, req = "remove-bg", "remove-bg", {}
        else:
            raise InvalidInput(messages.ACTION_UNKNOWN)
        return self._new_job(
            command=command,
            prompt=prompt,
            endpoint=endpoint,
            request=req,
            transparent=False,
            input_image=image,
            input_sha=sha,
            parent=parent,
            parent_index=image_index,
            **common,
        )

    def _new_job(
        self,
        *,
        command: str,
        caller: Caller,
        prompt: str,
        endpoint: str,
        request: Mapping[str, Any],
        transparent: bool,
        input_image: InputImage | None,
        input_sha: str | None,
        request_key: str | None,
        parent: JobRecord | None = None,
        parent_index: int | None = None,
    ) -> NewJob:
        num_images = int(request.get("num_images") or 1)
        speed = request.get("rendering_speed")
        return NewJob(
            id=new_job_id(),
            platform=caller.platform,
            server_id=caller.server_id,
            channel_id=caller.channel_id,
            owner_id=caller.user_id,
            command=command,
            action=None,
            parent_job_id=parent.id if parent else None,
            parent_index=parent_index,
            prompt=prompt,
            request={"endpoint": endpoint, "request": dict(request), "transparent": transparent},
            input_sha256=input_sha,
            input_content_type=input_image.content_type if input_image else None,
            num_images=num_images,
            rendering_speed=str(speed) if speed else None,
            request_key=request_key,
            created_at=self._clock(),
            estimated_cost_usd=estimate_usd(
                self.settings.prices,
                command=command,
                images=num_images,
                rendering_speed=str(speed) if speed else None,
                transparent=transparent,
            ),
        )

    async def _create_and_run(
        self,
        new_job: NewJob,
        server: ServerSettings,
        progress: ProgressCallback | None,
    ) -> Reply:
        created = await self._create(new_job, server)
        if isinstance(created, TextReply):
            return created
        await self.runner.submit(created, progress)
        return await self.result(created.id)

    async def _create(self, new_job: NewJob, server: ServerSettings) -> JobRecord | TextReply:
        """Store ``new_job`` as queued if the limits allow; a duplicate gives a TextReply.

        Raises:
            Busy, QuotaExceeded: a limit of SPEC §4-5 refuses it (nothing is stored).
        """
        now = datetime.fromtimestamp(self._clock(), UTC)
        limits = ReserveLimits(
            max_user_active=self.settings.max_user_active_jobs,
            daily_quota=server.daily_quota,
            monthly_budget_usd=server.monthly_budget_usd,
            day=now.strftime("%Y-%m-%d"),
            month=now.strftime("%Y-%m"),
        )
        outcome = await jobs_repo.insert_job(self.db, new_job, limits=limits)
        if outcome.status == "duplicate":
            return TextReply(
                messages.DUPLICATE_REQUEST.format(job_id=outcome.job_id), duplicate=True
            )
        if outcome.status == "user_busy":
            raise Busy(messages.USER_BUSY.format(active=int(outcome.used)))
        if outcome.status == "daily_quota":
            raise QuotaExceeded(messages.daily_quota(int(outcome.used), int(outcome.limit)))
        if outcome.status == "budget":
            raise QuotaExceeded(messages.BUDGET.format(used=outcome.used, limit=outcome.limit))
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

    # -- executing (called by the runner) -------------------------------------------------

    async def _execute(self, job: JobRecord) -> Outcome:
        endpoint = job.request["endpoint"]
        fields = job.request.get("request", {})
        image = await self._stored_input(job)
        client = self.client
        if endpoint == "generate":
            return Outcome(images=await client.generate(GenerateRequestV3.model_validate(fields)))
        if endpoint == "generate-transparent":
            request = GenerateTransparentRequestV3.model_validate(fields)
            return Outcome(images=await client.generate_transparent(request))
        if image is None:
            raise InvalidImage(messages.NEEDS_IMAGE.format(command=job.command))
        if endpoint == "remix":
            remix = RemixRequestV3.model_validate(fields)
            return Outcome(images=await client.remix(remix, image))
        if endpoint == "reframe":
            reframe = ReframeRequestV3.model_validate(fields)
            return Outcome(images=await client.reframe(reframe, image))
        if endpoint == "replace-bg":
            replace_bg = ReplaceBackgroundRequestV3.model_validate(fields)
            return Outcome(images=await client.replace_background(replace_bg, image))
        if endpoint == "remove-bg":
            return Outcome(images=await client.remove_background(image))
        if endpoint == "upscale":
            upscale = UpscaleInitialImageRequest.model_validate(fields)
            return Outcome(images=await client.upscale(upscale, image))
        if endpoint == "describe":
            describe = DescribeRequest.model_validate(fields)
            texts = await client.describe(image, describe)
            return Outcome(descriptions=texts)
        raise InvalidInput(f"Unknown job endpoint `{endpoint}`.")

    async def _stored_input(self, job: JobRecord) -> InputImage | None:
        if not job.input_sha256:
            return None
        # Stored inputs were prepared before they were stored: read the header, not the pixels.
        data = await self.store.get(job.input_sha256)
        content_type = job.input_content_type or sniff_content_type(data) or "image/png"
        width, height = await asyncio.to_thread(image_size, data)
        extension = _EXTENSIONS.get(content_type, "png")
        return InputImage(data, f"input-{job.id}.{extension}", content_type, width, height)

    async def _stored_result(self, job: JobRecord, index: int) -> tuple[InputImage, str]:
        images = await jobs_repo.get_images(self.db, job.id)
        match = [img for img in images if img.idx == index and img.sha256]
        if not match or match[0].sha256 is None:
            raise NotFound(messages.JOB_NO_IMAGE.format(job_id=job.id, index=index + 1))
        sha = match[0].sha256
        data = await self.store.get(sha)
        image = await asyncio.to_thread(prepare_input_image, data, f"{job.id}-{index + 1}")
        return image, sha

    # -- results ---------------------------------------------------------------------------

    async def _result_of(self, job: JobRecord) -> JobResult:
        rows = await jobs_repo.get_images(self.db, job.id)
        images: list[ResultImage] = []
        for row in rows:
            data = await self.store.get(row.sha256) if row.sha256 else None
            ext = _EXTENSIONS.get(row.content_type or "", "png")
            images.append(
                ResultImage(
                    index=row.idx,
                    data=data,
                    content_type=row.content_type,
                    filename=f"ideogram_{job.id}_{row.idx + 1}.{ext}",
                    width=row.width or 0,
                    height=row.height or 0,
                    seed=row.seed,
                )
            )
        request = job.request.get("request", {})
        seeds = list(dict.fromkeys(str(r.seed) for r in rows if r.seed is not None))
        # Only these commands take magic_prompt; other endpoints echo a prompt of their own.
        magic = (
            next((r.prompt for r in rows if r.prompt), None)
            if job.command in ("imagine", "remix", "replace-bg")
            else None
        )
        withheld = sum(1 for i in images if i.withheld)
        note = None
        if withheld and withheld == len(images):
            note = messages.ALL_WITHHELD
        elif withheld:
            note = messages.withheld_note(withheld, len(images))
        caption = Caption(
            requester_id=job.owner_id,
            command=job.command,
            prompt=job.prompt,
            magic_prompt=magic if magic and magic != job.prompt else None,
            seed=", ".join(seeds) if seeds else None,
            speed=request.get("rendering_speed"),
            style=request.get("style_type") or request.get("style_preset"),
            aspect_ratio=request.get("aspect_ratio") or request.get("resolution"),
            job_id=job.id,
            note=note,
        )
        error = job.error
        if job.status == "succeeded" and job.command == "describe" and not job.descriptions:
            error = messages.NOTHING_DESCRIBED
        if job.status == "cancelled" and not error:
            error = messages.CANCELLED_BY_OWNER
        return JobResult(
            job_id=job.id,
            command=job.command,
            status=job.status,
            platform=job.platform,
            server_id=job.server_id,
            channel_id=job.channel_id,
            owner_id=job.owner_id,
            caption=caption,
            images=tuple(images),
            descriptions=tuple(job.descriptions),
            rows=_buttons(job, images) if job.status == "succeeded" else (),
            error=error,
        )

    async def _deliver_unattended(self, job_id: str) -> None:
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None:
            return
        deliver = self._deliverers.get(job.platform)
        if deliver is None:
            self._undelivered.setdefault(job.platform, []).append(job_id)
            return
        try:
            await deliver(await self._result_of(job))
        except Exception:
            log.exception("posting the result of job %s on %s failed", job_id, job.platform)

    # -- non-API commands ------------------------------------------------------------------

    async def _usage(self, caller: Caller, server: ServerSettings) -> TextReply:
        now = datetime.fromtimestamp(self._clock(), UTC)
        key = {"platform": caller.platform, "server_id": caller.server_id}
        today = await usage_repo.user_totals(
            self.db, user_id=caller.user_id, day=now.strftime("%Y-%m-%d"), **key
        )
        month = await usage_repo.user_totals(
            self.db, user_id=caller.user_id, month=now.strftime("%Y-%m"), **key
        )
        server_month = await usage_repo.server_totals(self.db, month=now.strftime("%Y-%m"), **key)
        rows = [
            ("", "jobs", "images", "est. cost"),
            ("today", str(today.jobs), str(today.images), f"${today.cost_usd:.2f}"),
            ("this month", str(month.jobs), str(month.images), f"${month.cost_usd:.2f}"),
        ]
        lines = ["**Your usage** (UTC days)", messages.table(rows)]
        if server.daily_quota:
            left = max(0, server.daily_quota - today.images)
            lines.append(f"Daily quota: {left} of {server.daily_quota} images left today.")
        else:
            lines.append("Daily quota: unlimited.")
        if server.monthly_budget_usd:
            left_usd = max(0.0, server.monthly_budget_usd - server_month.cost_usd)
            lines.append(
                f"Server budget: ${left_usd:.2f} of ${server.monthly_budget_usd:.2f} left "
                "this month."
            )
        else:
            lines.append("Server budget: unlimited.")
        return TextReply("\n".join(lines))

    async def _history(self, caller: Caller, inv: Invocation) -> TextReply:
        raw = inv.options.get("count", inv.text.strip() or HISTORY_DEFAULT)
        try:
            count = int(raw)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"/history takes a number of jobs from 1 to {HISTORY_MAX}."
            ) from None
        if not 1 <= count <= HISTORY_MAX:
            raise InvalidInput(f"/history takes a number of jobs from 1 to {HISTORY_MAX}.")
        jobs = await jobs_repo.recent_jobs(
            self.db, platform=caller.platform, owner_id=caller.user_id, limit=count
        )
        if not jobs:
            return TextReply("You have no jobs yet. Try `/imagine a red fox in the snow`.")
        lines = [f"**Your last {len(jobs)} jobs**"]
        for job in jobs:
            images = await jobs_repo.get_images(self.db, job.id)
            seeds = ", ".join(dict.fromkeys(str(i.seed) for i in images if i.seed is not None))
            when = datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M")
            prompt = job.prompt if len(job.prompt) <= 80 else job.prompt[:79] + "…"
            seed_text = f" · seed {seeds}" if seeds else ""
            lines.append(
                f"`{job.id}` {when} /{job.command} {job.status}{seed_text} — {prompt or '(image)'}"
            )
        lines.append("Use `/show job_id` to post one again with its buttons.")
        return TextReply("\n".join(lines))

    async def _show(self, caller: Caller, inv: Invocation) -> JobResult:
        job_id = str(inv.options.get("job_id") or inv.text).strip().strip("`").lower()
        if not job_id:
            raise InvalidInput("/show needs a job id; `/history` lists yours.")
        job = await jobs_repo.get_job(self.db, job_id)
        visible = (
            job is not None
            and job.platform == caller.platform
            and (
                job.owner_id == caller.user_id
                or (job.server_id and job.server_id == caller.server_id)
            )
        )
        if job is None or not visible:
            raise NotFound(messages.JOB_NOT_FOUND.format(job_id=job_id))
        return await self._result_of(job)

    async def _settings_command(self, inv: Invocation) -> TextReply:
        caller = inv.caller
        words = inv.text.split(maxsplit=2)
        action = str(inv.options.get("action") or (words[0] if words else "show")).lower()
        key = inv.options.get("key") or (words[1] if len(words) > 1 else None)
        value = inv.options.get("value") or (words[2] if len(words) > 2 else None)
        where = {"platform": caller.platform, "server_id": caller.server_id}
        if action == "show":
            current = await self.server_settings(caller.platform, caller.server_id)
            rows = [("key", "value")] + [(k, v) for k, v, _ in settings_rules.as_rows(current)]
            return TextReply("**Server settings**\n" + messages.table(rows))
        if action not in ("set", "reset"):
            raise InvalidInput(
                "Use `/settings show`, `/settings set key value` or `/settings reset key`."
            )
        # Server-side check on every change, whatever the platform's permissions say (SPEC §5).
        if not caller.is_admin:
            raise NotAllowed(messages.SETTINGS_ADMIN_ONLY)
        if not key:
            raise InvalidInput(f"/settings {action} needs a key: {', '.join(settings_rules.KEYS)}.")
        spec = settings_rules.check_key(str(key))
        if action == "reset":
            await settings_repo.reset_setting(self.db, key=spec.name, **where)
            default = settings_rules.format_value(getattr(ServerSettings(), spec.name))
            return TextReply(f"`{spec.name}` is back to its default: `{default or '(empty)'}`.")
        if value is None:
            raise InvalidInput(f"/settings set {spec.name} needs a value ({spec.meaning}).")
        text = settings_rules.normalise_value(spec.name, str(value))
        await settings_repo.set_setting(
            self.db,
            key=spec.name,
            value=text,
            updated_by=caller.user_id,
            now=self._clock(),
            **where,
        )
        log.info(
            "setting %s=%s on %s/%s by %s",
            spec.name,
            text,
            caller.platform,
            caller.server_id,
            caller.user_id,
        )
        return TextReply(f"`{spec.name}` is now `{text or '(empty)'}`.")

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


def _buttons(job: JobRecord, images: Sequence[ResultImage]) -> tuple[tuple[Action, ...], ...]:
    """The button rows of a finished job (SPEC §3); ≤ 5 per row, ≤ 5 rows."""
    ready = [img for img in images if not img.withheld]
    rows: list[tuple[Action, ...]] = []

    def chunk(actions: list[Action]) -> None:
        for start in range(0, len(actions), 5):
            rows.append(tuple(actions[start : start + 5]))

    if job.command == "describe":
        chunk(
            [
                Action(ActionKind.IMAGINE, job.id, i, f"Imagine {i}")
                for i in range(1, len(job.descriptions) + 1)
            ]
        )
    elif job.command == "upscale":
        if ready:
            rows.append(
                (
                    Action(ActionKind.VARY_SUBTLE, job.id, 1, "Vary (Subtle)"),
                    Action(ActionKind.VARY_STRONG, job.id, 1, "Vary (Strong)"),
                    Action(ActionKind.ZOOM_OUT, job.id, 1, "Zoom Out"),
                    Action(ActionKind.REMOVE_BG, job.id, 1, "Remove BG"),
                )
            )
    elif job.command == "remove-bg":
        chunk([Action(ActionKind.UPSCALE, job.id, i.index + 1, f"U{i.index + 1}") for i in ready])
    elif job.command in _GENERATION_COMMANDS:
        chunk([Action(ActionKind.UPSCALE, job.id, i.index + 1, f"U{i.index + 1}") for i in ready])
        variations = [
            Action(ActionKind.VARY, job.id, i.index + 1, f"V{i.index + 1}") for i in ready
        ]
        reroll = Action(ActionKind.REROLL, job.id, 0, "🔄")
        if variations and len(variations) % 5 != 0:
            variations.append(reroll)
            chunk(variations)
        else:
            chunk(variations)
            rows.append((reroll,))
    return tuple(rows[:5])
