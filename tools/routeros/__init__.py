"""MikroTik RouterOS toolset: the API client, read tools for diagnosis, safe catalog actions, notes.

- `client.py`   librouteros sessions: typed reads, enable/disable, scheduler jobs, our management path
- `evidence.py` which interface an alert is about, and the observations diagnosis cites
- `tools.py`    read-only LangChain tools for the LLM
- `actions.py`  catalog entries; refuse what would cut our own management path; schedule a revert
- `verify.py`   read the change back; remove the revert job only when verification succeeds
- `notes.md`    what the model is told about these tools
"""

from __future__ import annotations

from pathlib import Path

from tools.routeros.client import (
    ManagementPath,
    RouterOSAuthError,
    RouterOSClient,
    RouterOSConfig,
    RouterOSError,
)

NOTES = (Path(__file__).with_name("notes.md")).read_text(encoding="utf-8")

__all__ = ["NOTES", "ManagementPath", "RouterOSAuthError", "RouterOSClient", "RouterOSConfig", "RouterOSError"]
