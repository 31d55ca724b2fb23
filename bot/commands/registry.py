"""The commands of SPEC §2, defined once: names, help text, what each takes.

Adapters build their slash commands, modals and help from this table (STYLE.md, habit 6), so
the wording and the accepted flags are the same on every platform.
"""

from __future__ import annotations

from dataclasses import dataclass

# Flags (SPEC §2) each generating command accepts inline.
_GENERATE_FLAGS = frozenset(
    {"ar", "res", "no", "seed", "speed", "style", "preset", "magic", "n", "palette", "transparent"}
)
_REMIX_FLAGS = frozenset(
    {"ar", "res", "no", "seed", "speed", "style", "preset", "magic", "n", "palette", "weight"}
)
_REPLACE_BG_FLAGS = frozenset({"seed", "speed", "preset", "magic", "n", "palette"})
_REFRAME_FLAGS = frozenset({"res", "seed", "speed", "preset", "n", "palette"})
_UPSCALE_FLAGS = frozenset({"seed", "magic"})


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command.

    Attributes:
        name: the slash command name without ``/`` (``replace-bg``).
        summary: one line for menus (Discord ≤ 100 chars).
        usage: the text form with placeholders.
        example: one example line.
        takes_image: needs one input image.
        prompt: ``"required"``, ``"optional"`` or ``"none"``.
        flags: inline flags accepted (names without ``--``); empty for non-generating commands.
        calls_api: runs as a job against the Ideogram API.
    """

    name: str
    summary: str
    usage: str
    example: str
    takes_image: bool = False
    prompt: str = "none"
    flags: frozenset[str] = frozenset()
    calls_api: bool = False


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
            calls_api=True,
        ),
        CommandSpec(
            "remix",
            "Make new images from an image and a prompt.",
            "/remix image prompt [flags]",
            "/remix photo.jpg make it a watercolor --weight 30",
            takes_image=True,
            prompt="required",
            flags=_REMIX_FLAGS,
            calls_api=True,
        ),
        CommandSpec(
            "describe",
            "Get prompts that describe an image.",
            "/describe image",
            "/describe photo.jpg",
            takes_image=True,
            calls_api=True,
        ),
        CommandSpec(
            "upscale",
            "Upscale an image, optionally guided by a prompt.",
            "/upscale image [prompt]",
            "/upscale photo.jpg crisp details",
            takes_image=True,
            prompt="optional",
            flags=_UPSCALE_FLAGS,
            calls_api=True,
        ),
        CommandSpec(
            "reframe",
            "Extend an image to a new resolution (zoom out, change shape).",
            "/reframe image resolution",
            "/reframe photo.jpg 1344x768",
            takes_image=True,
            flags=_REFRAME_FLAGS,
            calls_api=True,
        ),
        CommandSpec(
            "replace-bg",
            "Keep the subject and paint a new background.",
            "/replace-bg image prompt",
            "/replace-bg photo.jpg a sunny beach",
            takes_image=True,
            prompt="required",
            flags=_REPLACE_BG_FLAGS,
            calls_api=True,
        ),
        CommandSpec(
            "remove-bg",
            "Put the subject on a transparent background.",
            "/remove-bg image",
            "/remove-bg photo.jpg",
            takes_image=True,
            calls_api=True,
        ),
        CommandSpec("usage", "Your usage, cost and quota left.", "/usage", "/usage"),
        CommandSpec("history", "Your latest jobs.", "/history [count]", "/history 5"),
        CommandSpec(
            "show",
            "Post a past job again, with working buttons.",
            "/show job_id",
            "/show 3kq9x2m4p7ab",
        ),
        CommandSpec(
            "settings",
            "Show or change this server's settings (admins change).",
            "/settings show | set key value | reset key",
            "/settings set daily_quota 20",
        ),
        CommandSpec("help", "Commands, flags and examples.", "/help", "/help"),
    )
}


def get(name: str) -> CommandSpec | None:
    """Return the command named ``name`` (with or without ``/``), or ``None``."""
    return COMMANDS.get(name.strip().lstrip("/").lower())
