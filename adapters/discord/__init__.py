"""The Discord adapter (discord.py 2.7): translate interactions, reactions and results between
Discord and the platform-neutral core.

Modules: :mod:`.client` (the client, tree, sync), :mod:`.commands` (slash commands, context
menus, modal), :mod:`.flow` (defer → core → progress → result, the one error handler),
:mod:`.progress` (the progress message), :mod:`.views` (restart-safe buttons), :mod:`.render`
(messages and files), :mod:`.inputs` (attachments), :mod:`.reactions` (✉️ and ❌), :mod:`.cli`
(``ideogram-bot discord``).
"""

import warnings

with warnings.catch_warnings():
    # discord.py's voice player imports the stdlib ``audioop`` (deprecated since 3.11, removed
    # in 3.13 where discord.py uses ``audioop-lts``); the bot never plays audio.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from adapters.discord.client import IdeogramBot

__all__ = ["IdeogramBot"]
