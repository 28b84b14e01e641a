"""Gravity torques of the stack's pinocchio model (core/robot/model.py) in URDF joint order.

A driver that reports measured link-side torque including gravity (Franka's tau_J) is turned
into the stack's convention (net of gravity, as the simulator reports) by subtracting these.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.model import RobotModel, robot_model


class GravityModel:
    """g(q) of the URDF model; q and the result in JOINT_NAMES order."""

    def __init__(self, model: RobotModel | None = None) -> None:
        self._robot = model or robot_model()
        self._data = self._robot.model.createData()  # its own: a node's thread must not share the model's

    def torques(self, q: np.ndarray) -> np.ndarray:
        g = pin.computeGeneralizedGravity(self._robot.model, self._data, self._robot.to_pin(q))
        return np.asarray(g)[self._robot.pin_index].copy()  # 1-DOF revolute joints: idx_v == idx_q
