"""The command line as a newcomer runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("IDEOGRAM_", "DISCORD_", "SLACK_"))
    }
    env["LOG_LEVEL"] = "WARNING"
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_runs_the_tour_and_saves_real_pngs(tmp_path: Path):
    """`ideogram-bot demo` with no tokens: exit 0, and every image it names exists and decodes."""
    done = _run(["demo", "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "offline engine" in done.stderr
    paths = re.findall(r"saved (\S+\.png)", done.stdout)
    assert len(paths) >= 10
    for name in paths:
        with Image.open(tmp_path / name if not Path(name).is_absolute() else name) as im:
            im.load()
    for command in ("/imagine", "U1", "V1", "🔄", "/remix", "/describe", "/usage", "/history"):
        assert f"> {command}" in done.stdout
    assert "✖" not in done.stdout
    for command in ("/edit", "/blend", "/inpaint", "/layerize"):
        assert f"> {command}" in done.stdout
    assert re.search(r"> /imagine .* --sref [a-z2-7]{12}:1", done.stdout)
    svgs = re.findall(r"saved (\S+\.svg)", done.stdout)
    assert len(svgs) == 1 and "layers_" in svgs[0]
    for name in svgs:
        root = ElementTree.parse(tmp_path / name if not Path(name).is_absolute() else name)
        assert root.getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_console_script_reports_failures_with_exit_code(tmp_path: Path):
    script = tmp_path / "lines.txt"
    script.write_text("/imagine a fox --n 1\n/imagine a fox --ar 16:8\n", encoding="utf-8")
    done = _run(["console", "--script", str(script), "--out", str(tmp_path / "o")], cwd=tmp_path)
    assert done.returncode == 1
    assert "Did you mean" in done.stdout
    assert list((tmp_path / "o").glob("*.png"))


def test_migrate_creates_the_database(tmp_path: Path):
    done = _run(["migrate"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "bot.sqlite3").exists()
    again = _run(["migrate"], cwd=tmp_path)
    assert "up to date" in again.stdout


def test_sigterm_stops_the_process_cleanly(tmp_path: Path):
    """`docker stop` sends SIGTERM: the command unwinds and exits 0."""
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEOGRAM_", "DISCORD_"))}
    env["LOG_LEVEL"] = "INFO"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "fake-ideogram", "--port", "0"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on http://" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_secrets_never_reach_the_log(tmp_path: Path):
    """Configured secrets, payload tokens and interaction-token URLs are redacted at
    every level, tracebacks included."""
    import io
    import logging

    from bot.cli import SecretRedactor

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretRedactor(["sk-ideogram-123456", "xoxb-slack-999999"]))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("calling with key %s", "sk-ideogram-123456")
        logger.debug("payload {'token': 'aW50ZXJhY3Rpb246MTIzNDU2', 'id': '1'}")
        logger.debug("PATCH /webhooks/123456/aW50ZXJhY3Rpb246MTIzNDU2Nzg5MA/messages/@original")
        try:
            raise RuntimeError("bad token xoxb-slack-999999")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("sk-ideogram-123456", "aW50ZXJhY3Rpb246MTIzNDU2", "xoxb-slack-999999"):
        assert secret not in text
    assert text.count("[redacted]") >= 4  # the traceback shows the secret twice


def test_operator_sets_direct_message_limits(tmp_path: Path):
    """DMs have no server admin: the operator sets their settings as server `dm`."""
    done = _run(["settings", "discord", "dm", "set", "daily_quota", "10"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"daily_quota\s+10", done.stdout)
    typo = _run(["settings", "discord", "dm", "set", "daily_qota", "10"], cwd=tmp_path)
    assert typo.returncode == 2 and "Did you mean `daily_quota`?" in typo.stderr
