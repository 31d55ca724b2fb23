"""Runtime configuration from the environment or a ``.env`` file (README, "Configuration").

:class:`Settings` is built once, in the composition root (:mod:`bot.app`), and passed down;
nothing reads the environment at import time. Secrets are :class:`pydantic.SecretStr`, so they
never appear in ``repr()``, logs or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.encryption import load_keys
from bot.server_settings import ServerSettings, operator_defaults


class PriceTable(BaseSettings):
    """Estimated USD prices (docs/commands.md, usage); override with ``PRICE_<FIELD>`` variables.

    Per output image for generate/remix/reframe/replace-bg by rendering speed; ``transparent``
    is added per image for ``generate-transparent``; the rest are per request image.
    """

    model_config = SettingsConfigDict(env_prefix="PRICE_", env_file=".env", extra="ignore")

    flash: float = 0.03
    turbo: float = 0.03
    default: float = 0.06
    quality: float = 0.09
    transparent: float = 0.01
    remove_bg: float = 0.01
    upscale: float = 0.06
    describe: float = 0.01
    # Endpoints with no price in the seeds' pricing: estimates, per result image unless said.
    # /v1/edit: as a DEFAULT-speed generation. Inpaint is priced by rendering speed like
    # generate; ``inpaint`` is its price when no speed is given.
    edit: float = 0.06
    inpaint: float = 0.06
    # Layerize-text: per request (one analysed image).
    layerize: float = 0.09
    # Added per result image when a character reference is sent (the API bills "character
    # reference pricing", about 0.07-0.11 USD above the plain price by speed).
    character: float = 0.09
    # Legacy models, per result image (Ideogram's published legacy prices); legacy /edit and
    # /reframe bill as their model.
    legacy_v1: float = 0.06
    legacy_v1_turbo: float = 0.02
    legacy_v2: float = 0.08
    legacy_v2_turbo: float = 0.05
    legacy_v2a: float = 0.04
    legacy_v2a_turbo: float = 0.025


class Settings(BaseSettings):
    """Every variable of README "Configuration", plus a few operational knobs with safe defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    ideogram_api_key: SecretStr | None = None
    ideogram_base_url: str = "https://api.ideogram.ai"
    ideogram_auth: Literal["api-key", "bearer"] = "api-key"
    ideogram_max_in_flight: int = Field(default=10, ge=1, le=1000)
    # Bounds for one API call and for result downloads (seconds / bytes).
    ideogram_timeout_s: float = Field(default=180.0, gt=0)
    ideogram_max_retries: int = Field(default=3, ge=0, le=10)
    ideogram_max_download_bytes: int = Field(default=40 * 1024 * 1024, gt=0)
    # Per user: jobs running at once, and jobs queued + running (0 = no limit).
    max_user_running_jobs: int = Field(default=3, ge=0)
    max_user_active_jobs: int = Field(default=25, ge=0)
    # What a server that never changed its settings may spend on the operator's key: images per
    # user per UTC day, and estimated USD per server per UTC month (0 = unlimited). Servers'
    # admins override them with /settings; safe, non-zero defaults so a new server is not open.
    default_daily_quota: int = Field(default=25, ge=0)
    default_monthly_budget_usd: float = Field(default=20.0, ge=0)
    # On shutdown, running jobs get this long to finish before they are cut (seconds).
    shutdown_grace_s: float = Field(default=20.0, ge=0)

    @property
    def server_defaults(self) -> ServerSettings:
        """The settings of a server whose admins changed nothing (operator limits included)."""
        return operator_defaults(
            daily_quota=self.default_daily_quota,
            monthly_budget_usd=self.default_monthly_budget_usd,
        )

    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_guild_id: int | None = None

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_port: int = 3000
    slack_admin_user_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    # Fernet key(s) encrypting the Slack tokens the bot stores; comma-separated to rotate
    # (bot/encryption.py). Unset: tokens are stored in clear, in a file only the bot can read.
    bot_encryption_key: SecretStr | None = None

    prices: PriceTable = Field(default_factory=PriceTable)

    database_path: Path = Path("data/bot.sqlite3")
    data_dir: Path = Path("data")
    log_level: str = "INFO"

    @field_validator("slack_admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("bot_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            load_keys(value.get_secret_value())  # ValueError naming the key's position only
        return value

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def offline(self) -> bool:
        """True when no API key is set: the bot runs on the offline engine."""
        return self.ideogram_api_key is None
