"""The Slack adapter: Bolt listeners that translate Slack payloads to core calls and core
replies to Block Kit messages and uploaded files. ``ideogram-bot slack`` runs it
(:mod:`adapters.slack.cli`); ``slack-manifest.yaml`` at the repository root creates the app.

Modules: :mod:`~adapters.slack.app` (the adapter, Bolt and OAuth set-up),
:mod:`~adapters.slack.listeners` (what each Slack request does),
:mod:`~adapters.slack.conversation` (posting, with the DM fallback),
:mod:`~adapters.slack.status` (a job's status message), :mod:`~adapters.slack.blocks` (Block Kit)
and :mod:`~adapters.slack.files` (downloads and uploads).
"""

from adapters.slack.app import SlackAdapter

__all__ = ["SlackAdapter"]
