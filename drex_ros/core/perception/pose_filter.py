"""Constant-velocity Kalman filter for a 6-D pose, with outlier gating.

Each of the six error axes (position x, y, z; rotation about world x, y, z) carries a
value and its rate with a 2x2 covariance; the rates make a steadily moving object
tracked without lag (a constant-velocity target has zero steady-state error), unlike an
exponential average. Rotations are filtered on the manifold: the state is a rotation
matrix plus an angular velocity, the innovation is log(R_meas R_pred^T) in world axes.
A measurement whose normalised innovation exceeds the gate is not used; after
`max_outliers` in a row the filter believes the measurements and restarts from them
(the object was really moved, e.g. knocked or picked up).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# 99.9% quantile of chi-square with 6 degrees of freedom.
CHI2_6_999 = 22.46


@dataclass(frozen=True)
class FilterSettings:
    accel_sigma: float = 3.0  # m/s^2: how hard a push may accelerate the object
    angular_accel_sigma: float = 30.0  # rad/s^2
    min_position_sigma: float = 0.0005  # m, floor on a measurement's noise
    min_rotation_sigma: float = 0.004  # rad, floor on a measurement's noise
    gate: float = CHI2_6_999
    max_outliers: int = 3
    initial_velocity_sigma: float = 0.5  # m/s (and rad/s) before a second measurement


@dataclass(frozen=True)
class FilteredPose:
    position: np.ndarray
    rotation: np.ndarray  # world_R_object
    velocity: np.ndarray  # m/s, world
    angular_velocity: np.ndarray  # rad/s, world
    covariance: np.ndarray  # 6x6, [position, rotation] in world axes
    restarted: bool  # True when this measurement started a new track


def log_so3(R: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(R, dtype=float))[0].ravel()


def exp_so3(w: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(w, dtype=float).reshape(3, 1))[0]


class PoseFilter:
    """Feed it timestamped pose measurements; it returns the filtered pose or None for an outlier."""

    def __init__(self, settings: FilterSettings | None = None) -> None:
        self.settings = settings or FilterSettings()
        self.reset()

    def reset(self) -> None:
        self.stamp: float | None = None
        self._pos = np.zeros(3)
        self._rot = np.eye(3)
        self._vel = np.zeros(6)  # linear, angular
        self._P = np.zeros((6, 2, 2))  # per axis: [value, rate]
        self._outliers = 0

    @property
    def initialized(self) -> bool:
        return self.stamp is not None

    def _start(self, stamp: float, position: np.ndarray, rotation: np.ndarray, meas_var: np.ndarray) -> FilteredPose:
        self.reset()
        self.stamp = stamp
        self._pos, self._rot = position.copy(), rotation.copy()
        v0 = self.settings.initial_velocity_sigma ** 2
        for k in range(6):
            self._P[k] = np.diag([meas_var[k], v0])
        return self._output(restarted=True)

    def update(self, stamp: float, position: np.ndarray, rotation: np.ndarray,
               covariance: np.ndarray | None = None) -> FilteredPose | None:
        """Fuse one measurement (world frame); covariance is 6x6 [position, rotation] or None."""
        st = self.settings
        position = np.asarray(position, dtype=float)
        rotation = np.asarray(rotation, dtype=float)
        floor = np.array([st.min_position_sigma] * 3 + [st.min_rotation_sigma] * 3) ** 2
        meas_var = floor if covariance is None else np.maximum(np.diag(covariance), floor)
        if self.stamp is None or stamp <= self.stamp:
            # First measurement, or time went backwards / repeated (sim reset, bag loop): start over.
            return self._start(stamp, position, rotation, meas_var)
        dt = stamp - self.stamp
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q_unit = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
        q = np.array([st.accel_sigma**2] * 3 + [st.angular_accel_sigma**2] * 3)
        P_pred = np.einsum("ij,kjl,ml->kim", F, self._P, F) + q[:, None, None] * Q_unit
        pos_pred = self._pos + self._vel[:3] * dt
        rot_pred = exp_so3(self._vel[3:] * dt) @ self._rot
        innovation = np.concatenate([position - pos_pred, log_so3(rotation @ rot_pred.T)])
        S = P_pred[:, 0, 0] + meas_var
        if float(np.sum(innovation**2 / S)) > st.gate:
            self._outliers += 1
            if self._outliers >= st.max_outliers:
                return self._start(stamp, position, rotation, meas_var)
            return None
        self._outliers = 0
        gain = P_pred[:, :, 0] / S[:, None]  # per axis [k_value, k_rate]
        correction = gain * innovation[:, None]
        self._pos = pos_pred + correction[:3, 0]
        self._rot = exp_so3(correction[3:, 0]) @ rot_pred
        self._vel = self._vel + correction[:, 1]
        H = np.array([1.0, 0.0])
        self._P = P_pred - np.einsum("ki,j,kjl->kil", gain, H, P_pred)
        self.stamp = stamp
        return self._output(restarted=False)

    def _output(self, restarted: bool) -> FilteredPose:
        cov = np.diag(self._P[:, 0, 0])
        return FilteredPose(self._pos.copy(), self._rot.copy(), self._vel[:3].copy(), self._vel[3:].copy(), cov,
                            restarted)
