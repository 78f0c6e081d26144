"""The self-healing switch as the application service offers it: what every adapter shows and flips.

HTTP (`/api/v1/self-healing`), the console's page, Telegram's `/heal` and `aiops self-healing` call
these three and nothing below them. Who may flip the switch is each adapter's gate, the same rule as
for a decision (`agents.approval.authorised`: the API's `Switcher`, the console's and Telegram's approver
checks); what it does is here. The switch is stored in the database (store/autonomy.py), so every
worker and process sees it at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.self_healing import self_healing_status, set_self_healing, store_for
from core.models import utcnow
from core.settings import Settings
from store.autonomy import AutoAction


def status(settings: Settings) -> dict[str, Any]:
    """Both switches (SELF_HEALING and the run-time one), who changed it last, the policy in force."""
    return self_healing_status(settings)


def switch(settings: Settings, enabled: bool, by: str, now: datetime | None = None) -> dict[str, Any]:
    """Turn automatic actions on or off for every process, recording who did; returns the new status."""
    set_self_healing(settings, enabled, by, now)
    return self_healing_status(settings)


def history(settings: Settings, now: datetime | None = None) -> list[AutoAction]:
    """The automatic actions taken within the policy's windows, oldest first."""
    return store_for(settings).history(now or utcnow())
