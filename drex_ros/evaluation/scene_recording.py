"""Commands streamed into an in-process MuJoCo scene, recorded as the stack records them.

Joint states at 500 Hz (two per 250 Hz command; a reality that steps finer takes several physics
steps per state), and optionally object poses as a camera pipeline delivers them: 30 Hz, 2 mm /
1 deg noise, 10 % of frames dropped, 40 ms late. Shared by the tests' in-process probes and the
robot calibration's excitation (robot_calibration_eval.py).
"""

from __future__ import annotations

import numpy as np

from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.perception.evaluation import noisy_quat
from drex_ros.core.sim.scene import Scene

STATE_PERIOD = 0.002  # s: joint states at 500 Hz, as the stack's drivers publish them


def record_in_scene(scene: Scene, shape: str, size: tuple, times: np.ndarray, commands: np.ndarray,
                    rng: np.random.Generator | None = None) -> Recording:
    """`commands` (250 Hz) streamed into `scene`; object poses only when `rng` is given."""
    jt, jq, jv, je, pt, pp, pq = [], [], [], [], [], [], []
    next_cam = 0.0
    per_sample = max(1, round(STATE_PERIOD / scene.timestep))
    for q in commands:
        scene.set_targets(q)
        for _ in range(2):
            scene.step(per_sample)
            jt.append(scene.time)
            jq.append(scene.joint_positions())
            jv.append(scene.joint_velocities())
            je.append(scene.joint_efforts())
            if rng is None or scene.time < next_cam - 1e-9:
                continue
            next_cam += 1 / 30
            if rng.random() < 0.1:
                continue
            p, quat = scene.object_pose()
            pt.append(scene.time + 0.04)
            pp.append(p + rng.normal(0, 0.002, 3))
            pq.append(noisy_quat(quat, np.deg2rad(1.0), rng))
    return Recording(shape, size, np.array(jt), np.array(jq), np.array(jv), np.array(je), times.copy(),
                     commands.copy(), np.array(pt), np.array(pp).reshape(-1, 3), np.array(pq).reshape(-1, 4))
