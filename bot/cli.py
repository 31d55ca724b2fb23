"""The ``ideogram-bot`` command line (README, "Running it"); also ``python -m bot``.

The core's own subcommands are ``fake-ideogram`` and ``migrate``. Adapters add theirs
(``console``, ``demo``, ``discord``, ``slack``) through the ``ideogram_bot.adapters`` entry-point
group declared in ``pyproject.toml``: each entry is a ``register(subparsers)`` function that
adds a subparser whose ``run`` default is ``async def run(args, settings) -> int``. That keeps
the core free of adapter imports while one command line serves them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from importlib.metadata import entry_points
from typing import Any

from pydantic import SecretStr, ValidationError

from bot.config import Settings

log = logging.getLogger("bot")

Runner = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]

ENTRY_POINT_GROUP = "ideogram_bot.adapters"


class SecretRedactor(logging.Filter):
    """Replace secrets in every record with ``[redacted]`` (no secret appears in logs at any
    level): the configured tokens, keys and signing secrets, and the ``token`` fields of
    platform payloads that libraries print at DEBUG (Discord interaction tokens)."""

    _TOKEN_FIELD = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+(['"])""")
    # Interaction tokens ride in Discord URLs: /webhooks/{app}/{token}, /interactions/{id}/{token}.
    _TOKEN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        text = self._TOKEN_FIELD.sub(r"\1[redacted]\2", text)
        text = self._TOKEN_PATH.sub(r"\1[redacted]", text)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text, so the traceback is redacted once, here.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


def secret_values(settings: Settings) -> list[str]:
    """Every secret in ``settings`` (the ``SecretStr`` fields that are set), as plain text."""
    return [
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level`` (``LOG_LEVEL``) with timestamps and logger names, with
    ``secrets`` redacted from every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretRedactor(secrets))
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
    )
    # aiohttp's access log (Slack HTTP mode) repeats every request; keep it for DEBUG only.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def _run_fake_ideogram(args: argparse.Namespace, settings: Settings) -> int:
    from bot.offline.server import serve_forever

    await serve_forever(args.host, args.port)
    return 0


async def _run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate_path

    applied = await migrate_path(settings.database_path)
    if applied:
        print(f"Applied migrations {', '.join(map(str, applied))} to {settings.database_path}.")
    else:
        print(f"{settings.database_path} is up to date.")
    return 0


async def _run_settings(args: argparse.Namespace, settings: Settings) -> int:
    """The operator's view of any server's settings, DMs included (server ``dm``)."""
    from bot import server_settings as rules
    from bot.errors import UserError
    from bot.messages import table
    from storage import Database
    from storage import settings as settings_repo

    where = {"platform": args.platform, "server_id": "" if args.server == "dm" else args.server}
    async with await Database.open(settings.database_path) as db:
        try:
            if args.action == "set":
                if len(args.words) != 2:
                    raise UserError("Use: settings PLATFORM SERVER set KEY VALUE.")
                key = rules.check_key(args.words[0]).name
                value = rules.normalise_value(key, args.words[1])
                await settings_repo.set_setting(
                    db, key=key, value=value, updated_by="operator", now=time.time(), **where
                )
            elif args.action == "reset":
                if len(args.words) != 1:
                    raise UserError("Use: settings PLATFORM SERVER reset KEY.")
                key = rules.check_key(args.words[0]).name
                await settings_repo.reset_setting(db, key=key, **where)
        except UserError as exc:
            print(f"ideogram-bot settings: {exc.message}", file=sys.stderr)
            return 2
        current = rules.load(
            await settings_repo.get_settings(db, **where), settings.server_defaults
        )
    rows = [(key, value) for key, value, _ in rules.as_rows(current)]
    print(table([("key", "value"), *rows], fenced=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the core's and every installed adapter's subcommands."""
    parser = argparse.ArgumentParser(
        prog="ideogram-bot",
        description="Ideogram 3.0 image generation for Discord, Slack and the terminal.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fake = sub.add_parser("fake-ideogram", help="run the offline engine as an HTTP server")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8765)
    fake.set_defaults(run=_run_fake_ideogram)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(run=_run_migrate)

    operator = sub.add_parser(
        "settings",
        help="show or change a server's settings as the operator (server 'dm' = direct messages)",
    )
    operator.add_argument("platform", choices=["discord", "slack", "console"])
    operator.add_argument("server", help="guild id / team id, or 'dm' for direct messages")
    operator.add_argument("action", choices=["show", "set", "reset"])
    operator.add_argument("words", nargs="*", help="KEY [VALUE]")
    operator.set_defaults(run=_run_settings)

    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        register = entry.load()
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, build the settings once, run the subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # Name the variables, never echo their values (they may be secrets).
        names = ", ".join(str(err["loc"][0]).upper() for err in exc.errors() if err["loc"])
        print(f"ideogram-bot: invalid configuration in {names}; see .env.example.", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secret_values(settings))
    run: Runner = args.run
    try:
        return asyncio.run(_until_signalled(run(args, settings)))
    except KeyboardInterrupt:
        return 130


async def _until_signalled(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main``; SIGTERM (``docker stop``, systemd) cancels it as Ctrl-C does, so every
    ``async with`` unwinds: running jobs get ``SHUTDOWN_GRACE_S`` to finish, resources close.
    (An adapter may install its own handler for a gentler stop.)"""
    task = asyncio.ensure_future(main)
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        log.info("stopped by a signal")
        return 0
