"""Re-simulate a recorded run: the commands the robot received, replayed in the MuJoCo scene.

The recorded /drex/joint_command stream (targets and effort limits) is applied to the
scene in time order (zero-order hold, one 2 ms physics step at a time) starting from the
first recorded joint state and object pose; the simulated joints and object are then
compared with what was recorded at the recorded times. Nothing here needs a ground-truth
topic: a real robot's bag (joint states, commands, perceived object pose) is the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drex_ros.core.bag import TopicSeries
from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig


class ReplayError(ValueError):
    """The recording cannot be re-simulated (the message says why)."""


@dataclass
class Divergence:
    """Simulated minus recorded, at the recorded sample times."""

    joint_t: np.ndarray
    joint_recorded: np.ndarray  # (n, 23)
    joint_simulated: np.ndarray
    object_t: np.ndarray
    object_recorded: np.ndarray  # (m, 3)
    object_simulated: np.ndarray
    mass: float

    @property
    def joint_rms_deg(self) -> dict[str, float]:
        err = np.degrees(self.joint_simulated - self.joint_recorded)
        return {"arm": float(np.sqrt(np.nanmean(err[:, :7] ** 2))), "hand": float(np.sqrt(np.nanmean(err[:, 7:] ** 2)))}

    @property
    def object_error_mm(self) -> np.ndarray:
        return 1000 * np.linalg.norm(self.object_simulated - self.object_recorded, axis=1)

    def summary(self) -> dict[str, float]:
        err = self.object_error_mm
        return {"mass_kg": self.mass, "joint_rms_arm_deg": self.joint_rms_deg["arm"],
                "joint_rms_hand_deg": self.joint_rms_deg["hand"],
                "object_err_median_mm": float(np.median(err)) if err.size else float("nan"),
                "object_err_max_mm": float(err.max()) if err.size else float("nan"),
                "object_err_final_mm": float(err[-1]) if err.size else float("nan")}


def _times(series: TopicSeries) -> np.ndarray:
    return np.where(np.isfinite(series.stamp), series.stamp, series.t)


def resimulate(joints: TopicSeries, commands: TopicSeries, poses: TopicSeries, obj: ObjectConfig) -> Divergence:
    """Replay `commands` from the first recorded state and compare with `joints` and `poses`."""
    for name, s in (("/joint_states", joints), ("/drex/joint_command", commands), ("/drex/object_pose", poses)):
        if len(s) == 0:
            raise ReplayError(f"{name} holds no messages")
    tj, tc, tp = _times(joints), _times(commands), _times(poses)
    q_rec = joints.fields["position"]
    start = max(tc[0], tj[0], tp[0])
    end = min(tc[-1], tj[-1])
    if end - start < 0.1:
        raise ReplayError(f"the recording's joint states, commands and poses overlap for only {end - start:.2f} s")
    i0 = int(np.searchsorted(tj, start))
    q0 = q_rec[i0]
    if not np.all(np.isfinite(q0)):
        raise ReplayError("the first joint state lacks some of the robot's joints")
    k0 = int(np.searchsorted(tp, start, side="right")) - 1
    p0, quat0 = poses.fields["position"][max(k0, 0)], poses.fields["orientation"][max(k0, 0)]
    scene = Scene(SceneConfig(object=obj))
    scene.reset(q0)
    scene.set_object_pose(p0, quat0)
    return _run(scene, joints, commands, poses, tj, tc, tp, start, end, obj.mass)


def _run(scene: Scene, joints, commands, poses, tj, tc, tp, start, end, mass) -> Divergence:
    cmd_q, cmd_e = commands.fields["position"], commands.fields["effort"]
    j_idx = np.flatnonzero((tj >= start) & (tj <= end))
    p_idx = np.flatnonzero((tp >= start) & (tp <= end))
    q_sim, o_sim = np.full((len(j_idx), len(JOINT_NAMES)), np.nan), np.full((len(p_idx), 3), np.nan)
    target = scene.joint_positions()
    c, jn, pn = int(np.searchsorted(tc, start, side="right")) - 1, 0, 0
    t = start
    while t <= end + 1e-9:
        while c + 1 < len(tc) and tc[c + 1] <= t:
            c += 1
        if c >= 0:
            target = np.where(np.isfinite(cmd_q[c]), cmd_q[c], target)
            scene.set_targets(target)
            if np.any(np.isfinite(cmd_e[c])):
                scene.set_effort_limits(np.where(np.isfinite(cmd_e[c]), cmd_e[c], np.inf))
        scene.step()
        t += scene.timestep
        while jn < len(j_idx) and tj[j_idx[jn]] <= t:
            q_sim[jn] = scene.joint_positions()
            jn += 1
        while pn < len(p_idx) and tp[p_idx[pn]] <= t:
            o_sim[pn] = scene.object_pose()[0]
            pn += 1
    scene.close()
    return Divergence(tj[j_idx], joints.fields["position"][j_idx], q_sim, tp[p_idx],
                      poses.fields["position"][p_idx], o_sim, mass)
