"""Result buttons that survive restarts: one ``DynamicItem`` for every ``ig:`` custom_id.

A button's ``custom_id`` is the core's action id, ``ig:<kind>:<job_id>:<index>`` (at most 39
characters, Discord allows 100), so it carries everything needed to find the job again; the
state itself is loaded from SQLite by :meth:`bot.engine.Engine.press`. :class:`ResultButton` is
registered with ``client.add_dynamic_items`` in ``setup_hook``, so a click on any message,
however old and whichever process posted it, is routed here (discord.py
``examples/views/dynamic_counter.py``; discord.py rebuilds the view from
``interaction.message.components``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.types import ACTION_ID_RE, Action, ActionKind

if TYPE_CHECKING:
    from adapters.discord.client import IdeogramBot

#: Button colours: re-roll stands out like Midjourney's, Cancel is red; the rest are grey.
_STYLES = {
    ActionKind.REROLL: discord.ButtonStyle.primary,
    ActionKind.CANCEL: discord.ButtonStyle.danger,
}


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=ACTION_ID_RE):
    """A button of ours: a follow-up under a result (``U1``, ``V2``, ``🔄``, ``Vary (Strong)``,
    ``Imagine 1``) or ``Cancel`` on a progress message.

    Anyone who can see the message may press a follow-up; the new job belongs to, and is
    charged to, the presser. Only a job's owner may cancel it (the core checks).
    """

    def __init__(self, action_id: str, label: str, *, style: discord.ButtonStyle, row: int | None):
        super().__init__(discord.ui.Button(label=label, custom_id=action_id, style=style), row=row)

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResultButton:
        """Rebuild the button from the clicked component (label and style kept as posted)."""
        assert isinstance(item, discord.ui.Button)
        return cls(
            match.string,
            item.label or "",
            style=item.style,
            row=None,
        )

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Run the follow-up job; refusals go to the tree's one error handler."""
        client: IdeogramBot = interaction.client
        await client.flow.press(interaction, self.custom_id)


def button_for(action: Action, *, row: int) -> ResultButton:
    """The Discord button of one core action."""
    return ResultButton(
        action.action_id,
        action.label[:80],  # Discord's label limit; core labels are far shorter
        style=_STYLES.get(action.kind, discord.ButtonStyle.secondary),
        row=row,
    )


def result_view(rows: Sequence[Sequence[Action]]) -> discord.ui.View | None:
    """A persistent view (``timeout=None``) with the result's button rows; ``None`` if empty.

    Args:
        rows: the core's rows, each ≤ 5 actions, ≤ 5 rows (Discord's action-row limits).
    """
    if not any(rows):
        return None
    view = discord.ui.View(timeout=None)
    for row_index, row in enumerate(rows[:5]):
        for action in row[:5]:
            view.add_item(button_for(action, row=row_index))
    return view
