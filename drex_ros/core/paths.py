"""Where the package's shipped files are: config/ and models/, in a checkout or an install.

A source checkout (or pip's editable install) has config/ beside the package; a colcon install
puts it in <prefix>/share/drex/config, found through ament_index where it is importable and by
walking up from the package otherwise (a pip install into sys.prefix included).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODELS_DIR = PACKAGE_DIR / "models"


def _config_candidates() -> Iterator[Path]:
    """Where config/ may be, most specific first (ament is asked only when the checkout has none)."""
    yield PACKAGE_DIR.parent / "config"
    try:
        from ament_index_python.packages import get_package_share_directory

        yield Path(get_package_share_directory("drex")) / "config"
    except (ImportError, LookupError, OSError):  # not installed with colcon, or no sourced workspace
        pass
    yield from (parent / "share" / "drex" / "config" for parent in PACKAGE_DIR.parents[1:5])
    yield Path(sys.prefix) / "share" / "drex" / "config"


def config_dir() -> Path:
    """The first config/ folder that exists (the checkout's if nothing is found)."""
    return next((c for c in _config_candidates() if c.is_dir()), PACKAGE_DIR.parent / "config")


def config_path(filename: str) -> Path:
    """A file of the package's config/; FileNotFoundError naming every place looked in."""
    candidates = []
    for folder in _config_candidates():
        candidates.append(folder / filename)
        if candidates[-1].exists():
            return candidates[-1]
    raise FileNotFoundError(f"{filename} not found in {[str(c) for c in candidates]}")
