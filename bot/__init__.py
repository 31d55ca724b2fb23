"""ideogram-bot's platform-neutral core: commands, jobs, the Ideogram client, the offline engine.

This package never imports a chat platform library or ``adapters`` (docs/architecture.md);
``tests/test_boundaries.py`` enforces it.
"""

__version__ = "0.1.0"
