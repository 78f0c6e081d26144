"""The RouterOS toolset's settings (`MIKROTIK_*`), read from the environment (and `.env`) here.

Nothing outside this folder declares them: the core settings only carry values passed by name
(`load_settings(MIKROTIK_HOST=...)`), which override the environment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterOSSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    MIKROTIK_HOST: str | None = None
    MIKROTIK_PORT: int = Field(8728, ge=1, le=65535)
    MIKROTIK_USER: str | None = None
    MIKROTIK_PASSWORD: str | None = None
    MIKROTIK_TIMEOUT: float = Field(15.0, gt=0)  # seconds per API connection/reply
    MIKROTIK_REVERT_SECONDS: int = Field(300, ge=30)  # a risky change reverts itself after this unless verified
    # How far back the router's log is read for link flaps, and how many "link down" lines in it make a
    # link flapping (a counter read twice a few milliseconds apart shows nothing).
    MIKROTIK_FLAP_WINDOW_SECONDS: int = Field(600, ge=60)
    MIKROTIK_FLAP_MIN_DOWNS: int = Field(3, ge=2)
