"""A job's files and its postable result: stored inputs, stored result images, execution.

:class:`JobFiles` reads what a job stored (its input image, its result images) back from the
content-addressed :class:`~bot.image_store.ImageStore` and builds the
:class:`~bot.types.JobResult` adapters post: images with their exact stored bytes, the caption,
and the buttons the command table names. :class:`Executor` is the runner's executor: it calls the
job's endpoint through :data:`bot.commands.endpoints.ENDPOINTS`.
"""

from __future__ import annotations

import asyncio

from bot import messages
from bot.commands import registry
from bot.commands.endpoints import (
    ENDPOINTS,
    NO_PARTS,
    Outcome,
    Parts,
    StoredImage,
    StoredParts,
    load_request,
)
from bot.errors import InvalidImage, NotFound
from bot.ideogram.client import IdeogramClient, References
from bot.image_store import ImageStore
from bot.images import (
    InputImage,
    extension_for,
    image_size,
    prepare_input_image_async,
    sniff_content_type,
)
from bot.layers import describe_block, layers_svg, load_blocks
from bot.types import Attachment, Caption, JobResult, ResultImage
from storage import Database, JobRecord
from storage import jobs as jobs_repo


def result_filename(job_id: str, index: int, content_type: str | None) -> str:
    """The file name a result image is posted under: ``ideogram_<job>_<n>.<ext>`` (n 1-based)."""
    return f"ideogram_{job_id}_{index + 1}.{extension_for(content_type)}"


class JobFiles:
    """Reads a job's stored images and builds its result.

    Args:
        db: the database.
        store: the image store the runner wrote to.
    """

    def __init__(self, db: Database, store: ImageStore) -> None:
        self.db = db
        self.store = store

    async def stored_input(self, job: JobRecord) -> InputImage | None:
        """The job's input image as it was sent, or ``None`` when it has none."""
        if not job.input_sha256:
            return None
        # Stored inputs were prepared before they were stored: read the header, not the pixels.
        data = await self.store.get(job.input_sha256)
        content_type = job.input_content_type or sniff_content_type(data) or "image/png"
        width, height = await asyncio.to_thread(image_size, data)
        extension = extension_for(content_type)
        return InputImage(data, f"input-{job.id}.{extension}", content_type, width, height)

    async def stored_parts(self, parts: StoredParts) -> Parts:
        """A job's extra image parts (edit's further images, a mask, references) as sent."""
        if parts.empty:
            return NO_PARTS

        async def one(image: StoredImage) -> InputImage:
            data = await self.store.get(image.sha256)
            width, height = await asyncio.to_thread(image_size, data)
            return InputImage(data, image.filename, image.content_type, width, height)

        async def many(images: tuple[StoredImage, ...]) -> tuple[InputImage, ...]:
            return tuple([await one(image) for image in images])

        return Parts(
            images=await many(parts.images),
            mask=await one(parts.mask) if parts.mask else None,
            references=References(
                style=await many(parts.style_reference_images),
                character=await many(parts.character_reference_images),
                character_mask=await many(parts.character_reference_images_mask),
            ),
        )

    async def stored_result(self, job: JobRecord, index: int) -> tuple[InputImage, str]:
        """Result image ``index`` (0-based) of ``job`` as an input image, and its SHA-256.

        Raises:
            NotFound: no such image, or it was withheld.
        """
        images = await jobs_repo.get_images(self.db, job.id)
        match = [img.sha256 for img in images if img.idx == index and img.sha256]
        if not match or match[0] is None:
            raise NotFound(messages.JOB_NO_IMAGE.format(job_id=job.id, index=index + 1))
        sha = match[0]
        data = await self.store.get(sha)
        image = await prepare_input_image_async(data, f"{job.id}-{index + 1}")
        return image, sha

    async def result_of(self, job: JobRecord) -> JobResult:
        """The postable result of ``job`` in whatever state it is (buttons once succeeded)."""
        rows = await jobs_repo.get_images(self.db, job.id)
        images: list[ResultImage] = []
        for row in rows:
            data = await self.store.get(row.sha256) if row.sha256 else None
            images.append(
                ResultImage(
                    index=row.idx,
                    data=data,
                    content_type=row.content_type,
                    filename=result_filename(job.id, row.idx, row.content_type),
                    width=row.width or 0,
                    height=row.height or 0,
                    seed=row.seed,
                )
            )
        stored = load_request(job.request)
        fields = stored.request
        seeds = list(dict.fromkeys(str(r.seed) for r in rows if r.seed is not None))
        # Only endpoints that take magic_prompt echo a prompt worth showing.
        magic = (
            next((r.prompt for r in rows if r.prompt), None)
            if ENDPOINTS[stored.endpoint].echoes_prompt
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
            speed=_text(getattr(fields, "rendering_speed", None)),
            style=_text(
                getattr(fields, "style_type", None) or getattr(fields, "style_preset", None)
            ),
            aspect_ratio=_text(
                getattr(fields, "aspect_ratio", None) or getattr(fields, "resolution", None)
            ),
            job_id=job.id,
            note=note,
        )
        error = job.error
        endpoint = ENDPOINTS[stored.endpoint]
        if job.status == "succeeded" and not endpoint.makes_images and not job.descriptions:
            error = messages.NOTHING_DESCRIBED
        if job.status == "cancelled" and not error:
            error = messages.CANCELLED_BY_OWNER
        rule = registry.COMMANDS[job.command].buttons
        ready = [i.index for i in images if not i.withheld]
        descriptions = tuple(job.descriptions)
        attachments: tuple[Attachment, ...] = ()
        if endpoint.text_layers:
            descriptions, attachments = _text_layers(job.id, images, job.descriptions)
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
            descriptions=descriptions,
            rows=rule(job.id, ready, len(job.descriptions))
            if rule is not None and job.status == "succeeded"
            else (),
            error=error,
            attachments=attachments,
        )


