"""Follow-up jobs: what each result button starts (see ``docs/commands.md``, "Buttons").

A press on ``U1…``, ``V1…``, ``🔄``, ``Vary (Subtle|Strong)``, ``Zoom Out``, ``Remove BG`` or
``Imagine n`` becomes a new job whose parent is the job that carried the button. It is owned by,
and charged to, whoever pressed, and built from the parent's stored request and images. The rows
of buttons each command offers are in :mod:`bot.buttons`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot import messages
from bot.commands import registry
from bot.commands.endpoints import (
    JobRequest,
    ReframeJob,
    RemoveBackgroundJob,
    UpscaleJob,
    load_request,
)
from bot.commands.grammar import GenerationOptions
from bot.config import PriceTable
from bot.errors import InvalidInput, NotFound
from bot.ideogram.models import ReframeRequestV3, UpscaleInitialImageRequest
from bot.image_store import ImageStore
from bot.images import InputImage
from bot.requests import new_job, vary_request, zoom_out_input
from bot.results import JobFiles
from bot.server_settings import ServerSettings
from bot.types import ActionKind, Caller
from storage import JobRecord, NewJob

WordCheck = Callable[[ServerSettings, str, str | None], None]

_VARY = {ActionKind.VARY, ActionKind.VARY_SUBTLE, ActionKind.VARY_STRONG}


class FollowUps:
    """Builds the job behind a button press.

    Args:
        files: reads the parent's stored input and result images.
        store: where a derived input (the zoom-out canvas) is stored.
        prices: the price table, for the new job's estimate.
        clock: Unix seconds.
        check_words: refuses blocked words in a prompt a follow-up sends.
    """

    def __init__(
        self,
        *,
        files: JobFiles,
        store: ImageStore,
        prices: PriceTable,
        clock: Callable[[], float],
        check_words: WordCheck,
    ) -> None:
        self.files = files
        self.store = store
        self.prices = prices
        self.clock = clock
        self.check_words = check_words

    async def build(
        self,
        kind: ActionKind,
        index: int,
        parent: JobRecord,
        caller: Caller,
        server: ServerSettings,
        *,
        request_key: str | None,
    ) -> NewJob:
        """The new job for ``kind`` pressed on image/description ``index`` (1-based; 0 for the
        whole job) of ``parent``.

        The new job obeys the server's settings as they are now, not as they were when the
        parent ran: blocked words are checked on the prompt it would send, and its image count
        is cut to today's ``max_num_images`` (a button keeps working rather than failing).

        Raises:
            NotFound: no such image or description (withheld, out of range).
            NotAllowed: a blocked word in the prompt it would send.
            InvalidInput: an action this result does not offer.
        """

        def make(
            request: JobRequest,
            command: str,
            prompt: str,
            image: InputImage | None,
            sha: str | None,
            parent_index: int | None,
        ) -> NewJob:
            return new_job(
                self._under_current_rules(request, server),
                command=command,
                caller=caller,
                prompt=prompt,
                input_image=image,
                input_sha=sha,
                request_key=request_key,
                prices=self.prices,
                now=self.clock(),
                parent=parent,
                parent_index=parent_index,
                action=f"{kind.value}:{index}",
            )

        if kind is ActionKind.REROLL:
            stored = load_request(parent.request)
            fields = stored.request
            if "seed" in type(fields).model_fields:
                fields = fields.model_copy(update={"seed": None})
            return make(
                stored.model_copy(update={"request": fields}),
                parent.command,
                parent.prompt,
                await self.files.stored_input(parent),
                parent.input_sha256,
                None,
            )
        if kind is ActionKind.IMAGINE:
            if not 1 <= index <= len(parent.descriptions):
                raise NotFound(messages.JOB_NO_IMAGE.format(job_id=parent.id, index=index))
            prompt = parent.descriptions[index - 1]
            self.check_words(server, prompt, None)
            imagine = registry.COMMANDS["imagine"]
            assert imagine.build is not None
            request = imagine.build(prompt, GenerationOptions(), server, None)
            return make(request, "imagine", prompt, None, None, index - 1)

        # Every other action works on one stored result image.
        image_index = index - 1 if kind in (ActionKind.UPSCALE, ActionKind.VARY) else 0
        image, sha = await self.files.stored_result(parent, image_index)
        if kind is ActionKind.UPSCALE:
            command, request = "upscale", UpscaleJob(request=UpscaleInitialImageRequest())
        elif kind in _VARY:
            weight = (
                server.vary_strong_weight
                if kind is ActionKind.VARY_STRONG
                else server.vary_subtle_weight
            )
            command = "remix"
            parent_request = load_request(parent.request)
            request = vary_request(parent_request, parent.prompt, weight, server, image)
        elif kind is ActionKind.ZOOM_OUT:
            command = "reframe"
            image, resolution = await asyncio.to_thread(zoom_out_input, image)
            request = ReframeJob(
                request=ReframeRequestV3(
                    resolution=resolution, rendering_speed=server.default_speed, num_images=1
                )
            )
            sha = await self.store.put(image.data)
        elif kind is ActionKind.REMOVE_BG:
            command, request = "remove-bg", RemoveBackgroundJob()
        else:
            raise InvalidInput(messages.ACTION_UNKNOWN)
        return make(request, command, parent.prompt, image, sha, image_index)

    def _under_current_rules(self, request: JobRequest, server: ServerSettings) -> JobRequest:
        fields = request.request
        prompt = getattr(fields, "prompt", None) or ""
        self.check_words(server, prompt, getattr(fields, "negative_prompt", None))
        count = getattr(fields, "num_images", None)
        if count is not None and count > server.max_num_images:
            fields = fields.model_copy(update={"num_images": server.max_num_images})
            request = request.model_copy(update={"request": fields})
        return request
