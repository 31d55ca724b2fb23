"""The ``console`` and ``demo`` subcommands of ``ideogram-bot``, registered through the
``ideogram_bot.adapters`` entry point.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from adapters.console.adapter import ConsoleAdapter
from bot.app import BotApp
from bot.config import Settings

#: The demo's input photograph (CC0; see assets/README.md).
DEMO_PHOTO = Path(__file__).resolve().parent / "assets" / "coffee.jpg"


def demo_script(photo: Path) -> list[str]:
    """The scripted tour of the main job: imagine, U1, V1, re-roll, remix, describe, usage."""
    return [
        "/imagine a lighthouse on a rocky cliff at dusk, oil painting --ar 16:9 --n 4 --seed 1234",
        "U1",
        "V1",
        "🔄",
        f'/remix "{photo}" the same cup as a watercolor sketch --weight 40',
        f'/describe "{photo}"',
        "Imagine 1",
        "/usage",
        "/history 5",
    ]


def draw_demo_mask(path: Path) -> Path:
    """Write the demo's inpaint mask: white, with a black block (the part to redraw) in the
    middle. Any size works: the engine scales a mask to its image."""
    mask = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(mask).rectangle((140, 90, 260, 210), fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    mask.save(path, format="PNG")
    return path


def demo_edits(photo: Path, out_dir: Path, earlier: Path, style_job: str) -> list[str]:
    """The second part of the tour, on what the first part made: edit, blend with the
    earlier result file ``earlier``, inpaint with a drawn mask, an image in the style of job
    ``style_job`` (``--sref``), and a poster whose text layers follow."""
    mask = draw_demo_mask(out_dir / "demo_mask.png")
    return [
        f'/edit "{photo}" put a small paper boat in the cup --seed 7 --n 1',
        f'/blend "{photo}" "{earlier}" --seed 8 --n 1',
        f'/inpaint "{photo}" "{mask}" a steaming cup of cocoa --seed 9 --n 1',
        f"/imagine a quiet harbour at dawn --sref {style_job}:1 --seed 11 --n 1",
        "/imagine a poster that says GRAND OPENING this Saturday at noon --seed 10 --n 1",
    ]


def register(subparsers: Any) -> None:
    """Add ``console`` and ``demo`` to the ``ideogram-bot`` command line."""
    console = subparsers.add_parser("console", help="type the bot's commands in a terminal")
    console.add_argument("--script", type=Path, help="run commands from FILE, one a line")
    console.add_argument("--out", type=Path, default=Path("out"), help="where images are saved")
    console.set_defaults(run=run_console)

    demo = subparsers.add_parser("demo", help="a scripted tour on the offline engine")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="where images are saved")
    demo.set_defaults(run=run_demo)


def _quiet_logs() -> None:
    """In a terminal session the operator is the user: keep INFO lines out of the dialogue
    unless ``LOG_LEVEL`` asks for them."""
    if "LOG_LEVEL" not in os.environ:
        logging.getLogger().setLevel(logging.WARNING)


async def run_console(args: argparse.Namespace, settings: Settings) -> int:
    """Run the console adapter; with ``--script`` exit 1 if any line failed."""
    _quiet_logs()
    async with BotApp(settings, platforms=frozenset({"console"})) as app:
        adapter = ConsoleAdapter(app.engine, out_dir=args.out, echo=bool(args.script))
        await app.start()
        if args.script:
            failures = await adapter.run_script(args.script)
            return 1 if failures else 0
        await adapter.interactive()
        return 0


async def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the tour on the offline engine (whatever the API key) in ``data/demo``."""
    _quiet_logs()
    demo_settings = settings.model_copy(
        update={
            "ideogram_api_key": None,
            "data_dir": settings.data_dir / "demo",
            "database_path": settings.data_dir / "demo" / "bot.sqlite3",
            # The tour runs on the offline engine, which costs nothing: no operator limits.
            "default_daily_quota": 0,
            "default_monthly_budget_usd": 0.0,
        }
    )
    async with BotApp(demo_settings, platforms=frozenset({"console"})) as app:
        adapter = ConsoleAdapter(app.engine, out_dir=args.out)
        await app.start()
        for line in demo_script(DEMO_PHOTO):
            await adapter.run_line(line)
        first = next((p for p in adapter.saved if p.suffix == ".png"), None)
        if first is not None:
            style_job = adapter.results[0].job_id
            for line in demo_edits(DEMO_PHOTO, Path(args.out), first, style_job):
                await adapter.run_line(line)
            poster = adapter.saved[-1]
            await adapter.run_line(f'/layerize "{poster}" GRAND OPENING this Saturday at noon')
        adapter.say("")
        adapter.say(f"The demo saved {len(adapter.saved)} files:")
        for path in adapter.saved:
            adapter.say(f"  {path}")
        return 1 if adapter.failures or not adapter.saved else 0
