"""Every command of the bot, defined once: the command table.

One :class:`CommandSpec` per slash command holds what the user sees (name, summary, usage,
example), what it takes (image, prompt, inline flags), and what it does: a job command names the
builder of its request (:mod:`bot.requests`, whose typed request names the endpoint in
:data:`bot.commands.endpoints.ENDPOINTS`: model, client call, price, magic-prompt echo) and the
buttons of its results (:mod:`bot.buttons`); a text command names its handler
(:mod:`bot.info`). The engine, the runner, pricing and every adapter read this table — their
slash commands, modals and help come from it, so wording and accepted flags are the same on every
platform. ``docs/architecture.md`` ("Adding a command") lists what a new command touches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot import buttons, info, requests
from bot.buttons import ButtonRule
from bot.commands.endpoints import JobRequest
from bot.commands.grammar import GenerationOptions
from bot.images import InputImage
from bot.server_settings import ServerSettings
from bot.types import Invocation, Reply

# Flags each generating command accepts inline (names without "--").
_REFERENCE_FLAGS = frozenset({"sref", "cref", "cref-mask", "v"})
_GENERATE_FLAGS = (
    frozenset(
        {"ar", "res", "no", "seed", "speed", "style", "preset", "magic", "n", "palette"}
        | {"transparent"}
    )
    | _REFERENCE_FLAGS
)
_REMIX_FLAGS = (
    frozenset(
        {"ar", "res", "no", "seed", "speed", "style", "preset", "magic", "n", "palette", "weight"}
    )
    | _REFERENCE_FLAGS
)
_REPLACE_BG_FLAGS = frozenset({"seed", "speed", "preset", "magic", "n", "palette"})
_REFRAME_FLAGS = frozenset({"res", "seed", "speed", "preset", "n", "palette"})
_UPSCALE_FLAGS = frozenset({"seed", "magic"})

#: Every platform an adapter serves.
ALL_PLATFORMS = frozenset({"discord", "slack", "console"})
#: Commands only the console offers for now (Discord and Slack get them next).
_CONSOLE_ONLY = frozenset({"console"})
_EDIT_FLAGS = frozenset({"ar", "res", "seed", "magic", "n"})
_INPAINT_FLAGS = frozenset({"seed", "speed", "style", "preset", "magic", "n", "palette"})
_LAYERIZE_FLAGS = frozenset({"seed"})

Builder = Callable[[str, GenerationOptions, ServerSettings, InputImage | None], JobRequest]
"""``build(prompt, options, server, image) -> request``; raises ``InvalidInput`` on options the
endpoint cannot take."""
Handler = Callable[["info.InfoContext", Invocation, ServerSettings], Awaitable[Reply]]
"""``await handle(ctx, invocation, server) -> reply`` for text commands."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command.

    Attributes:
        name: the slash command name without ``/`` (``replace-bg``).
        summary: one line for menus (Discord ≤ 100 chars).
        usage: the text form with placeholders.
        example: one example line.
        images: ``(least, most)`` input images it takes; ``(0, 0)`` for none, ``(1, 1)``
            for one (``/remix``), ``(1, 10)`` for ``/edit``.
        mask: its second image is a mask (``/inpaint``: black marks what to redraw), sent as
            the ``mask`` part rather than as a further image.
        prompt: ``"required"``, ``"optional"`` or ``"none"``.
        flags: inline flags accepted (names without ``--``); empty for text commands.
        build: job commands: builds the typed request; ``None`` for text commands.
        buttons: job commands: the buttons under a successful result.
        handle: text commands: the handler; ``None`` for job commands.
        any_channel: answers even where ``allowed_channels`` does not allow the bot.
        platforms: the platforms that offer it; elsewhere it reads as an unknown command.
    """

    name: str
    summary: str
    usage: str
    example: str
    images: tuple[int, int] = (0, 0)
    prompt: Literal["required", "optional", "none"] = "none"
    flags: frozenset[str] = frozenset()
    build: Builder | None = None
    buttons: ButtonRule | None = None
    handle: Handler | None = None
    any_channel: bool = False
    platforms: frozenset[str] = ALL_PLATFORMS
    mask: bool = False

    @property
    def takes_image(self) -> bool:
        """True when it takes input images (the adapters ask for files)."""
        return self.images[1] > 0

    @property
    def calls_api(self) -> bool:
        """True for job commands (they run against the Ideogram API)."""
        return self.build is not None


COMMANDS: dict[str, CommandSpec] = {
    c.name: c
    for c in (
        CommandSpec(
            "imagine",
            "Create images from a text prompt.",
            "/imagine prompt [flags]",
            "/imagine a lighthouse at dusk, oil painting --ar 16:9 --n 4",
            prompt="required",
            flags=_GENERATE_FLAGS,
            build=requests.build_imagine,
            buttons=buttons.generation_buttons,
        ),
        CommandSpec(
            "remix",
            "Make new images from an image and a prompt.",
            "/remix image prompt [flags]",
            "/remix photo.jpg make it a watercolor --weight 30",
            images=(1, 1),
            prompt="required",
            flags=_REMIX_FLAGS,
            build=requests.build_remix,
            buttons=buttons.generation_buttons,
        ),
        CommandSpec(
            "describe",
            "Get prompts that describe an image.",
            "/describe image",
            "/describe photo.jpg",
            images=(1, 1),
            build=requests.build_describe,
            buttons=buttons.describe_buttons,
        ),
        CommandSpec(
            "upscale",
            "Upscale an image, optionally guided by a prompt.",
            "/upscale image [prompt]",
            "/upscale photo.jpg crisp details",
            images=(1, 1),
            prompt="optional",
            flags=_UPSCALE_FLAGS,
            build=requests.build_upscale,
            buttons=buttons.upscale_buttons,
        ),
        CommandSpec(
            "reframe",
            "Extend an image to a new resolution (zoom out, change shape).",
            "/reframe image resolution",
            "/reframe photo.jpg 1344x768",
            images=(1, 1),
            flags=_REFRAME_FLAGS,
            build=requests.build_reframe,
            buttons=buttons.generation_buttons,
        ),
        CommandSpec(
            "replace-bg",
            "Keep the subject and paint a new background.",
            "/replace-bg image prompt",
            "/replace-bg photo.jpg a sunny beach",
            images=(1, 1),
            prompt="required",
            flags=_REPLACE_BG_FLAGS,
            build=requests.build_replace_bg,
            buttons=buttons.generation_buttons,
        ),
        CommandSpec(
            "remove-bg",
            "Put the subject on a transparent background.",
            "/remove-bg image",
            "/remove-bg photo.jpg",
            images=(1, 1),
            build=requests.build_remove_bg,
            buttons=buttons.upscale_only_buttons,
        ),
        CommandSpec(
            "edit",
            "Change images with words (1 to 10 images).",
            "/edit image [image2 …] prompt [flags]",
            "/edit mug.png logo.png put the logo on the mug",
            images=(1, 10),
            prompt="required",
            flags=_EDIT_FLAGS,
            build=requests.build_edit,
            buttons=buttons.generation_buttons,
            platforms=_CONSOLE_ONLY,
        ),
        CommandSpec(
            "blend",
            "Blend 2 to 5 images into one picture.",
            "/blend image image2 [… image5] [prompt] [flags]",
            "/blend cat.png tiger.png",
            images=(2, 5),
            prompt="optional",
            flags=_EDIT_FLAGS,
            build=requests.build_blend,
            buttons=buttons.generation_buttons,
            platforms=_CONSOLE_ONLY,
        ),
        CommandSpec(
            "inpaint",
            "Redraw the black part of a mask over an image.",
            "/inpaint image mask prompt [flags]",
            "/inpaint photo.png mask.png a red door",
            images=(2, 2),
            mask=True,
            prompt="required",
            flags=_INPAINT_FLAGS,
            build=requests.build_inpaint,
            buttons=buttons.generation_buttons,
            platforms=_CONSOLE_ONLY,
        ),
        CommandSpec(
            "layerize",
            "Split an image into a text-free base and its text blocks (SVG).",
            "/layerize image [prompt]",
            "/layerize poster.png",
            images=(1, 1),
            prompt="optional",
            flags=_LAYERIZE_FLAGS,
            build=requests.build_layerize,
            platforms=_CONSOLE_ONLY,
        ),
        CommandSpec(
            "usage",
            "Your usage, cost and quota left.",
            "/usage",
            "/usage",
            handle=info.usage,
        ),
        CommandSpec(
            "history",
            "Your latest jobs.",
            "/history [count]",
            "/history 5",
            handle=info.history,
        ),
        CommandSpec(
            "show",
            "Post a past job again, with working buttons.",
            "/show job_id",
            "/show 3kq9x2m4p7ab",
            handle=info.show,
        ),
        CommandSpec(
            "settings",
            "Show or change this server's settings (admins change).",
            "/settings show | set key value | reset key",
            "/settings set daily_quota 20",
            handle=info.settings_command,
            any_channel=True,
        ),
        CommandSpec(
            "help",
            "Commands, flags and examples.",
            "/help",
            "/help",
            handle=info.help_command,
            any_channel=True,
        ),
    )
}


def get(name: str, platform: str | None = None) -> CommandSpec | None:
    """Return the command named ``name`` (with or without ``/``), or ``None``; with
    ``platform``, ``None`` also when that platform does not offer it."""
    spec = COMMANDS.get(name.strip().lstrip("/").lower())
    if spec is None or (platform is not None and platform not in spec.platforms):
        return None
    return spec


def for_platform(platform: str) -> dict[str, CommandSpec]:
    """The commands ``platform`` offers, in table order."""
    return {name: spec for name, spec in COMMANDS.items() if platform in spec.platforms}
