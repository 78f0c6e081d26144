"""Where the public eval datasets are: `--data DIR`, else `DATASETS_DIR`, else ../shared/datasets."""

from __future__ import annotations

from pathlib import Path

from core.settings import get_settings


def data_dir(given: Path | None) -> Path:
    if given is not None:
        return given

    return Path(get_settings().DATASETS_DIR)
