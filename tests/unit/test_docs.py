"""The documentation cannot rot silently: every setting (core and toolsets) is documented (docs/configuration.md and
.env.example) and nothing documented is gone; the README stays a front door whose links resolve; every
page is in the site's navigation. (`mkdocs build --strict` in CI checks the links between pages.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.settings import Settings
from tools.registry import toolsets

REPO = Path(__file__).resolve().parents[2]


def settings_names() -> set[str]:
    """The core settings and every toolset's own (tools/<toolset>/settings.py)."""
    names = set(Settings.model_fields)
    for ts in toolsets():
        if ts.settings_model is not None:
            names |= set(ts.settings_model.model_fields)
    return names


def configuration_rows() -> set[str]:
    """The variables named in the first column of docs/configuration.md's table."""
    names: set[str] = set()
    for line in (REPO / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = configuration_rows()
    assert settings_names() - documented == set(), "settings missing from docs/configuration.md"
    assert documented - settings_names() == set(), "docs/configuration.md names settings that do not exist"


def test_env_example_names_every_setting() -> None:
    example = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert settings_names() - example == set(), "settings missing from .env.example"
    assert example - settings_names() == set(), ".env.example names settings that do not exist"


def test_readme_is_a_front_door_whose_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for command in ("make demo", "make test", "make test-fast", "tests/sim/"):
        assert command in readme
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), f"README links to {target}, which does not exist"


def test_every_page_is_in_the_site_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    in_nav = set(pages(config["nav"]))
    on_disk = {p.name for p in (REPO / "docs").glob("*.md")}
    assert on_disk == in_nav
