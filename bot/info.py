"""The commands that answer in words and start no job: ``/usage``, ``/history``, ``/show``,
``/settings`` and ``/help``.

Each is ``async handler(ctx, invocation, server) -> Reply`` and is named by its entry in
:data:`bot.commands.registry.COMMANDS`; the engine calls it after the channel check (``/help``
and ``/settings`` answer in every channel, so an admin can always fix ``allowed_channels``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot import messages
from bot import server_settings as settings_rules
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.server_settings import ServerSettings
from bot.types import Caller, Invocation, JobResult, Reply, TextReply
from storage import Database, JobRecord
from storage import jobs as jobs_repo
from storage import settings as settings_repo
from storage import usage as usage_repo

if TYPE_CHECKING:
    from bot.commands.registry import CommandSpec

log = logging.getLogger(__name__)

HISTORY_DEFAULT = 10
HISTORY_MAX = 25


@dataclass(frozen=True, slots=True)
class InfoContext:
    """What the text commands read.

    Attributes:
        db: the database.
        clock: current time in Unix seconds (the engine's clock).
        commands: the command table, for ``/help``.
        result_of: builds the postable result of a stored job (``/show``).
        defaults: the settings of a server that changed nothing (``/settings reset``).
    """

    db: Database
    clock: Callable[[], float]
    commands: Mapping[str, CommandSpec]
    result_of: Callable[[JobRecord], Awaitable[JobResult]]
    defaults: ServerSettings


async def help_command(ctx: InfoContext, inv: Invocation, server: ServerSettings) -> Reply:
    """``/help``: the commands the caller's platform offers, flags, buttons and examples."""
    platform = inv.caller.platform
    offered = {n: c for n, c in ctx.commands.items() if platform in c.platforms}
    return TextReply(messages.help_text(offered))


async def usage(ctx: InfoContext, inv: Invocation, server: ServerSettings) -> Reply:
    """``/usage``: the caller's jobs, images and estimated cost today and this month, quota
    and budget left; for admins also the server's calls this month that the API may have
    billed (uncertain ledger rows)."""
    caller = inv.caller
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    key = {"platform": caller.platform, "server_id": caller.server_id}
    today = await usage_repo.user_totals(
        ctx.db, user_id=caller.user_id, day=now.strftime("%Y-%m-%d"), **key
    )
    month = await usage_repo.user_totals(
        ctx.db, user_id=caller.user_id, month=now.strftime("%Y-%m"), **key
    )
    server_month = await usage_repo.server_totals(ctx.db, month=now.strftime("%Y-%m"), **key)
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
            f"Server budget: ${left_usd:.2f} of ${server.monthly_budget_usd:.2f} left this month."
        )
    else:
        lines.append("Server budget: unlimited.")
    if caller.is_admin:
        uncertain = await usage_repo.uncertain_totals(ctx.db, month=now.strftime("%Y-%m"), **key)
        if uncertain.jobs:
            lines.append(messages.possibly_billed(uncertain.jobs, uncertain.cost_usd))
    return TextReply("\n".join(lines))


async def history(ctx: InfoContext, inv: Invocation, server: ServerSettings) -> Reply:
    """``/history [n]``: the caller's last ``n`` jobs (1–25, default 10).

    Raises:
        InvalidInput: ``n`` is not a number in range.
    """
    caller = inv.caller
    raw = inv.options.get("count", inv.text.strip() or HISTORY_DEFAULT)
    try:
        count = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"/history takes a number of jobs from 1 to {HISTORY_MAX}.") from None
    if not 1 <= count <= HISTORY_MAX:
        raise InvalidInput(f"/history takes a number of jobs from 1 to {HISTORY_MAX}.")
    jobs = await jobs_repo.recent_jobs(
        ctx.db, platform=caller.platform, owner_id=caller.user_id, limit=count
    )
    if not jobs:
        return TextReply("You have no jobs yet. Try `/imagine a red fox in the snow`.")
    lines = [f"**Your last {len(jobs)} jobs**"]
    for job in jobs:
        images = await jobs_repo.get_images(ctx.db, job.id)
        seeds = ", ".join(dict.fromkeys(str(i.seed) for i in images if i.seed is not None))
        when = datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        prompt = job.prompt if len(job.prompt) <= 80 else job.prompt[:79] + "…"
        seed_text = f" · seed {seeds}" if seeds else ""
        lines.append(
            f"`{job.id}` {when} /{job.command} {job.status}{seed_text} — {prompt or '(image)'}"
        )
    lines.append("Use `/show job_id` to post one again with its buttons.")
    return TextReply("\n".join(lines))


