"""An append-only record of finished evaluation episodes, so that `drex eval --chain/--probe`
(35-80 s per episode through the real nodes, hours for 20 objects per bin) can be stopped
and resumed, or extended to more objects, without running any episode twice.

One JSON line per episode: its key (what ran: path, condition, bin, object, evaluation seed,
the settings that change the outcome, and the sha256 of the model file) and its outcome,
with the git commit it ran at. A run looks up each key before running it; a retrained model
or other settings give other keys, so stale outcomes are never reused. A line cut short by a
killed run is skipped (that episode runs again).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path


def file_digest(*paths: str | Path) -> str:
    """First 16 hex digits of the SHA-256 over the files' bytes, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


CHECKOUT = Path(__file__).resolve().parents[2]


def git_commit() -> str:
    """The checkout's commit (with '+' when it has uncommitted changes), or 'unknown'."""
    try:
        out = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return (out.stdout.strip() + ("+" if dirty else "")) or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def episode_key(**fields) -> str:
    """A canonical string of the fields that define an episode (floats rounded to stay stable)."""
    def canon(v):
        return round(v, 9) if isinstance(v, float) else v
    return json.dumps({k: canon(v) for k, v in sorted(fields.items())}, sort_keys=True)


class EvalJournal:
    """Outcomes by episode key, loaded from and appended to one JSONL file (None: in memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._done: dict[str, dict] = {}
        self.skipped_lines = 0
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self._done[row["key"]] = row["outcome"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1
        self.reused = 0
        self._commit = git_commit()

    def get(self, key: str) -> dict | None:
        outcome = self._done.get(key)
        if outcome is not None:
            self.reused += 1
        return outcome

    def record(self, key: str, outcome: dict) -> None:
        self._done[key] = outcome
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:  # one write per line: a killed run leaves at most one partial line
            f.write(json.dumps({"key": key, "outcome": outcome, "commit": self._commit}) + "\n")

    def __len__(self) -> int:
        return len(self._done)
