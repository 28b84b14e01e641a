"""The types the mass identifier's modules share: its configuration, its answer, the push window
and the error that refuses a recording. A leaf of core.massid, so the push fit (identify), the
weighing (weigh) and the recording checks (recording) import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drex_ros.core.massid.trajectory_match import MatchWeights


class RecordingError(ValueError):
    """The recording cannot be used for identification (the message says why)."""


@dataclass
class PushWindow:
    t_motion: float  # first time the object is seen to have moved
    t0: float  # simulation start
    t1: float  # simulation end
    xy: np.ndarray  # resting position (x, y)
    yaw: float
    direction: np.ndarray  # unit push direction (3,), from where the object went


@dataclass
class MassIdConfig:
    mass_bounds: tuple[float, float] = (0.02, 3.0)
    friction_bounds: tuple[float, float] = (0.1, 1.5)
    replays: int = 3  # replays averaged per evaluation (the contact is chaotic)
    jacobian_step: float = 0.2  # log units: replays at x +- this measure the reading's sensitivity
    max_calibration_factor: float = 1.6  # the reading's bias is ~15%; a larger correction is a mismatch
    chaos_jitter: float = 0.01  # their parameter jitter (log units; 1% is enough to decorrelate)
    max_calibration_misfit: float = 0.15  # log units left between replay and recording readings (or 3 std)
    lm_iterations: int = 2  # Gauss-Newton steps from the direct reading
    reading_max_speed: float = float("inf")  # m/s: palm speeds the reading of a sliding push uses
    # m/s: slower palm samples are left out of the reading: where the palm slows (the scrub's
    # downstroke) the object nearly sticks and friction is below mu N.
    reading_min_speed: float = 0.02
    # Relative mass error added in quadrature for a sphere: its impulse reading carries a model
    # error (~20%, MODEL_CARD.md) that the replays' scatter does not show, so a sphere's push gets
    # no number.
    sphere_model_error: float = 0.20
    uncertainty_replays: int = 8  # replays at the fit whose scatter gives the standard deviation
    move_threshold: float = 0.008  # m: the object moved when it is this far from its resting pose
    rest_frames: int = 8  # at least this many pose frames before the push
    pre_motion: float = 0.3  # s of window before the detected start of motion
    max_window: float = 5.5  # s, longest simulated window (the push lasts about 4.2 s, more if the node chain stalls)
    sphere_window: float = 2.2  # s for a sphere: its push, and 0.6 s of it rolling away (it rolls on for long)
    settle_after: float = 0.25  # s kept after the object comes to rest
    delay_grid: tuple[float, float, float] = (-0.004, 0.026, 0.003)  # start, stop, step (s)
    pose_offset_grid: tuple[float, float, float] = (-0.15, 0.15, 0.005)
    # Relative mass std above this -> unidentifiable: through the node chain the error reached
    # 1.5-2.4 reported std, so a number is given only when twice its std is within 15%.
    max_rel_std: float = 0.075
    # RMS (N) of the push force between the replay at the fit and the recording, sample by sample
    # (low-passed), allowed whatever the chaos; above it the ratio below governs. Right fits of
    # light objects miss by ~0.1 N; a fit along the m * mu valley misses by more.
    max_force_misfit: float = 0.2
    # ... and this many times the RMS between two replays at the fit (the chaos).
    max_force_misfit_ratio: float = 2.0
    min_joint_coverage: float = 0.8  # fraction of the driver's joint states present during the push
    max_joint_gap: float = 0.1  # s: a longer gap tears the push or hold; shorter ones cost samples only
    max_joint_jump: float = 0.01  # rad: a joint state this far from where its velocity says is not a measurement
    max_bad_joint_states: float = 0.005  # fraction of such joint states dropped before the recording is refused
    min_contrast: float = 25.0  # loss rise (in noise-variance units) at half/double the mass
    # Weighing probes (weigh.py): the palm holds the object this far above where it grasped and
    # set it down; the arm is still below this joint speed; the hold is weighed after `settle` s, for at least
    # `min_hold` s; the largest drift between its halves. Tares: still stretches within
    # `tare_max_joint_offset` of the hold's arm configuration (the load bends the arm by a few mrad).
    lift_threshold: float = 0.04  # m
    still_speed: float = 0.02  # rad/s
    settle: float = 0.3  # s
    min_hold: float = 0.5  # s
    tare_max_joint_offset: float = 0.02  # rad
    # The sweep after each stop (weigh_probe.SWEEP_HEIGHT 4 cm, 2.4 s): the palm rises at least
    # this much and is back within `max_sweep` s.
    min_sweep_height: float = 0.02  # m
    max_sweep: float = 6.0  # s
    # Relative floor of a weighing's std (a torque sensor's gain error, assumed 1 %: it scales the
    # load and no tare removes it); the measured scatter and the tares' difference come on top.
    weigh_model_error: float = 0.01
    # N added to an untared weighing's std: the hand's modelled mass (0.955 kg) is known to ~5 %.
    weigh_untared_force: float = 0.47
    weigh_max_drift: float = 0.03
    # When a push is weighed as well (weigh.weighing_reason): its relative std is above this
    # (or it gave no number), and it does not read the object heavier than `weigh_max_mass`,
    # which the full grip may drop.
    weigh_above_rel_std: float = 0.02
    weigh_max_mass: float = 0.75  # kg
    weights: MatchWeights = field(default_factory=MatchWeights)
    nthread: int = 2
    # The robot's calibration (robot_calibration.RobotCalibration, `drex calibrate-robot`): its
    # effort offsets and joint friction are taken out of a recording's arm efforts first.
    calibration: object | None = None


@dataclass
class MassEstimate:
    identifiable: bool
    mass: float | None  # kg, None when unidentifiable
    std: float | None
    friction: float | None
    friction_std: float | None
    residual_rms: float  # RMS of the normalised residual (about 1 for a fit at noise level)
    reason: str
    cmd_delay: float
    pose_offset: float
    window: PushWindow
    curve_masses: np.ndarray  # loss over mass (profiled over friction), for the plot
    curve_loss: np.ndarray
    best_x: np.ndarray  # theta = (log m, log m mu) of the fit, kept even when unidentifiable (plots)
    rollouts: int
    wall_s: float
    pose_rms: float = float("nan")  # object pose misfit at the fit (noise units)
    n_pose: int = 0
    direct_mass: float = float("nan")  # the uncalibrated reading of the recorded push force
    direct_friction: float = float("nan")
    force_span: tuple[float, float] = (float("nan"), float("nan"))  # where the push force was evaluated
    force_rms: float = float("nan")  # N, push force misfit of the replay at the fit
    force_chaos: float = float("nan")  # N, the same between two replays at the fit (median pair)
    force_level: float = float("nan")  # N, RMS of the recorded push force over the window
    method: str = "push"  # or "weigh": a lifted object weighed through the arm's efforts (weigh.py)

    def summary(self) -> str:
        if not self.identifiable:
            return f"unidentifiable ({self.reason}); residual {self.residual_rms:.2f}"
        if self.method == "weigh":
            friction = "" if self.friction is None else f", friction {self.friction:.3f} (the push's mu*m / mass)"
            return (f"mass {self.mass:.4f} +/- {self.std:.4f} kg, weighed: {self.force_level:.2f} N held "
                    f"{self.window.t1 - self.window.t0:.1f} s{friction}, in {self.wall_s:.2f} s")
        friction = "not identified (rolling)" if self.friction is None else \
            f"{self.friction:.3f} +/- {self.friction_std:.3f}"
        return (f"mass {self.mass:.4f} +/- {self.std:.4f} kg, friction {friction}, residual {self.residual_rms:.2f}, "
                f"force misfit {self.force_rms:.2f} N, command delay {self.cmd_delay * 1e3:.1f} ms, "
                f"camera offset {self.pose_offset * 1e3:.0f} ms, "
                f"{self.rollouts} rollouts in {self.wall_s:.2f} s")