async def show(ctx: InfoContext, inv: Invocation, server: ServerSettings) -> Reply:
    """``/show job_id``: a past job of the caller, or of this server, with live buttons.

    Raises:
        InvalidInput: no job id.  NotFound: no such job visible to the caller.
    """
    caller = inv.caller
    job_id = str(inv.options.get("job_id") or inv.text).strip().strip("`").lower()
    if not job_id:
        raise InvalidInput("/show needs a job id; `/history` lists yours.")
    job = await jobs_repo.get_job(ctx.db, job_id)
    visible = job is not None and may_show(job, caller)
    if job is None or not visible:
        raise NotFound(messages.JOB_NOT_FOUND.format(job_id=job_id))
    return await ctx.result_of(job)


async def settings_command(ctx: InfoContext, inv: Invocation, server: ServerSettings) -> Reply:
    """``/settings show | set KEY VALUE | reset KEY``; admins change (checked here on every
    change, whatever the platform's own permissions say).

    Raises:
        InvalidInput: bad action, key or value.  NotAllowed: a change by a non-admin.
    """
    caller = inv.caller
    words = inv.text.split(maxsplit=2)
    action = str(inv.options.get("action") or (words[0] if words else "show")).lower()
    key = inv.options.get("key") or (words[1] if len(words) > 1 else None)
    value = inv.options.get("value") or (words[2] if len(words) > 2 else None)
    where = {"platform": caller.platform, "server_id": caller.server_id}
    if action == "show":
        current = server
        rows = [("key", "value")] + [(k, v) for k, v, _ in settings_rules.as_rows(current)]
        return TextReply("**Server settings**\n" + messages.table(rows))
    if action not in ("set", "reset"):
        raise InvalidInput(
            "Use `/settings show`, `/settings set key value` or `/settings reset key`."
        )
    # Server-side check on every change, whatever the platform's permissions say: platform
    # command permissions can be changed by server owners, so they are not proof of admin.
    if not caller.is_admin:
        raise NotAllowed(messages.SETTINGS_ADMIN_ONLY)
    if not key:
        raise InvalidInput(f"/settings {action} needs a key: {', '.join(settings_rules.KEYS)}.")
    spec = settings_rules.check_key(str(key))
    if action == "reset":
        await settings_repo.reset_setting(ctx.db, key=spec.name, **where)
        default = settings_rules.format_value(getattr(ctx.defaults, spec.name))
        return TextReply(f"`{spec.name}` is back to its default: `{default or '(empty)'}`.")
    if value is None:
        raise InvalidInput(f"/settings set {spec.name} needs a value ({spec.meaning}).")
    text = settings_rules.normalise_value(spec.name, str(value))
    await settings_repo.set_setting(
        ctx.db,
        key=spec.name,
        value=text,
        updated_by=caller.user_id,
        now=ctx.clock(),
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


def may_show(job: JobRecord, caller: Caller) -> bool:
    """``/show`` posts a job publicly: its owner may show it anywhere on its platform; others
    only a job of this server from the channel they are in (admins: any channel of it). A
    DM's job is shown to its owner alone."""
    if job.platform != caller.platform:
        return False
    if job.owner_id == caller.user_id:
        return True
    if not job.server_id or job.server_id != caller.server_id:
        return False
    return caller.is_admin or job.channel_id == caller.channel_id
