"""Gravity torques of the stack's pinocchio model (core/robot/model.py) in URDF joint order.

A driver that reports measured link-side torque including gravity (Franka's tau_J) is turned
into the stack's convention (net of gravity, as the simulator reports) by subtracting these.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.model import JOINT_NAMES, RobotModel, robot_model


class GravityModel:
    """g(q) of the URDF model; q and the result in JOINT_NAMES order."""

    def __init__(self, model: RobotModel | None = None) -> None:
        rm = model or robot_model()
        self._model = rm.model
        self._data = self._model.createData()
        self._idx = np.array([self._model.joints[self._model.getJointId(n)].idx_q for n in JOINT_NAMES])

    def torques(self, q: np.ndarray) -> np.ndarray:
        q_pin = np.zeros(self._model.nq)
        q_pin[self._idx] = q
        g = pin.computeGeneralizedGravity(self._model, self._data, q_pin)
        return np.asarray(g)[self._idx].copy()  # 1-DOF revolute joints: idx_v == idx_q
