"""The buttons under a result, per kind of command (see ``docs/commands.md``, "Buttons").

Each rule takes the finished job's id, the indices (0-based) of its images that were not
withheld, and how many descriptions it has, and returns button rows: at most 5 buttons a row
and 5 rows, as both Discord and Slack allow. The command table
(:data:`bot.commands.registry.COMMANDS`) names the rule of each command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.types import Action, ActionKind

Rows = tuple[tuple[Action, ...], ...]
ButtonRule = Callable[[str, Sequence[int], int], Rows]
"""``rule(job_id, ready_image_indices, description_count) -> rows``."""

_PER_ROW = 5
_MAX_ROWS = 5


def _chunk(actions: Sequence[Action]) -> list[tuple[Action, ...]]:
    return [tuple(actions[i : i + _PER_ROW]) for i in range(0, len(actions), _PER_ROW)]


def _upscales(job_id: str, ready: Sequence[int]) -> list[Action]:
    return [Action(ActionKind.UPSCALE, job_id, i + 1, f"U{i + 1}") for i in ready]


def generation_buttons(job_id: str, ready: Sequence[int], descriptions: int) -> Rows:
    """``U1…Un``, then ``V1…Vn`` with ``🔄`` at the end of the last row (its own row if full)."""
    rows = _chunk(_upscales(job_id, ready))
    variations = [Action(ActionKind.VARY, job_id, i + 1, f"V{i + 1}") for i in ready]
    reroll = Action(ActionKind.REROLL, job_id, 0, "🔄")
    if variations and len(variations) % _PER_ROW != 0:
        rows += _chunk([*variations, reroll])
    else:
        rows += [*_chunk(variations), (reroll,)]
    return tuple(rows[:_MAX_ROWS])


def upscale_buttons(job_id: str, ready: Sequence[int], descriptions: int) -> Rows:
    """``Vary (Subtle)``, ``Vary (Strong)``, ``Zoom Out``, ``Remove BG`` on an upscale."""
    if not ready:
        return ()
    return (
        (
            Action(ActionKind.VARY_SUBTLE, job_id, 1, "Vary (Subtle)"),
            Action(ActionKind.VARY_STRONG, job_id, 1, "Vary (Strong)"),
            Action(ActionKind.ZOOM_OUT, job_id, 1, "Zoom Out"),
            Action(ActionKind.REMOVE_BG, job_id, 1, "Remove BG"),
        ),
    )


def upscale_only_buttons(job_id: str, ready: Sequence[int], descriptions: int) -> Rows:
    """``U1…Un`` (a cut-out can still be upscaled)."""
    return tuple(_chunk(_upscales(job_id, ready))[:_MAX_ROWS])


def describe_buttons(job_id: str, ready: Sequence[int], descriptions: int) -> Rows:
    """``Imagine 1…n``: one per description."""
    actions = [
        Action(ActionKind.IMAGINE, job_id, i, f"Imagine {i}") for i in range(1, descriptions + 1)
    ]
    return tuple(_chunk(actions)[:_MAX_ROWS])
