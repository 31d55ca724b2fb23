"""The console adapter (SPEC §7): the bot's commands in a terminal."""

from adapters.console.adapter import ConsoleAdapter

__all__ = ["ConsoleAdapter"]
