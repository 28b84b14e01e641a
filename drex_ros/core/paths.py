"""Where the package's shipped files are: config/ and models/, in a checkout or an install.

A source checkout (or pip's editable install) has config/ beside the package; a colcon install
puts it in <prefix>/share/drex/config, found through ament_index where it is importable and by
walking up from the package otherwise (a pip install into sys.prefix included).
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODELS_DIR = PACKAGE_DIR / "models"


def _config_candidates() -> list[Path]:
    candidates = [PACKAGE_DIR.parent / "config"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("drex")) / "config")
    except (ImportError, LookupError):
        pass
    candidates += [parent / "share" / "drex" / "config" for parent in PACKAGE_DIR.parents[1:5]]
    candidates.append(Path(sys.prefix) / "share" / "drex" / "config")
    return candidates


def config_dir() -> Path:
    """The first config/ folder that exists (the checkout's if nothing is found)."""
    candidates = _config_candidates()
    return next((c for c in candidates if c.is_dir()), candidates[0])


def config_path(filename: str) -> Path:
    """A file of the package's config/; FileNotFoundError naming every place looked in."""
    candidates = [c / filename for c in _config_candidates()]
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"{filename} not found in {[str(c) for c in candidates]}")
