"""The console adapter: the bot's commands in a terminal (``ideogram-bot console``).

Lines are slash commands exactly as on the chat platforms; commands that take an image take a
file path as their first word (``/remix photo.jpg make it watercolor --weight 30``), and the
leading words that name existing files are further images (``/edit a.png b.png put the logo on
the mug``, ``/inpaint photo.png mask.png a red door``). Buttons of
results are pressed by typing their label (``U1``, ``V2``, ``🔄`` or ``reroll``,
``Imagine 1``, ``Vary (Strong)``), optionally followed by a job id; without one the newest
result that has that button is used. ``cancel JOB_ID`` cancels a queued job. Images are saved
to the output folder and their paths printed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot import messages
from bot.commands import registry
from bot.engine import Engine
from bot.errors import InvalidImage, UserError, new_reference_id
from bot.images import MAX_RAW_INPUT_BYTES, InputImage, prepare_input_image_async
from bot.types import Caller, Invocation, JobResult, Press, Progress, Reply, TextReply

log = logging.getLogger(__name__)

_FIRST_WORD = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|(\S+))\s*(.*)$""", re.DOTALL)
_REFERENCE_FLAGS = frozenset({"--sref", "--cref", "--cref-mask"})
_ALIASES = {"reroll": "🔄", "re-roll": "🔄", "🔄": "🔄"}


def _plain(text: str) -> str:
    """Markdown subset → terminal text."""
    return text.replace("**", "").replace("```\n", "").replace("\n```", "")


