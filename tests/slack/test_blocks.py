"""Block Kit rendering: escaping, captions, limits, modal state."""

from __future__ import annotations

import json

from adapters.slack import blocks
from bot.commands import registry
from bot.types import Action, ActionKind, Caption, JobResult


def _result(prompt: str) -> JobResult:
    caption = Caption(
        requester_id="U123",
        command="imagine",
        prompt=prompt,
        magic_prompt=None,
        seed="7",
        speed="TURBO",
        style="AUTO",
        aspect_ratio="16x9",
        job_id="abcdefghijkl",
    )
    rows = ((Action(ActionKind.UPSCALE, "abcdefghijkl", 1, "U1"),),)
    return JobResult(
        job_id="abcdefghijkl",
        command="imagine",
        status="succeeded",
        platform="slack",
        server_id="T1",
        channel_id="C1",
        owner_id="U123",
        caption=caption,
        rows=rows,
    )


def test_user_text_cannot_ping_or_link() -> None:
    """A prompt with <!channel>, a mention and & is escaped; only the requester is mentioned."""
    text, _ = blocks.result_message(_result("hi <!channel> & <@U999> <https://x.example|y>"))
    assert "<!channel>" not in text and "<@U999>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U999&gt;" in text
    assert "<@U123>" in text


def test_caption_bold_becomes_mrkdwn_bold() -> None:
    """The core's **bold** prompt line becomes Slack's *bold*."""
    assert blocks.caption_mrkdwn(_result("a fox").caption).startswith("*a fox* — <@U123>")
    assert blocks.to_mrkdwn("**Your usage** (UTC)\n```\na  b\n```") == (
        "*Your usage* (UTC)\n```\na  b\n```"
    )


def test_buttons_carry_the_action_id_in_both_fields() -> None:
    """action_id and value are the core's ig: id, within Slack's limits."""
    (_, actions) = blocks.result_message(_result("x"))[1]
    (element,) = actions["elements"]
    assert element["action_id"] == element["value"] == "ig:upscale:abcdefghijkl:1"


def test_long_text_is_cut_to_section_limits() -> None:
    """A very long prompt still yields valid blocks (section text ≤ 3,000 characters)."""
    text, message_blocks = blocks.result_message(_result("word " * 2000))
    assert len(message_blocks[0]["text"]["text"]) <= blocks.SECTION_TEXT_MAX
    assert len(text) <= 3000


def test_every_image_command_has_a_valid_modal() -> None:
    """Titles fit 24 characters; the metadata round-trips; text fields match the command."""
    for spec in registry.for_platform("slack").values():
        if not spec.takes_image:
            continue
        state = blocks.ModalState(command=spec.name, channel_id="C1", thread_ts="1.2")
        view = blocks.image_modal(spec, state, "prefill")
        assert len(view["title"]["text"]) <= blocks.MODAL_TITLE_MAX
        assert blocks.ModalState.load(view["private_metadata"]) == state
        inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
        expected = ["ig_image", "ig_prompt"] if blocks.takes_text(spec) else ["ig_image"]
        assert inputs == expected, spec.name
        assert len(json.dumps(view["blocks"])) < 10_000


def test_shortcut_modal_metadata_stays_within_limits() -> None:
    """A message file with huge fields still fits private_metadata (3,000 characters)."""
    file = {"id": "F1", "name": "n" * 5000, "mimetype": "image/png", "url_private": "u" * 5000}
    state = blocks.ModalState(command="remix", channel_id="C1", source=file)
    assert len(state.dump()) <= blocks.PRIVATE_METADATA_MAX
    assert blocks.ModalState.load(state.dump()).source is not None
