"""Every job obeys the server's rules as they are now: operator defaults for new servers,
today's settings for button presses, and buttons and /show only where the job belongs."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from bot.errors import NotAllowed, NotFound, QuotaExceeded
from bot.offline import OfflineIdeogram
from bot.types import Caller, Invocation, JobResult, Press, TextReply
from storage import jobs as jobs_repo
from tests.conftest import DEMO_PHOTO, Harness

from .test_engine import ADMIN, ALICE, BOB, imagine, press_id


async def _settings(h: Harness, text: str) -> None:
    reply = await h.engine.handle(Invocation("settings", ADMIN, text=text))
    assert isinstance(reply, TextReply)


# -- operator defaults ---------------------------------------------------------------------------


@pytest.fixture
async def limited(
    tmp_path: Path, session: aiohttp.ClientSession, offline: OfflineIdeogram
) -> Harness:
    """A harness whose operator set DEFAULT_DAILY_QUOTA=3 and DEFAULT_MONTHLY_BUDGET_USD=1."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_path=tmp_path / "data" / "bot.sqlite3",
        default_daily_quota=3,
        default_monthly_budget_usd=1.0,
    )
    h = await Harness(settings, session, offline).open()
    yield h  # type: ignore[misc]
    await h.close()


async def test_a_new_server_starts_with_the_operator_limits(limited: Harness) -> None:
    """A server that never changed a setting is limited by the operator's defaults; its admin
    can lift them, and /settings reset goes back to the operator's value."""
    await imagine(limited, "a fox --n 2")
    before = limited.api_calls
    with pytest.raises(QuotaExceeded, match="daily quota of 3"):
        await imagine(limited, "a fox --n 2")
    assert limited.api_calls == before
    shown = await limited.engine.handle(Invocation("settings", ALICE, text="show"))
    assert isinstance(shown, TextReply) and "daily_quota" in shown.text and "3" in shown.text

    await _settings(limited, "set daily_quota 0")
    assert (await imagine(limited, "a fox --n 2")).ok
    reset = await limited.engine.handle(Invocation("settings", ADMIN, text="reset daily_quota"))
    assert isinstance(reset, TextReply) and "`3`" in reset.text
    server = await limited.engine.server_settings("console", "s1")
    assert (server.daily_quota, server.monthly_budget_usd) == (3, 1.0)


async def test_describe_counts_one_image_against_the_daily_quota(limited: Harness) -> None:
    """/describe takes one image of the quota (and /help says so)."""
    photo = DEMO_PHOTO.read_bytes()
    from bot.images import prepare_input_image

    image = prepare_input_image(photo, "coffee.jpg")
    for _ in range(3):
        reply = await limited.engine.handle(Invocation("describe", ALICE, images=(image,)))
        assert isinstance(reply, JobResult) and reply.ok
    with pytest.raises(QuotaExceeded):
        await imagine(limited, "a fox")
    help_text = await limited.engine.handle(Invocation("help", ALICE))
    assert isinstance(help_text, TextReply) and "/describe counts as one image" in help_text.text


# -- follow-ups obey today's settings ------------------------------------------------------------


async def test_buttons_obey_blocked_words_set_after_the_result(harness: Harness) -> None:
    """🔄 and V1 on a result whose prompt is now blocked are refused before any call."""
    first = await imagine(harness, "secret launch poster --n 4")
    await _settings(harness, "set blocked_words secret")
    before = harness.api_calls
    for label in ("🔄", "V1"):
        with pytest.raises(NotAllowed, match="secret"):
            await harness.engine.press(Press(press_id(first, label), BOB))
    assert harness.api_calls == before


async def test_buttons_obey_a_lowered_max_num_images(harness: Harness) -> None:
    """After an admin lowered max_num_images to 1, 🔄 and V1 on a 4-image result make 1."""
    first = await imagine(harness, "launch poster --n 4")
    await _settings(harness, "set max_num_images 1")
    for label in ("🔄", "V1"):
        reply = await harness.engine.press(Press(press_id(first, label), BOB))
        assert isinstance(reply, JobResult) and reply.ok
        assert len(reply.images) == 1
        job = await jobs_repo.get_job(harness.db, reply.job_id)
        assert job is not None and job.num_images == 1


async def test_buttons_obey_allowed_channels_and_quota(harness: Harness) -> None:
    """A press is checked against today's channel list and the presser's quota."""
    first = await imagine(harness, "a fox --n 2")
    await _settings(harness, "set daily_quota 2")
    with pytest.raises(QuotaExceeded):  # ALICE used her 2 images
        await harness.engine.press(Press(press_id(first, "🔄"), ALICE))
    await _settings(harness, "set allowed_channels c9")
    with pytest.raises(NotAllowed):
        await harness.engine.press(Press(press_id(first, "🔄"), BOB))


# -- buttons and /show stay where the job belongs -------------------------------------------------


async def test_a_button_from_another_server_or_platform_is_refused(harness: Harness) -> None:
    first = await imagine(harness, "a fox")
    before = harness.api_calls
    strangers = [
        Caller(platform="console", user_id="mallory", server_id="s2", channel_id="c1"),
        Caller(platform="slack", user_id="alice", server_id="s1", channel_id="c1"),
        Caller(platform="console", user_id="mallory", server_id="", channel_id="dm"),
    ]
    for caller in strangers:
        with pytest.raises(NotFound):
            await harness.engine.press(Press(press_id(first, "U1"), caller))
    assert harness.api_calls == before


async def test_a_dm_job_answers_only_its_owner(harness: Harness) -> None:
    alone = Caller(platform="console", user_id="alice", server_id="", channel_id="dm-alice")
    other = Caller(platform="console", user_id="bob", server_id="", channel_id="dm-bob")
    first = await imagine(harness, "a private fox", caller=alone)
    with pytest.raises(NotFound):
        await harness.engine.press(Press(press_id(first, "U1"), other))
    with pytest.raises(NotFound):
        await harness.engine.handle(Invocation("show", other, text=first.job_id))
    again = await harness.engine.handle(Invocation("show", alone, text=first.job_id))
    assert isinstance(again, JobResult) and again.job_id == first.job_id


async def test_show_of_another_users_job_only_from_its_channel_or_by_an_admin(
    harness: Harness,
) -> None:
    first = await imagine(harness, "a fox in channel one")
    elsewhere = Caller(platform="console", user_id="bob", server_id="s1", channel_id="c2")
    with pytest.raises(NotFound):
        await harness.engine.handle(Invocation("show", elsewhere, text=first.job_id))
    same_channel = await harness.engine.handle(Invocation("show", BOB, text=first.job_id))
    assert isinstance(same_channel, JobResult)
    admin_elsewhere = Caller(
        platform="console", user_id="admin", server_id="s1", channel_id="c2", is_admin=True
    )
    assert isinstance(
        await harness.engine.handle(Invocation("show", admin_elsewhere, text=first.job_id)),
        JobResult,
    )
    owner_elsewhere = Caller(platform="console", user_id="alice", server_id="s1", channel_id="c2")
    assert isinstance(
        await harness.engine.handle(Invocation("show", owner_elsewhere, text=first.job_id)),
        JobResult,
    )
