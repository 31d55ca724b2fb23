"""Per-server settings: set, read back, overwrite, reset."""

from __future__ import annotations

from storage import Database, get_settings, reset_setting, set_setting

from .factories import NOW


async def test_set_get_reset(db: Database) -> None:
    """An admin's value is read back, replaced by a later one, and forgotten on reset."""
    assert await get_settings(db, platform="discord", server_id="g1") == {}
    await set_setting(
        db,
        platform="discord",
        server_id="g1",
        key="daily_quota",
        value="20",
        updated_by="admin1",
        now=NOW,
    )
    await set_setting(
        db,
        platform="discord",
        server_id="g1",
        key="default_speed",
        value="quality",
        updated_by="admin1",
        now=NOW,
    )
    await set_setting(
        db,
        platform="discord",
        server_id="g1",
        key="daily_quota",
        value="50",
        updated_by="admin2",
        now=NOW + 1,
    )
    assert await get_settings(db, platform="discord", server_id="g1") == {
        "daily_quota": "50",
        "default_speed": "quality",
    }
    row = await db.fetchone(
        "SELECT updated_by, updated_at FROM server_settings WHERE key = 'daily_quota'"
    )
    assert row is not None and (row["updated_by"], row["updated_at"]) == ("admin2", NOW + 1)

    assert await reset_setting(db, platform="discord", server_id="g1", key="daily_quota")
    assert not await reset_setting(db, platform="discord", server_id="g1", key="daily_quota")
    assert await get_settings(db, platform="discord", server_id="g1") == {
        "default_speed": "quality"
    }


async def test_settings_are_per_server_and_platform(db: Database) -> None:
    """A Slack team and another guild do not see a guild's settings."""
    await set_setting(
        db,
        platform="discord",
        server_id="g1",
        key="blocked_words",
        value="foo, bar",
        updated_by=None,
        now=NOW,
    )
    assert await get_settings(db, platform="discord", server_id="g2") == {}
    assert await get_settings(db, platform="slack", server_id="g1") == {}
    assert await get_settings(db, platform="discord", server_id="g1") == {
        "blocked_words": "foo, bar"
    }
