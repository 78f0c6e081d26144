"""Proxmox VE toolset: the API client, read tools for diagnosis, catalog actions, notes for the model.

- `client.py`   proxmoxer over API tokens: typed reads, guest operations, waiting on UPID tasks
- `metrics.py`  RRD data as metric series the anomaly ranking understands
- `evidence.py` which guest/node an alert is about, and the observations diagnosis cites
- `tools.py`    read-only LangChain tools for the LLM
- `actions.py`  catalog entries and how each one runs (snapshot first, wait, exit status)
- `notes.md`    what the model is told about these tools
"""

from __future__ import annotations

from pathlib import Path

from tools.proxmox.client import (
    GuestRef,
    ProxmoxAuthError,
    ProxmoxClient,
    ProxmoxConfig,
    ProxmoxError,
    ProxmoxNotConfigured,
    ProxmoxUnavailable,
    TaskResult,
)

NOTES = (Path(__file__).with_name("notes.md")).read_text(encoding="utf-8")

__all__ = ["NOTES", "GuestRef", "ProxmoxAuthError", "ProxmoxClient", "ProxmoxConfig", "ProxmoxError",
           "ProxmoxNotConfigured", "ProxmoxUnavailable", "TaskResult"]
