"""Replay a recorded run's observations through a policy in lockstep and compare its actions.

A regression check for a new model: at each recorded policy command, the policy loop is
given the joint state, object pose, mass and arm reference that had been recorded up to
that moment, steps once, and its targets and grip effort are compared with the recorded
command. The policy is enabled at the first recorded command of the grasp (after the
task entered `grasping`, when the bag holds /drex/task_state), as the live node was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drex_ros.core.bag import TopicSeries
from drex_ros.core.policy.loop import LoopConfig, PolicyLoop
from drex_ros.core.policy.runtime import PolicyModel
from drex_ros.core.robot.model import ARM_JOINTS, JOINT_NAMES, robot_model
from drex_ros.core.sim.resimulate import ReplayError


@dataclass
class ActionComparison:
    t: np.ndarray
    recorded: np.ndarray  # (n, 23) position targets
    replayed: np.ndarray
    recorded_effort: np.ndarray  # (n, 23)
    replayed_effort: np.ndarray
    refused: int  # steps where the replayed policy published nothing

    def summary(self) -> dict[str, float]:
        dq = np.abs(self.replayed - self.recorded)[:, len(ARM_JOINTS):]
        de = np.abs(self.replayed_effort - self.recorded_effort)[:, len(ARM_JOINTS):]
        return {"steps": int(len(self.t)), "refused": int(self.refused),
                "hand_target_rms_rad": float(np.sqrt(np.nanmean(dq ** 2))),
                "hand_target_max_rad": float(np.nanmax(dq)) if dq.size else float("nan"),
                "grip_effort_max_diff_nm": float(np.nanmax(de)) if de.size else float("nan")}


def grasp_start(task_state: TopicSeries | None) -> float:
    """Record time at which the task entered grasping (-inf if unknown)."""
    if task_state is None:
        return -np.inf
    for t, state in zip(task_state.t, task_state.fields["data"], strict=True):
        if state == "grasping":
            return float(t)
    return -np.inf


def replay_policy(model: PolicyModel, series: dict[str, TopicSeries], object_size: tuple[float, ...],
                  blend_steps: int = 20) -> ActionComparison:
    commands = series["/drex/policy/joint_command"]
    start = grasp_start(series.get("/drex/task_state"))
    idx = np.flatnonzero(commands.t >= start)
    if len(idx) == 0:
        raise ReplayError("no policy command was recorded after the grasp started")
    loop = PolicyLoop(model, robot_model(), LoopConfig(joint_state_timeout=np.inf, object_pose_timeout=np.inf,
                                                       blend_steps=blend_steps, deadline_fraction=1e6))
    loop.set_object_size(object_size)
    feeds = _feeds(series)
    out_q, out_e, refused = [], [], 0
    cursor = {name: 0 for name in feeds}
    for n, k in enumerate(idx):
        now = float(commands.t[k])
        for name, (times, apply) in feeds.items():
            while cursor[name] < len(times) and times[cursor[name]] <= now:
                apply(loop, cursor[name], now)
                cursor[name] += 1
        if n == 0:
            ok, message = loop.enable(now)
            if not ok:
                raise ReplayError(message)
        result = loop.step(now)
        if result.positions is None:
            refused += 1
            out_q.append(np.full(len(JOINT_NAMES), np.nan))
            out_e.append(np.full(len(JOINT_NAMES), np.nan))
        else:
            out_q.append(result.positions)
            out_e.append(result.efforts)
    return ActionComparison(commands.t[idx], commands.fields["position"][idx], np.array(out_q),
                            commands.fields["effort"][idx], np.array(out_e), refused)


def _feeds(series: dict[str, TopicSeries]) -> dict[str, tuple[np.ndarray, object]]:
    joints = series["/joint_states"]
    poses = series["/drex/object_pose"]
    feeds = {
        "joints": (joints.t, lambda loop, i, now: loop.update_joint_state(
            JOINT_NAMES, joints.fields["position"][i], joints.fields["velocity"][i], joints.fields["effort"][i],
            now)),
        "pose": (poses.t, lambda loop, i, now: loop.update_object_pose(
            poses.fields["position"][i], poses.fields["orientation"][i], now)),
    }
    mass = series.get("/drex/object_mass")
    if mass is not None and len(mass):
        data = mass.fields["data"]
        feeds["mass"] = (mass.t, lambda loop, i, now: loop.update_object_mass(
            data[i][0], data[i][2] if len(data[i]) > 2 else None))
    ref = series.get("/drex/policy/arm_reference")
    if ref is not None and len(ref):
        arm = ref.fields["position"][:, :len(ARM_JOINTS)]
        feeds["arm"] = (ref.t, lambda loop, i, now: loop.set_arm_reference(ARM_JOINTS, arm[i]))
    plan = series.get("/drex/policy/plan_time")
    if plan is not None and len(plan):
        plan_t = plan.fields["data"]
        feeds["plan_time"] = (plan.t, lambda loop, i, now: loop.set_plan_time(plan_t[i], now))
    return feeds
