"""The registry of fault scenarios shared by the fault tests and the degradation benchmark."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Degradation:
    dependency: str  # the breaker's name, e.g. "prometheus"
    fault: str  # what was done to it, e.g. "redis-server stopped"
    behaviour: str  # what the product did instead, one line
    fallback_ms: float  # from the failure (first call after the fault) to the fallback answering
    breaker_state: str  # the dependency's breaker after the scenario
    details: dict[str, Any] = field(default_factory=dict)


Scenario = Callable[[Path], Degradation]
SCENARIOS: dict[str, Scenario] = {}


def degradation(key: str) -> Callable[[Scenario], Scenario]:
    """Register a scenario under `key` ("prometheus-stopped"); it gets a scratch directory."""
    def register(fn: Scenario) -> Scenario:
        if key in SCENARIOS:
            raise ValueError(f"duplicate fault scenario {key!r}")
        SCENARIOS[key] = fn
        return fn
    return register


def load_all() -> dict[str, Scenario]:
    """Import every `tests/faults/scenarios_*.py` so its scenarios register."""
    import tests.faults as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("scenarios_"):
            importlib.import_module(f"tests.faults.{mod.name}")
    return dict(SCENARIOS)