def layers_filename(job_id: str) -> str:
    """The file name of a /layerize result's SVG: ``layers_<job>.svg``."""
    return f"layers_{job_id}.svg"


def _text_layers(
    job_id: str, images: list[ResultImage], stored: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[Attachment, ...]]:
    """A layerize result's text blocks in words, and its SVG (base image + one ``<text>`` per
    block) when the base image is there."""
    blocks = load_blocks(stored)
    words = tuple(describe_block(b) for b in blocks) or (messages.NO_TEXT_FOUND,)
    base = images[0] if images else None
    if base is None or base.data is None:
        return words, ()
    svg = layers_svg(base.data, base.content_type or "image/png", base.width, base.height, blocks)
    return words, (Attachment(layers_filename(job_id), svg, "image/svg+xml"),)


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


class Executor:
    """Runs a stored job against the API: the runner's executor.

    Args:
        client: the Ideogram client (real API or offline engine).
        files: where the job's input image is read from.
    """

    def __init__(self, client: IdeogramClient, files: JobFiles) -> None:
        self.client = client
        self.files = files

    async def __call__(self, job: JobRecord) -> Outcome:
        """Call the job's endpoint with its stored request and input image.

        Raises:
            InvalidImage: the endpoint needs an input image and the job has none.
            IdeogramError: the API call failed (see :mod:`bot.errors`).
        """
        stored = load_request(job.request)
        endpoint = ENDPOINTS[stored.endpoint]
        image = await self.files.stored_input(job)
        if endpoint.needs_image and image is None:
            raise InvalidImage(messages.NEEDS_IMAGE.format(command=job.command))
        if stored.parts.empty:
            return await endpoint.call(self.client, stored.request, image)
        parts = await self.files.stored_parts(stored.parts)
        return await endpoint.call(self.client, stored.request, image, parts)