def _read_capped(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` + 1 bytes of ``path`` (enough for the image check to refuse
    a larger file without reading all of it)."""
    with path.open("rb") as file:
        return file.read(max_bytes + 1)


def _normal_label(label: str) -> str:
    label = label.strip()
    return _ALIASES.get(label.lower(), re.sub(r"[\s()]+", " ", label.lower()).strip())


class ConsoleAdapter:
    """Run console lines against the engine and print what a chat user would see.

    Args:
        engine: the started engine.
        out_dir: where result images are written (created on demand).
        stdout: where to print (default ``sys.stdout``).
        user_id: the console user's id; the console user is the local admin (may change settings).
        echo: print each line before its answer (scripts and the demo; a terminal already
            shows what was typed).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        out_dir: Path,
        stdout: TextIO | None = None,
        user_id: str = "console-user",
        echo: bool = True,
    ) -> None:
        self.engine = engine
        self.out_dir = Path(out_dir)
        self._out = stdout or sys.stdout
        self.caller = Caller(
            platform="console",
            user_id=user_id,
            server_id="console",
            channel_id="console",
            is_admin=True,
        )
        self.results: list[JobResult] = []
        self.saved: list[Path] = []
        self.failures = 0
        self.echo = echo

    def say(self, text: str) -> None:
        """Print one block of text."""
        print(_plain(text), file=self._out, flush=True)

    async def run_line(self, line: str) -> Reply | None:
        """Run one console line; returns the engine's reply (``None`` for blank/comment lines).

        User errors are printed, never raised; unexpected errors print a reference id and are
        logged in full.
        """
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        if self.echo:
            self.say(f"> {line}")
        try:
            reply = await self._dispatch(line)
        except UserError as exc:
            self.failures += 1
            self.say(f"✖ {exc.message}")
            return None
        except Exception:
            self.failures += 1
            reference = new_reference_id()
            log.exception("console line failed (reference %s): %r", reference, line[:200])
            self.say(f"✖ {messages.unexpected(reference)}")
            return None
        await self.render(reply)
        return reply

    async def run_script(self, path: Path) -> int:
        """Run every line of ``path``; returns the number of lines that failed."""
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        for line in text.splitlines():
            await self.run_line(line)
        return self.failures

    async def interactive(self, read: Callable[[str], str] = input) -> None:
        """Read lines from the terminal until EOF or ``quit``."""
        self.say("Type /help for commands, a button label (U1, V1, 🔄) to press it, quit to leave.")
        while True:
            try:
                line = await asyncio.to_thread(read, "ideogram> ")
            except EOFError:
                return
            if line.strip().lower() in {"quit", "exit"}:
                return
            await self.run_line(line)

    # -- translation -----------------------------------------------------------------------

    async def _dispatch(self, line: str) -> Reply:
        if line.startswith("/"):
            name, _, rest = line[1:].partition(" ")
            return await self._command(name, rest)
        words = line.split()
        if words[0].lower() == "cancel" and len(words) == 2:
            return await self.engine.cancel(words[1], self.caller)
        return await self._press(line)

    async def _command(self, name: str, rest: str) -> Reply:
        spec = registry.get(name, self.caller.platform)
        images: tuple[InputImage, ...] = ()
        if spec is not None and spec.takes_image:
            match = _FIRST_WORD.match(rest)
            if not match or not rest.strip():
                raise InvalidImage(messages.NEEDS_IMAGE.format(command=spec.name))
            paths = [Path(match.group(1) or match.group(2) or match.group(3))]
            rest = match.group(4)
            # Further leading words that name existing files are further images.
            while len(paths) < spec.images[1] and (match := _FIRST_WORD.match(rest)):
                word = Path(match.group(1) or match.group(2) or match.group(3))
                if not await asyncio.to_thread(word.is_file):
                    break
                paths.append(word)
                rest = match.group(4)
            await self.engine.admit(spec.name, self.caller)
            loaded = []
            for n, path in enumerate(paths):
                try:
                    data = await asyncio.to_thread(_read_capped, path, MAX_RAW_INPUT_BYTES)
                except OSError:
                    raise InvalidImage(f"I can't read the file `{path}`.") from None
                try:
                    loaded.append(await prepare_input_image_async(data, path.name))
                except InvalidImage:
                    if spec.mask and n == 1:
                        raise InvalidImage(messages.MASK_NOT_IMAGE.format(name=path.name)) from None
                    raise
            images = tuple(loaded)
        references = await self._reference_files(rest)
        invocation = Invocation(
            command=name,
            caller=self.caller,
            text=rest,
            images=images,
            options={"reference_files": references} if references else {},
        )
        return await self.engine.handle(invocation, self._progress)

    async def _reference_files(self, text: str) -> dict[str, InputImage]:
        """The files named as references (``--sref a.png,b.png``, ``--cref me.png``,
        ``--cref-mask m.png``), read and checked; other values (job ids) stay for the engine."""
        found: dict[str, InputImage] = {}
        words = text.split()
        for flag, value in itertools.pairwise(words):
            if flag.lower() not in _REFERENCE_FLAGS:
                continue
            for ref in value.split(","):
                path = Path(ref)
                if not ref or ref in found or not await asyncio.to_thread(path.is_file):
                    continue
                try:
                    data = await asyncio.to_thread(_read_capped, path, MAX_RAW_INPUT_BYTES)
                except OSError:
                    raise InvalidImage(f"I can't read the file `{path}`.") from None
                found[ref] = await prepare_input_image_async(data, path.name)
        return found

    async def _press(self, line: str) -> Reply:
        parts = line.rsplit(maxsplit=1)
        job_id = None
        label = line
        if len(parts) == 2 and re.fullmatch(r"[a-z2-7]{12}", parts[1]):
            label, job_id = parts
        wanted = _normal_label(label)
        for result in reversed(self.results):
            if job_id and result.job_id != job_id:
                continue
            for action in result.actions:
                if _normal_label(action.label) == wanted:
                    return await self.engine.press(
                        Press(action_id=action.action_id, caller=self.caller), self._progress
                    )
        raise UserError(
            f"There is no `{label}` button on {'job ' + job_id if job_id else 'any result yet'}; "
            "type /help for commands."
        )

    async def _progress(self, progress: Progress) -> None:
        self.say(f"  [{progress.job_id}] {progress.text}")

    # -- rendering -------------------------------------------------------------------------

    async def render(self, reply: Reply) -> None:
        """Print a reply; save a result's images and list its buttons."""
        if isinstance(reply, TextReply):
            self.say(reply.text)
            return
        self.results.append(reply)
        self.say(messages.caption_text(reply.caption, mention=lambda _uid: "you"))
        if not reply.ok:
            self.failures += 1
            self.say(f"✖ {reply.error or messages.SERVER_ERROR}")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for image in reply.images:
            if image.data is None:
                self.say(f"  image {image.index + 1}: withheld by the safety check")
                continue
            path = self.out_dir / image.filename
            await asyncio.to_thread(path.write_bytes, image.data)
            self.saved.append(path)
            self.say(f"  saved {path} ({image.width}x{image.height})")
        for attachment in reply.attachments:
            path = self.out_dir / attachment.filename
            await asyncio.to_thread(path.write_bytes, attachment.data)
            self.saved.append(path)
            self.say(f"  saved {path}")
        for i, text in enumerate(reply.descriptions, start=1):
            self.say(f"  {i}. {text}")
        if reply.error:
            self.say(f"  {reply.error}")
        if reply.rows:
            labels = " ".join(f"[{a.label}]" for a in reply.actions)
            self.say(f"  buttons: {labels}")
