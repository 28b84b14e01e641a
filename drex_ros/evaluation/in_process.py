"""Per-mass-bin evaluation of a grasp policy in MuJoCo (in-process path).

Each evaluated object is seeded, drawn with its mass uniform inside its bin, and run once
per condition with the policy driving the hand through the runtime's own pieces: the ONNX
model in ONNX Runtime (`core.policy.PolicyModel`), the contract's observation builder
(`ObservationBuilder`) and action decoding (`decode_action`). Only the mass fed to the
policy differs between conditions:

- true: the object's mass;
- stand_in: the true mass times a log-normal error (`stand_in_mass`): a stand-in for an
  identified mass, which only the node-chain path (`--probe`) measures;
- nominal: one fixed mass for every object (the mass-agnostic baseline);
- fallback: the task's conservative fallback mass for every object.

Every object also gets a crush limit (`training.fragility`), drawn from its own stream so the
objects themselves are those of evaluations before crushing existed; an episode ends held,
dropped or crushed. The expert's effort search runs on every object, giving the least grip
effort that holds it, so the policy's peak grip can be reported relative to what was needed;
objects that no grip lifts whole (full effort slips, or the least grip crushes them) are the
physical ceiling of the bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from drex_ros.core.control.task_sequence import CONSERVATIVE_FALLBACK_MASS
from drex_ros.core.policy.runtime import ObservationBuilder, PolicyModel, decode_action
from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES, robot_model
from drex_ros.training.dataset import policy_inputs
from drex_ros.training.episode import HAND_EFFORT_LIMIT, GraspEpisode, ObjectSample, StepInfo, reachable_episode
from drex_ros.training.expert import least_grip_effort
from drex_ros.training.fragility import draw_crush_limit

MASS_RANGE = (0.05, 1.5)
N_BINS = 5
NOMINAL_MASS = 0.5  # kg: the baseline's fixed belief, a typical graspable object
# The stand-in for an identified mass in-process (the probes run only through the node chain):
# log-normal relative error of this standard deviation (see MODEL_CARD.md).
STAND_IN_LOG_SIGMA = 0.10
CONDITIONS = ("true", "stand_in", "nominal", "fallback")
CRUSH_STREAM = 7  # the crush limit's random stream, apart from the object's own draws


def mass_bins(n: int = N_BINS, lo: float = MASS_RANGE[0], hi: float = MASS_RANGE[1]) -> list[tuple[float, float]]:
    edges = np.linspace(lo, hi, n + 1)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def stand_in_mass(true_mass: float, rng: np.random.Generator, log_sigma: float = STAND_IN_LOG_SIGMA) -> float:
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
    success: dict[str, bool]  # condition -> lifted and held, not crushed
    peak_grip: dict[str, float]
    mass_given: dict[str, float]
    outcome: dict[str, str] = field(default_factory=dict)  # condition -> held, dropped or crushed
    peak_squeeze: dict[str, float] = field(default_factory=dict)  # condition -> N on the object
    feasible: bool = True  # some grip lifts and holds it uncrushed (the expert found one)


def eval_object(mass_range: tuple[float, float], seed: int, nominal: float, log_sigma: float
                ) -> tuple[GraspEpisode, dict[str, float]] | None:
    """The seeded evaluation object of a bin (redrawn if out of reach) and the mass each condition is given."""
    rng = np.random.default_rng(seed)
    episode = reachable_episode(rng, mass_range)
    if episode is None:
        return None
    obj = episode.obj
    obj.crush_limit = draw_crush_limit(np.random.default_rng([seed, CRUSH_STREAM]), obj.mass)
    return episode, {"true": obj.mass, "stand_in": stand_in_mass(obj.mass, rng, log_sigma), "nominal": nominal,
                     "fallback": CONSERVATIVE_FALLBACK_MASS}


def object_seed(seed: int, bin_index: int, i: int) -> int:
    return seed * 1000 + bin_index * 100 + i


def _eval_object(job: tuple) -> ObjectOutcome | None:
    bin_index, mass_range, seed, models, nominal, log_sigma = job
    drawn = eval_object(mass_range, seed, nominal, log_sigma)
    if drawn is None:
        return None
    episode, masses = drawn
    obj = episode.obj
    label = least_grip_effort(episode)
    out = ObjectOutcome(bin_index, obj, label.least_effort, {}, {}, {}, feasible=label.feasible)
    for name, path in models.items():
        model = _model(path)
        for cond in CONDITIONS if name == "main" else ("true",):
            key = cond if name == "main" else f"{name}:{cond}"
            result = episode.run(PolicyController(model, obj, masses[cond], obj.friction))
            out.success[key], out.peak_grip[key], out.mass_given[key] = result.success, result.peak_grip, masses[cond]
            out.outcome[key], out.peak_squeeze[key] = result.outcome, result.peak_squeeze
    return out


_MODELS: dict[str, PolicyModel] = {}


def _model(path: str) -> PolicyModel:
    if path not in _MODELS:
        _MODELS[path] = PolicyModel(path, num_threads=1)
    return _MODELS[path]


def evaluate(models: dict[str, str], episodes_per_bin: int = 20, seed: int = 1000, workers: int = 2,
             nominal_mass: float = NOMINAL_MASS, log_sigma: float = STAND_IN_LOG_SIGMA,
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
    """Per bin: success, dropped and crushed rates, peak grip relative to the least needed, mean
    peak squeeze, and the fractions of objects liftable at all and liftable uncrushed."""
    out: dict = {"bins": [list(b) for b in bins], "episodes_per_bin": [], "liftable_fraction": [],
                 "feasible_fraction": [], "least_effort_mean": []}
    out.update({name: {k: [] for k in keys} for name in ("success", "dropped", "crushed", "grip_over_least",
                                                         "peak_squeeze_n")})
    for b in range(len(bins)):
        group = [o for o in outcomes if o.bin_index == b]
        out["episodes_per_bin"].append(len(group))
        liftable = [o for o in group if o.least_effort is not None]
        out["liftable_fraction"].append(len(liftable) / max(1, len(group)))
        out["feasible_fraction"].append(sum(o.feasible for o in group) / max(1, len(group)))
        out["least_effort_mean"].append(_mean([o.least_effort for o in liftable]))
        for k in keys:
            out["success"][k].append(_mean([o.success[k] for o in group]))
            for result in ("dropped", "crushed"):
                out[result][k].append(_mean([o.outcome.get(k) == result for o in group]))
            out["peak_squeeze_n"][k].append(_mean([o.peak_squeeze[k] for o in group if k in o.peak_squeeze]))
            out["grip_over_least"][k].append(_mean([o.peak_grip[k] / o.least_effort for o in liftable]))
    return out


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if values else None
