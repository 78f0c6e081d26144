"""The Proxmox VE toolset's settings (`PROXMOX_*`), read from the environment (and `.env`) here.

Nothing outside this folder declares them: the core settings only carry values passed by name
(`load_settings(PROXMOX_HOST=...)`), which override the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProxmoxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    PROXMOX_HOST: str | None = None  # host or host:port of any cluster node (8006 by default)
    PROXMOX_USER: str = "root@pam"
    PROXMOX_TOKEN_NAME: str | None = None
    PROXMOX_TOKEN_VALUE: str | None = None
    PROXMOX_VERIFY_SSL: bool = True
    PROXMOX_CA_BUNDLE: Path | None = None  # CA file for the PVE certificate (instead of turning verification off)
    PROXMOX_TIMEOUT: float = Field(30.0, gt=0)  # seconds per API request
    PROXMOX_TASK_TIMEOUT: float = Field(300.0, gt=0)  # how long an action waits for its PVE task to end
    PROXMOX_NODE_REBOOT_TIMEOUT: float = Field(900.0, gt=0)  # how long a node reboot waits for the node to be back
    PROXMOX_MAX_MEMORY_MB: int = Field(65536, ge=512)  # a resize never goes above this ...
    PROXMOX_MAX_CORES: int = Field(16, ge=1)  # ... nor above this many cores (nor above the node's own)
