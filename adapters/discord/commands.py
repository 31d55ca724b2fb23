"""Slash commands, message context menus and the remix modal.

Every command of ``docs/commands.md`` is a slash command; its typed options are named as in
:data:`bot.commands.grammar.TYPED_OPTION_FLAGS`, and descriptions come from the core's
:data:`bot.commands.registry.COMMANDS` and :func:`bot.commands.grammar.typed_option_help`, so
the wording matches ``/help`` on every platform.
Small enums (speed, style, magic prompt, settings keys) are choices; style presets, aspect
ratios, palettes and resolutions are autocompleted from the core's lists (Discord allows 25
choices). Input images are ``discord.Attachment`` options (type 11, resolved from
``data.resolved.attachments``). Inline flags at the end of a prompt are accepted too — the core
parses them; typed options win over flags.

``/settings`` is an admin group: default member permission Manage Server (a hint guild admins
can change, so the core checks ``is_admin`` on every change as well) and guild only.

The callbacks only translate; :class:`adapters.discord.flow.InteractionFlow` runs them. Platform
doc followed: discord-api-docs "Interactions › Application commands" (option types, choices,
autocomplete, ``default_member_permissions``, contexts) and "Components › Modal".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from adapters.discord.inputs import first_image
from bot import server_settings
from bot.commands.grammar import (
    ASPECT_RATIO_CHOICES,
    MAX_SEED,
    PALETTE_PRESET_CHOICES,
    RESOLUTION_CHOICES,
    STYLE_PRESET_CHOICES,
    TYPED_OPTION_FLAGS,
    typed_option_help,
)
from bot.commands.registry import COMMANDS
from bot.errors import InvalidImage

if TYPE_CHECKING:
    from adapters.discord.client import IdeogramBot
    from adapters.discord.flow import InteractionFlow

Interaction = discord.Interaction[Any]
F = TypeVar("F", bound=Callable[..., Any])

#: Discord's limits: description ≤ 100 characters, ≤ 25 choices.
_MAX_DESCRIPTION = 100
_MAX_CHOICES = 25
#: Upper bound of ``num_images`` Discord lets users type; the server's own
#: ``max_num_images`` (≤ 8) is enforced by the core with a clear message.
_MAX_NUM_IMAGES = 8

#: Context menu names, ≤ 32 characters each.
REMIX_MENU = "Remix this image"
DESCRIBE_MENU = "Describe this image"
UPSCALE_MENU = "Upscale this image"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"


def _summary(command: str) -> str:
    return _short(COMMANDS[command].summary)


def _option_help(option: str) -> str:
    """A typed option's description: the core's help of the flag it stands for."""
    return _short(typed_option_help(option))


def _typed_options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The typed options among a command callback's arguments (the names the core knows)."""
    return {name: value for name, value in arguments.items() if name in TYPED_OPTION_FLAGS}


def _choices(values: list[str]) -> list[Choice[str]]:
    return [Choice(name=v, value=v) for v in values]


# Choices of the small enums, as the core spells them (case-insensitive on its side).
SPEED_CHOICES = _choices(["flash", "turbo", "default", "quality"])
STYLE_CHOICES = _choices(["auto", "general", "realistic", "design", "fiction"])
MAGIC_CHOICES = _choices(["auto", "on", "off"])


def _flow(interaction: Interaction) -> InteractionFlow:
    client: IdeogramBot = interaction.client
    return client.flow


# -- autocomplete -----------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower().replace("x", ":") if ch.isalnum() or ch == ":")


def complete(values: list[str], current: str) -> list[Choice[str]]:
    """Up to 25 of ``values`` matching what the user typed: prefix matches first.

    Matching ignores case, spaces and punctuation, and treats ``x`` as ``:`` so ``16x9``
    finds ``16:9``.
    """
    typed = _normalise(current)
    if not typed:
        return _choices(values[:_MAX_CHOICES])
    prefix = [v for v in values if _normalise(v).startswith(typed)]
    inner = [v for v in values if typed in _normalise(v) and v not in prefix]
    return _choices((prefix + inner)[:_MAX_CHOICES])


