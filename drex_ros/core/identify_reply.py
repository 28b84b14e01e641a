"""The /drex/identify_mass reply's verdict word, shared by mass_id_node and its callers.

A reply that starts with it means the probe gave no number the data can support (the task
then grasps with its fallback mass); any other failure means the probe could not run.
"""

from __future__ import annotations

UNIDENTIFIABLE = "unidentifiable"


def unidentifiable_reply(reason: str) -> str:
    return f"{UNIDENTIFIABLE}: {reason}"


def is_unidentifiable(message: str) -> bool:
    return message.startswith(UNIDENTIFIABLE)
