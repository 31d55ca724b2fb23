"""The Slack adapter (SPEC §1-5 on Slack): Bolt listeners that translate Slack payloads to core
calls and core replies to Block Kit messages and uploaded files. ``ideogram-bot slack`` runs it
(:mod:`adapters.slack.cli`); ``slack-manifest.yaml`` at the repository root creates the app.
"""

from adapters.slack.app import SlackAdapter

__all__ = ["SlackAdapter"]