async def aspect_ratio_autocomplete(_: Interaction, current: str) -> list[Choice[str]]:
    """Aspect ratios (``16:9`` …) matching the text typed so far."""
    return complete(ASPECT_RATIO_CHOICES, current)


async def preset_autocomplete(_: Interaction, current: str) -> list[Choice[str]]:
    """Style presets (``Watercolor`` …) matching the text typed so far."""
    return complete(STYLE_PRESET_CHOICES, current)


async def palette_autocomplete(_: Interaction, current: str) -> list[Choice[str]]:
    """Palette presets; a ``#RRGGBB`` list typed by the user is offered back as is."""
    if current.strip().startswith("#"):
        return [Choice(name=current.strip()[:100], value=current.strip()[:100])]
    return complete(PALETTE_PRESET_CHOICES, current)


async def resolution_autocomplete(_: Interaction, current: str) -> list[Choice[str]]:
    """Reframe resolutions (``1344x768`` …) matching the text typed so far."""
    typed = current.lower().replace(" ", "").replace(":", "x")
    matches = [r for r in RESOLUTION_CHOICES if r.startswith(typed)] or [
        r for r in RESOLUTION_CHOICES if typed in r
    ]
    return _choices(matches[:_MAX_CHOICES])


# -- slash commands ---------------------------------------------------------------------------

#: Typed options only some commands have; every other one is shared by /imagine and /remix.
_NOT_SHARED = frozenset({"resolution", "image_weight", "transparent"})


def _generation_options(**help_: str) -> Callable[[F], F]:
    """Describe, constrain and autocomplete the options /imagine and /remix share, plus the
    descriptions in ``help_`` (applied to the callback, under ``app_commands.command``)."""
    shared_help = {
        name: _option_help(name) for name in TYPED_OPTION_FLAGS if name not in _NOT_SHARED
    }

    def apply(callback: F) -> F:
        callback = app_commands.describe(**help_, **shared_help)(callback)
        callback = app_commands.choices(
            speed=SPEED_CHOICES, style=STYLE_CHOICES, magic_prompt=MAGIC_CHOICES
        )(callback)
        return app_commands.autocomplete(
            aspect_ratio=aspect_ratio_autocomplete,
            preset=preset_autocomplete,
            palette=palette_autocomplete,
        )(callback)

    return apply


