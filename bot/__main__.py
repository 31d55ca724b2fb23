"""``python -m bot``: the same command line as ``ideogram-bot``."""

from bot.cli import main

raise SystemExit(main())
