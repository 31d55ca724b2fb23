"""Stored requests: typed on the way in, and old rows upgraded by migration 0003."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.commands.endpoints import (
    ENDPOINTS,
    GenerateJob,
    GenerateTransparentJob,
    LegacyGenerateJob,
    RemixJob,
    StoredImage,
    StoredParts,
    dump_request,
    load_request,
)
from bot.config import PriceTable
from bot.ideogram.models import GenerateRequestV3, RemixRequestV3, RenderingSpeed
from bot.ideogram.models_legacy import GenerateImageRequest, ImageRequest, ModelEnum
from bot.requests import new_job
from bot.types import Caller
from storage import DEFAULT_MIGRATIONS_DIR, Database, get_job, migrate_path

# A row as the first release wrote it (request_json with the "transparent" flag).
_OLD_ROW = (
    "INSERT INTO jobs (id, seq, platform, owner_id, command, request_json, num_images, status,"
    " created_at) VALUES (?, ?, 'discord', 'u1', 'imagine', ?, 1, 'succeeded', 0)"
)


async def test_rows_of_the_first_release_are_upgraded_in_place(tmp_path: Path) -> None:
    """A database made before typed requests opens, loses the redundant flag, and every
    stored request reads back as its endpoint's model."""
    first = tmp_path / "first-release"
    first.mkdir()
    shutil.copy(DEFAULT_MIGRATIONS_DIR / "0001_initial.sql", first)
    path = tmp_path / "bot.sqlite3"
    assert await migrate_path(path, migrations_dir=first) == [1]
    old = {
        "t1": {
            "endpoint": "generate-transparent",
            "request": {"prompt": "a fox"},
            "transparent": True,
        },
        "r1": {"endpoint": "remove-bg", "request": {}, "transparent": False},
    }
    async with await Database.open(path, migrations_dir=first) as db:
        async with db.transaction() as conn:
            for seq, (job_id, request) in enumerate(old.items(), start=1):
                await conn.execute(_OLD_ROW, (job_id, seq, json.dumps(request)))

    async with await Database.open(path) as db:
        assert await db.schema_version() >= 3
        transparent = await get_job(db, "t1")
        cut_out = await get_job(db, "r1")
    assert transparent is not None and cut_out is not None
    assert "transparent" not in transparent.request and "transparent" not in cut_out.request
    typed = load_request(transparent.request)
    assert isinstance(typed, GenerateTransparentJob) and typed.request.prompt == "a fox"
    assert load_request(cut_out.request).endpoint == "remove-bg"


def test_a_request_round_trips_through_its_stored_form() -> None:
    """What storage keeps is plain JSON and reads back equal; unset fields are left out."""
    request = RemixJob(
        request=RemixRequestV3(
            prompt="watercolor", image_weight=30, rendering_speed=RenderingSpeed.TURBO
        )
    )
    stored = json.loads(json.dumps(dump_request(request)))
    assert stored == {
        "endpoint": "remix",
        "request": {"prompt": "watercolor", "image_weight": 30, "rendering_speed": "TURBO"},
    }
    assert load_request(stored) == request


def test_unknown_endpoints_and_bad_fields_are_refused() -> None:
    """A corrupt row fails loudly instead of calling the wrong endpoint."""
    with pytest.raises(ValidationError):
        load_request({"endpoint": "teleport", "request": {}})
    with pytest.raises(ValidationError):
        load_request({"endpoint": "remix", "request": {"prompt": "x", "image_weight": 500}})


def test_every_endpoint_reads_its_own_stored_form() -> None:
    """The table's discriminators and models agree for every endpoint."""
    for name, endpoint in ENDPOINTS.items():
        assert endpoint.stored.model_fields["endpoint"].default == name


def test_estimates_use_the_legacy_model_price_and_the_character_surcharge() -> None:
    """A job's estimate comes from its whole stored request: a legacy model's own price, and
    the per-image surcharge when a character reference is sent."""
    prices = PriceTable(_env_file=None)  # type: ignore[call-arg]
    caller = Caller(platform="console", user_id="u", server_id="s", channel_id="c")
    common = {
        "caller": caller,
        "prompt": "a fox",
        "input_image": None,
        "input_sha": None,
        "request_key": None,
        "prices": prices,
        "now": 0.0,
    }
    legacy = LegacyGenerateJob(
        request=GenerateImageRequest(
            image_request=ImageRequest(prompt="a fox", model=ModelEnum.V_2A_TURBO)
        )
    )
    job = new_job(legacy, command="imagine", **common)  # type: ignore[arg-type]
    assert job.estimated_cost_usd == pytest.approx(prices.legacy_v2a_turbo)

    reference = StoredImage(sha256="a" * 64, content_type="image/png", filename="me.png")
    with_character = GenerateJob(
        request=GenerateRequestV3(
            prompt="a fox", num_images=2, rendering_speed=RenderingSpeed.TURBO
        ),
        parts=StoredParts(character_reference_images=(reference,)),
    )
    job = new_job(with_character, command="imagine", **common)  # type: ignore[arg-type]
    assert job.estimated_cost_usd == pytest.approx(2 * (prices.turbo + prices.character))
