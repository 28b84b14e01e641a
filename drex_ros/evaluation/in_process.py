"""Per-mass-bin evaluation of a grasp policy in MuJoCo (in-process path).

Each evaluated object is seeded, drawn with its mass uniform inside its bin, and run once
per condition with the policy driving the hand through the runtime's own pieces: the ONNX
model in ONNX Runtime (`core.policy.PolicyModel`), the contract's observation builder
(`ObservationBuilder`) and action decoding (`decode_action`). Only the mass fed to the
policy differs between conditions:

- true: the object's mass;
- identified: the mass-ID estimate (here a stand-in, see `identified_mass`);
- nominal: one fixed mass for every object (the mass-agnostic baseline).

The expert's effort search also runs on every object, giving the least grip effort that
holds it, so the policy's peak grip can be reported relative to what was needed (and
objects that even full effort cannot hold are counted as the physical ceiling of the bin).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from drex_ros.core.policy.runtime import ObservationBuilder, PolicyModel, decode_action
from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES, robot_model
from drex_ros.training.dataset import policy_inputs
from drex_ros.training.episode import HAND_EFFORT_LIMIT, GraspEpisode, ObjectSample, StepInfo, reachable_episode
from drex_ros.training.expert import least_grip_effort

MASS_RANGE = (0.05, 1.5)
N_BINS = 5
NOMINAL_MASS = 0.5  # kg: the baseline's fixed belief, a typical graspable object
# Stand-in for condition (b) while the full probe + identification is too slow to run per
# episode here: log-normal relative error of this standard deviation (see MODEL_CARD.md).
IDENTIFIED_LOG_SIGMA = 0.10


def mass_bins(n: int = N_BINS, lo: float = MASS_RANGE[0], hi: float = MASS_RANGE[1]) -> list[tuple[float, float]]:
    edges = np.linspace(lo, hi, n + 1)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def identified_mass(true_mass: float, rng: np.random.Generator, log_sigma: float = IDENTIFIED_LOG_SIGMA) -> float:
    return float(true_mass * np.exp(rng.normal(0.0, log_sigma)))


class PolicyController:
    """Drives the hand from an ONNX policy the way policy_node does: build obs, infer, decode."""

    def __init__(self, model: PolicyModel, obj: ObjectSample, mass: float, friction: float) -> None:
        self.model = model
        self.obj, self.mass, self.friction = obj, mass, friction
        self.builder = ObservationBuilder(model.contract, robot_model())
        self.limits = robot_model().limits
        self.hand_index = [model.contract.position_targets.index(j) for j in HAND_JOINTS]

    def __call__(self, info: StepInfo) -> tuple[np.ndarray, float]:
        obs = self.builder.build(policy_inputs(info, self.obj, self.mass, self.friction), info.t)
        targets, efforts = decode_action(self.model.contract, self.model.act(obs), JOINT_NAMES, self.limits)
        hand = np.array([targets[j] for j in HAND_JOINTS])
        grip = efforts[HAND_JOINTS[0]] / HAND_EFFORT_LIMIT if efforts else 1.0
        return hand, grip


@dataclass
class ObjectOutcome:
    bin_index: int
    obj: ObjectSample
    least_effort: float | None
    success: dict[str, bool]  # condition -> lifted and held
    peak_grip: dict[str, float]
    mass_given: dict[str, float]


def eval_object(mass_range: tuple[float, float], seed: int, nominal: float, log_sigma: float
                ) -> tuple[GraspEpisode, dict[str, float]] | None:
    """The seeded evaluation object of a bin (redrawn if out of reach) and the mass each condition is given."""
    rng = np.random.default_rng(seed)
    episode = reachable_episode(rng, mass_range)
    if episode is None:
        return None
    obj = episode.obj
    return episode, {"true": obj.mass, "identified": identified_mass(obj.mass, rng, log_sigma), "nominal": nominal}


def object_seed(seed: int, bin_index: int, i: int) -> int:
    return seed * 1000 + bin_index * 100 + i


def _eval_object(job: tuple) -> ObjectOutcome | None:
    bin_index, mass_range, seed, models, nominal, log_sigma = job
    drawn = eval_object(mass_range, seed, nominal, log_sigma)
    if drawn is None:
        return None
    episode, masses = drawn
    obj = episode.obj
    least = least_grip_effort(episode).least_effort
    success, peak, given = {}, {}, {}
    for name, path in models.items():
        model = _model(path)
        conditions = ("true", "identified", "nominal") if name == "main" else ("true",)
        for cond in conditions:
            key = cond if name == "main" else f"{name}:{cond}"
            result = episode.run(PolicyController(model, obj, masses[cond], obj.friction))
            success[key], peak[key], given[key] = result.success, result.peak_grip, masses[cond]
    return ObjectOutcome(bin_index, obj, least, success, peak, given)


_MODELS: dict[str, PolicyModel] = {}


def _model(path: str) -> PolicyModel:
    if path not in _MODELS:
        _MODELS[path] = PolicyModel(path, num_threads=1)
    return _MODELS[path]


def evaluate(models: dict[str, str], episodes_per_bin: int = 20, seed: int = 1000, workers: int = 2,
             nominal_mass: float = NOMINAL_MASS, log_sigma: float = IDENTIFIED_LOG_SIGMA,
             bins: list[tuple[float, float]] | None = None) -> list[ObjectOutcome]:
    """Outcomes for `episodes_per_bin` objects per bin; models: {"main": path, other band names: path}."""
    if "main" not in models:
        raise ValueError("models needs a 'main' entry (the policy under test)")
    bins = bins or mass_bins()
    jobs = [(b, rng_bin, object_seed(seed, b, i), models, nominal_mass, log_sigma)
            for b, rng_bin in enumerate(bins) for i in range(episodes_per_bin)]
    workers = max(1, min(2, workers))
    if workers == 1:
        out = [_eval_object(j) for j in tqdm(jobs, desc="evaluating")]
    else:
        with get_context("spawn").Pool(workers) as pool:
            out = list(tqdm(pool.imap(_eval_object, jobs), total=len(jobs), desc="evaluating"))
    return [o for o in out if o is not None]


def summarize(outcomes: list[ObjectOutcome], bins: list[tuple[float, float]], keys: list[str]) -> dict:
    """Per-bin success rates, peak grip relative to the least needed, and the liftable fraction."""
    out: dict = {"bins": [list(b) for b in bins], "episodes_per_bin": [], "liftable_fraction": [],
                 "success": {k: [] for k in keys}, "grip_over_least": {k: [] for k in keys},
                 "least_effort_mean": []}
    for b in range(len(bins)):
        group = [o for o in outcomes if o.bin_index == b]
        out["episodes_per_bin"].append(len(group))
        liftable = [o for o in group if o.least_effort is not None]
        out["liftable_fraction"].append(len(liftable) / max(1, len(group)))
        out["least_effort_mean"].append(float(np.mean([o.least_effort for o in liftable])) if liftable else None)
        for k in keys:
            out["success"][k].append(float(np.mean([o.success[k] for o in group])) if group else None)
            ratios = [o.peak_grip[k] / o.least_effort for o in liftable]
            out["grip_over_least"][k].append(float(np.mean(ratios)) if ratios else None)
    return out
