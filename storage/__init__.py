"""SQLite storage of ideogram-bot: jobs, result images, the usage ledger, server settings.

A small typed repository over aiosqlite (docs/architecture.md, storage): :class:`Database` owns
the one connection and applies versioned migrations at start-up; module-level async functions take
the database first and return frozen records. This package never imports ``bot``.

Typical use::

    async with await Database.open(settings.database_path) as db:
        outcome = await insert_job(db, new_job, limits=limits)
"""

from storage.db import (
    DEFAULT_MIGRATIONS_DIR,
    Database,
    Migration,
    MigrationError,
    load_migrations,
    migrate_path,
)
from storage.jobs import (
    cancel_job,
    check_limits,
    find_active_press,
    finish_job,
    get_images,
    get_job,
    insert_job,
    list_jobs_by_status,
    mark_running,
    recent_jobs,
    requeue_job,
)
from storage.leases import interrupt_expired, release_leases, renew_leases, settle_charge
from storage.messages import job_of_message, link_message, messages_of_job
from storage.records import (
    ACTIVE_STATUSES,
    JOB_STATUSES,
    TERMINAL_STATUSES,
    Charge,
    ImageRecord,
    JobRecord,
    JobStatus,
    NewImage,
    NewJob,
    ReserveLimits,
    ReserveOutcome,
    ReserveStatus,
    UsageTotals,
)
from storage.settings import get_settings, reset_setting, set_setting
from storage.usage import (
    charge,
    ledger_by_job,
    server_totals,
    uncertain_by_job,
    uncertain_totals,
    user_totals,
)

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_MIGRATIONS_DIR",
    "JOB_STATUSES",
    "TERMINAL_STATUSES",
    "Charge",
    "Database",
    "ImageRecord",
    "JobRecord",
    "JobStatus",
    "Migration",
    "MigrationError",
    "NewImage",
    "NewJob",
    "ReserveLimits",
    "ReserveOutcome",
    "ReserveStatus",
    "UsageTotals",
    "cancel_job",
    "charge",
    "check_limits",
    "find_active_press",
    "finish_job",
    "get_images",
    "get_job",
    "get_settings",
    "insert_job",
    "interrupt_expired",
    "job_of_message",
    "ledger_by_job",
    "link_message",
    "list_jobs_by_status",
    "load_migrations",
    "mark_running",
    "messages_of_job",
    "migrate_path",
    "recent_jobs",
    "release_leases",
    "renew_leases",
    "requeue_job",
    "reset_setting",
    "server_totals",
    "set_setting",
    "settle_charge",
    "uncertain_by_job",
    "uncertain_totals",
    "user_totals",
]
