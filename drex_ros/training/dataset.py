"""Behaviour-cloning data: randomized objects, expert labels, recorded observation/action pairs.

Each object is labelled by the expert's effort search, then one full episode is run with
the labelled effort and every control step is recorded: the observation is built by the
runtime's own `core.policy.ObservationBuilder` from the contract (so training and
deployment agree field by field), the action is the expert's hand targets + grip effort.
Objects are generated in parallel (at most 2 worker processes; run under `nice`), seeded per object
so the data do not depend on the worker count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from drex_ros.core.policy.contract import ObsField, PolicyContract
from drex_ros.core.policy.runtime import ObservationBuilder, PolicyInputs
from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES, robot_model
from drex_ros.training.episode import (
    CONTROL_RATE_HZ,
    HOLD_CHECK_S,
    ObjectSample,
    StepInfo,
    expert_effort,
    expert_hand_targets,
    noisy_expert_controller,
    reachable_episode,
)
from drex_ros.training.expert import least_grip_effort, strict_check_start

OBS_FIELDS = [
    ObsField("joint_position", len(HAND_JOINTS), list(HAND_JOINTS)),
    ObsField("object_position_palm", 3),
    ObsField("object_mass", 1),
    ObsField("object_friction", 1),
    ObsField("object_size", 3),
    ObsField("phase_time", 1),
]


def base_contract(obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None,
                  act_mean: np.ndarray | None = None, act_std: np.ndarray | None = None) -> PolicyContract:
    """The policy's contract; normalization defaults to identity until training sets it."""
    obs_dim = sum(f.size for f in OBS_FIELDS)
    act_dim = len(HAND_JOINTS) + 1
    from drex_ros.core.sim.scene_build import HAND_KD, HAND_KP
    return PolicyContract(
        observation=list(OBS_FIELDS),
        position_targets=list(HAND_JOINTS),
        grip_effort=list(HAND_JOINTS),
        obs_mean=np.zeros(obs_dim) if obs_mean is None else obs_mean,
        obs_std=np.ones(obs_dim) if obs_std is None else obs_std,
        action_mean=np.zeros(act_dim) if act_mean is None else act_mean,
        action_std=np.ones(act_dim) if act_std is None else act_std,
        control_rate_hz=CONTROL_RATE_HZ,
        gains={j: {"kp": HAND_KP, "kd": HAND_KD} for j in HAND_JOINTS},
    )


def policy_inputs(info: StepInfo, obj: ObjectSample, mass: float, friction: float) -> PolicyInputs:
    """What the runtime would hold at this step: joint state, object pose, identified mass/friction, size."""
    return PolicyInputs(
        n_joints=len(JOINT_NAMES), position=info.q, velocity=info.dq, effort=info.tau, joint_state_time=info.t,
        object_position=info.object_position, object_quat=info.object_quat, object_pose_time=info.t,
        object_mass=mass, object_friction=friction, object_size=obj.extents(), phase_time=info.t,
    )


@dataclass
class EpisodeData:
    obj: ObjectSample
    least_effort: float | None
    label_effort: float
    success: bool  # the labelled (noisy) expert episode itself, under the expert's strict check
    obs: np.ndarray
    act: np.ndarray


def generate_episode(seed: int, mass_range: tuple[float, float] = (0.05, 1.5)) -> EpisodeData | None:
    """Label one random object and record its expert episode (None if no grasp plan exists)."""
    rng = np.random.default_rng(seed)
    episode = reachable_episode(rng, mass_range)
    if episode is None:
        return None
    obj = episode.obj
    label = least_grip_effort(episode)
    strict = strict_check_start(episode)
    result = episode.run(noisy_expert_controller(episode.plan, label.label_effort, rng), record=True,
                         check_from=strict, until=strict + HOLD_CHECK_S)
    builder = ObservationBuilder(base_contract(), robot_model())
    obs = np.array([builder.build(policy_inputs(info, obj, obj.mass, obj.friction), info.t)
                    for info, _, _ in result.records], dtype=np.float32)
    # Labels: the clean expert action at each visited state (the executed one carried noise).
    act = np.array([np.concatenate([expert_hand_targets(episode.plan, info.t),
                                    [expert_effort(episode.plan, info.t, label.label_effort)]])
                    for info, _, _ in result.records], dtype=np.float32)
    # Held 10 cm up through the recorded 3 s (`success` also wants the settled success window,
    # which ends 0.5 s after the recording: always False here).
    return EpisodeData(obj, label.least_effort, label.label_effort, result.held_through_run, obs, act)


def _worker_init() -> None:
    try:
        import torch  # noqa: F401 - only to cap threads if a parent imported it
        torch.set_num_threads(1)
    except ImportError:
        pass


def generate_dataset(n_episodes: int, seed: int, workers: int = 2, desc: str = "expert episodes"
                     ) -> list[EpisodeData]:
    """n_episodes labelled episodes, seeds seed*100000 + i, in order (independent of `workers`)."""
    seeds = [seed * 100_000 + i for i in range(n_episodes)]
    workers = max(1, min(2, workers))
    if workers == 1:
        out = [generate_episode(s) for s in tqdm(seeds, desc=desc)]
    else:
        with get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            out = list(tqdm(pool.imap(generate_episode, seeds, chunksize=4), total=len(seeds), desc=desc))
    return [e for e in out if e is not None]


def save_dataset(episodes: list[EpisodeData], path: str) -> None:
    lengths = np.array([len(e.obs) for e in episodes])
    np.savez_compressed(
        path,
        obs=np.concatenate([e.obs for e in episodes]), act=np.concatenate([e.act for e in episodes]),
        lengths=lengths,
        mass=np.array([e.obj.mass for e in episodes]), friction=np.array([e.obj.friction for e in episodes]),
        least_effort=np.array([np.nan if e.least_effort is None else e.least_effort for e in episodes]),
        label_effort=np.array([e.label_effort for e in episodes]),
        expert_success=np.array([e.success for e in episodes]),
        objects=np.array([str(asdict(e.obj)) for e in episodes]),
    )
