"""Fixtures for the security suite (see local_hosts.py: temp sandboxes only, never real system files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.local_hosts import write_inventory


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(inventory naming host `box`, box's sandbox root)."""
    root = tmp_path / "box"
    root.mkdir()
    return write_inventory(tmp_path / "inventory.ini", {"box": root}), root
