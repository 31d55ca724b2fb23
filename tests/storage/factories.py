"""Builders and fixed times shared by the storage tests."""

from __future__ import annotations

from typing import Any

from storage import NewJob, ReserveLimits

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
DAY = "2025-06-15"
MONTH = "2025-06"


def make_job(job_id: str, **fields: Any) -> NewJob:
    """Build a one-image TURBO ``/imagine`` job (0.03 USD) of ``u1`` on Discord guild ``g1``."""
    values: dict[str, Any] = {
        "id": job_id,
        "platform": "discord",
        "server_id": "g1",
        "channel_id": "c1",
        "owner_id": "u1",
        "command": "imagine",
        "prompt": "a red fox",
        "request": {"prompt": "a red fox", "rendering_speed": "TURBO"},
        "num_images": 1,
        "rendering_speed": "TURBO",
        "estimated_cost_usd": 0.03,
        "created_at": NOW,
    }
    values.update(fields)
    return NewJob(**values)


def limits(
    *, max_user_active: int = 0, daily_quota: int = 0, monthly_budget_usd: float = 0
) -> ReserveLimits:
    """Build limits for today (:data:`DAY`, :data:`MONTH`); 0 = unlimited."""
    return ReserveLimits(
        max_user_active=max_user_active,
        daily_quota=daily_quota,
        monthly_budget_usd=monthly_budget_usd,
        day=DAY,
        month=MONTH,
    )