def build_commands() -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """Build the slash commands of ``docs/commands.md`` (called in ``setup_hook``, not at
    import). /imagine and /remix list their options as parameters because discord.py reads
    the options from the callback's signature; the values go to the core by name."""

    @app_commands.command(name="imagine", description=_summary("imagine"))
    @_generation_options(
        prompt="What to draw; inline flags like --ar 16:9 --n 4 also work",
        transparent=_option_help("transparent"),
    )
    async def imagine(
        interaction: Interaction,
        prompt: Range[str, 1, 2000],
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        seed: Range[int, 0, MAX_SEED] | None = None,
        speed: str | None = None,
        style: str | None = None,
        preset: str | None = None,
        magic_prompt: str | None = None,
        num_images: Range[int, 1, _MAX_NUM_IMAGES] | None = None,
        palette: str | None = None,
        transparent: bool | None = None,
    ) -> None:
        options = _typed_options(locals())
        await _flow(interaction).command(interaction, "imagine", text=prompt, options=options)

    @app_commands.command(name="remix", description=_summary("remix"))
    @_generation_options(
        image="The image to start from (PNG, JPEG or WebP)",
        prompt="What to make of it; inline flags like --weight 40 also work",
        image_weight=_option_help("image_weight"),
    )
    async def remix(
        interaction: Interaction,
        image: discord.Attachment,
        prompt: Range[str, 1, 2000],
        image_weight: Range[int, 1, 100] | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        seed: Range[int, 0, MAX_SEED] | None = None,
        speed: str | None = None,
        style: str | None = None,
        preset: str | None = None,
        magic_prompt: str | None = None,
        num_images: Range[int, 1, _MAX_NUM_IMAGES] | None = None,
        palette: str | None = None,
    ) -> None:
        options = _typed_options(locals())
        await _flow(interaction).command(
            interaction, "remix", text=prompt, options=options, attachments=[image]
        )

    @app_commands.command(name="describe", description=_summary("describe"))
    @app_commands.describe(image="The image to describe (PNG, JPEG or WebP)")
    async def describe(interaction: Interaction, image: discord.Attachment) -> None:
        await _flow(interaction).command(interaction, "describe", attachments=[image])

    @app_commands.command(name="upscale", description=_summary("upscale"))
    @app_commands.describe(
        image="The image to upscale (PNG, JPEG or WebP)",
        prompt="Optional guidance for the details",
    )
    async def upscale(
        interaction: Interaction, image: discord.Attachment, prompt: str | None = None
    ) -> None:
        await _flow(interaction).command(
            interaction, "upscale", text=prompt or "", attachments=[image]
        )

    @app_commands.command(name="reframe", description=_summary("reframe"))
    @app_commands.describe(
        image="The image to extend (PNG, JPEG or WebP)",
        resolution="Target size in pixels, e.g. 1344x768",
    )
    @app_commands.autocomplete(resolution=resolution_autocomplete)
    async def reframe(interaction: Interaction, image: discord.Attachment, resolution: str) -> None:
        await _flow(interaction).command(
            interaction, "reframe", options={"resolution": resolution}, attachments=[image]
        )

    @app_commands.command(name="replace-bg", description=_summary("replace-bg"))
    @app_commands.describe(
        image="The image whose subject to keep (PNG, JPEG or WebP)",
        prompt="The new background",
    )
    async def replace_bg(
        interaction: Interaction, image: discord.Attachment, prompt: Range[str, 1, 2000]
    ) -> None:
        await _flow(interaction).command(
            interaction, "replace-bg", text=prompt, attachments=[image]
        )

    @app_commands.command(name="remove-bg", description=_summary("remove-bg"))
    @app_commands.describe(image="The image to cut out (PNG, JPEG or WebP)")
    async def remove_bg(interaction: Interaction, image: discord.Attachment) -> None:
        await _flow(interaction).command(interaction, "remove-bg", attachments=[image])

    @app_commands.command(name="usage", description=_summary("usage"))
    async def usage(interaction: Interaction) -> None:
        await _flow(interaction).command(interaction, "usage")

    @app_commands.command(name="history", description=_summary("history"))
    @app_commands.describe(count="How many jobs to list (1-25, default 10)")
    async def history(interaction: Interaction, count: Range[int, 1, 25] | None = None) -> None:
        await _flow(interaction).command(interaction, "history", options={"count": count})

    @app_commands.command(name="show", description=_summary("show"))
    @app_commands.describe(job_id="The job id, as /history lists it")
    async def show(interaction: Interaction, job_id: Range[str, 1, 40]) -> None:
        await _flow(interaction).command(interaction, "show", options={"job_id": job_id})

    @app_commands.command(name="help", description=_summary("help"))
    async def help_(interaction: Interaction) -> None:
        await _flow(interaction).command(interaction, "help")

    return [
        imagine,
        remix,
        describe,
        upscale,
        reframe,
        replace_bg,
        remove_bg,
        usage,
        history,
        show,
        build_settings_group(),
        help_,
    ]


