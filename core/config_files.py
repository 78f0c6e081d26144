"""Reading the operator's files named by settings (POLICY_FILE, TOPOLOGY_FILE, API_TOKENS_FILE).

One place for what can go wrong with such a file, each as one line naming the setting and the file:
it cannot be read, it is not UTF-8 (which byte, where), or it is not YAML. Callers wrap the error in
their own type (PolicyError, TopologyError, SettingsError), which the CLI prints and exits 2 on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """An operator's file that cannot be used: one line naming the setting and the file."""


def read_utf8(path: Path | str, setting: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"cannot read {setting} {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{setting} {path} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                              f"{exc.start})") from None


def read_yaml(path: Path | str, setting: str) -> Any:
    text = read_utf8(path, setting)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{setting} {path} is not YAML: {' '.join(str(exc).split())[:300]}") from None
