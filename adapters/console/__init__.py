"""The console adapter (``ideogram-bot console``): the bot's commands in a terminal."""

from adapters.console.adapter import ConsoleAdapter

__all__ = ["ConsoleAdapter"]
