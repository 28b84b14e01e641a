"""Objects that break: the squeeze an object survives, by class.

Too little grip drops a heavy object; too much crushes a fragile one. An object's crush limit
is the total normal force of the hand's contacts on it (`Scene.object_squeeze`), averaged over
`CRUSH_WINDOW_S` so that a single contact transient is not a crush (crushing a cup or a fruit
takes a sustained squeeze). Classes, drawn independently of everything else about the object:

- fragile: light things that give way under a firm hand squeeze, a paper cup, a ripe fruit, a
  thin PET bottle; limit uniform in `FRAGILE_LIMIT_N`. Only objects up to `FRAGILE_MAX_KG`.
- sturdy: a wooden block, a tin, a glass jar; no limit within what the hand can squeeze (its
  full effort gives 50-70 N here).

Lighter objects are fragile or sturdy at `FRAGILE_SHARE`, so fragility is not a proxy for mass.
The limits are assumed (order of magnitude of hand-squeeze tests on such objects), not measured.
"""

from __future__ import annotations

import math

import numpy as np

CRUSH_WINDOW_S = 0.1
FRAGILE_LIMIT_N = (20.0, 35.0)
FRAGILE_MAX_KG = 0.6
FRAGILE_SHARE = 0.5
STURDY = math.inf


def draw_crush_limit(rng: np.random.Generator, mass: float) -> float:
    """The crush limit (N) of an object of `mass` kg: a fragile one's, or `STURDY` (infinite)."""
    fragile = rng.random() < FRAGILE_SHARE
    limit = float(rng.uniform(*FRAGILE_LIMIT_N))  # drawn always, so the stream does not depend on the mass
    return limit if fragile and mass <= FRAGILE_MAX_KG else STURDY


def crush_classes_text() -> str:
    lo, hi = FRAGILE_LIMIT_N
    return (f"{FRAGILE_SHARE:.0%} of objects up to {FRAGILE_MAX_KG} kg fragile ({lo:.0f}-{hi:.0f} N squeeze"
            f" over {CRUSH_WINDOW_S} s), the rest sturdy")