def build_settings_group() -> app_commands.Group:
    """``/settings show|set|reset``: Manage Server by default, guild only."""
    group = app_commands.Group(
        name="settings",
        description=_summary("settings"),
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        # The tree allows DMs by default; settings belong to a guild, so say so explicitly
        # (the merged ``contexts`` array is what Discord honours, not ``dm_permission``).
        allowed_contexts=app_commands.AppCommandContext(
            guild=True, dm_channel=False, private_channel=False
        ),
    )
    key_choices = [
        Choice(name=_short(f"{name} — {spec.meaning}"), value=name)
        for name, spec in list(server_settings.KEYS.items())[:_MAX_CHOICES]
    ]

    @group.command(name="show", description="Show this server's settings")
    async def settings_show(interaction: Interaction) -> None:
        await _flow(interaction).command(interaction, "settings", options={"action": "show"})

    @group.command(name="set", description="Change a setting (Manage Server)")
    @app_commands.describe(key="The setting to change", value="Its new value")
    @app_commands.choices(key=key_choices)
    async def settings_set(interaction: Interaction, key: str, value: str) -> None:
        await _flow(interaction).command(
            interaction, "settings", options={"action": "set", "key": key, "value": value}
        )

    @group.command(name="reset", description="Put a setting back to its default (Manage Server)")
    @app_commands.describe(key="The setting to reset")
    @app_commands.choices(key=key_choices)
    async def settings_reset(interaction: Interaction, key: str) -> None:
        await _flow(interaction).command(
            interaction, "settings", options={"action": "reset", "key": key}
        )

    return group


# -- message context menus --------------------------------------------------------------------


def _image_of(message: discord.Message) -> discord.Attachment:
    """The first image attachment of a message.

    Raises:
        InvalidImage: the message has no image attachment.
    """
    attachment = first_image(message.attachments)
    if attachment is None:
        raise InvalidImage("That message has no image attached; pick a message with an image.")
    return attachment


class RemixModal(discord.ui.Modal, title=REMIX_MENU):
    """Asks for the remix prompt of "Remix this image" (flags allowed, e.g. ``--weight 40``)."""

    def __init__(self, attachment: discord.Attachment) -> None:
        # 15 minutes, like the interaction token that opened it.
        super().__init__(timeout=15 * 60)
        self.attachment = attachment
        self.prompt_input: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph,
            placeholder="the same scene as a watercolor --weight 40",
            min_length=1,
            max_length=2000,
        )
        self.add_item(
            discord.ui.Label(
                text="Prompt",
                description="What to make of the image; inline flags work",
                component=self.prompt_input,
            )
        )

    async def on_submit(self, interaction: Interaction) -> None:
        """Run ``/remix`` with the message's image and the typed prompt."""
        await _flow(interaction).command(
            interaction, "remix", text=self.prompt_input.value, attachments=[self.attachment]
        )

    async def on_error(  # type: ignore[override]  # Modal's own signature (no item)
        self, interaction: Interaction, error: Exception, /
    ) -> None:
        """Route errors to the tree's one handler."""
        await _flow(interaction).report_error(interaction, error)


async def remix_menu(interaction: Interaction, message: discord.Message) -> None:
    """ "Remix this image": a modal asks for the prompt (it must be the first response)."""
    await interaction.response.send_modal(RemixModal(_image_of(message)))


async def describe_menu(interaction: Interaction, message: discord.Message) -> None:
    """ "Describe this image": ``/describe`` on the message's image."""
    await _flow(interaction).command(interaction, "describe", attachments=[_image_of(message)])


async def upscale_menu(interaction: Interaction, message: discord.Message) -> None:
    """ "Upscale this image": ``/upscale`` on the message's image."""
    await _flow(interaction).command(interaction, "upscale", attachments=[_image_of(message)])


def build_context_menus() -> list[app_commands.ContextMenu]:
    """The three message context menus ("Remix / Describe / Upscale this image")."""
    return [
        app_commands.ContextMenu(name=REMIX_MENU, callback=remix_menu),
        app_commands.ContextMenu(name=DESCRIBE_MENU, callback=describe_menu),
        app_commands.ContextMenu(name=UPSCALE_MENU, callback=upscale_menu),
    ]


class BotCommandTree(app_commands.CommandTree[Any]):
    """The command tree; its :meth:`on_error` is the bot's one error handler."""

    async def on_error(
        self, interaction: Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Answer a failed command (UserError in its own words, else a reference id)."""
        await _flow(interaction).report_error(interaction, error)
