"""driver_personality_node: the real drivers of a hardware profile, played on the simulator.

Between sim_node's canonical topics (its /joint_states and /drex/joint_command, remapped by the
profile to /drex/sim/...) and the topics the real drivers use, with their names, orders,
message types, rates and effort semantics, and their rules (core/sim/personalities.py): the
trajectory controller refuses effort fields, unknown joints and trajectories that end in the
past; a Franka-like reflex aborts the arm on a discontinuity until ~/error_recovery; the legacy
Allegro node reads joint_cmd by position. Every refusal is logged (once per reason) and counted
on /diagnostics. Parameters: robot_profile (its `simulation:` section names the personalities).
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import yaml
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from drex_ros.core.robot.gravity import GravityModel
from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.core.sim import personalities as P
from drex_ros.core.sim.scene_build import joint_gains
from drex_ros.nodes.joint_state_cdr import JointStateReader, JointStateWriter
from drex_ros.nodes.ros_io import Diagnostics, joint_state_arrays, make_joint_state, spin_node, to_sec

STATE_HISTORY = 500  # samples: 1 s of the sim's states
COMMAND_MSG = {"joint_trajectory": JointTrajectory, "float64_array": Float64MultiArray, "joint_state": JointState}


class DriverPersonalityNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("driver_personality_node", **kwargs)
        path = self.declare_parameter("robot_profile", "").value
        sim_state = self.declare_parameter("sim_state_topic", "/drex/sim/joint_states").value
        sim_command = self.declare_parameter("sim_command_topic", "/drex/sim/joint_command").value
        with open(path) as f:
            sim = (yaml.safe_load(f) or {}).get("simulation") or {}
        self.arm, self.hand = P.DRIVERS[sim["arm"]], P.DRIVERS[sim["hand"]]
        self.reflex = P.FrankaReflex(self.arm)
        self._index = {n: i for i, n in enumerate(JOINT_NAMES)}
        self._arm_idx = np.array([self._index[n] for n in self.arm.physical])
        self._hand_idx = np.array([self._index[n] for n in self.hand.physical])
        self._sim_kp = np.array([joint_gains()[n]["kp"] for n in self.hand.physical])
        self._gravity = GravityModel().torques
        self._q = np.full(len(JOINT_NAMES), np.nan)
        self._hand_last = -np.inf
        self.refused: Counter = Counter()
        self._to_sim = self.create_publisher(JointState, sim_command, 10)
        # 1 s of samples kept for re-sending, as sim_node's writer: in simulation the stack shares
        # this host with its drivers, and with 10 (20 ms) the merger, then the recorder, lost states.
        self._arm_state = self.create_publisher(JointState, self.arm.state_topic, STATE_HISTORY)
        self._hand_state = self.create_publisher(JointState, self.hand.state_topic, STATE_HISTORY)
        # The sim's 500 Hz states as bytes in and out (nodes/joint_state_cdr.py): this node stands
        # between the simulator and the stack, and its lag on a loaded host is the stack's.
        self._reader = JointStateReader()
        self._arm_writer, self._hand_writer = JointStateWriter(self.arm.names), JointStateWriter(self.hand.names)
        # As deep as the writers: a reader that keeps 50 loses every state beyond them while this
        # process waits for a core (at 0.5x, 50 samples are 0.2 s of wall time).
        self.create_subscription(JointState, sim_state, self._on_sim_state, STATE_HISTORY, raw=True)
        self.create_subscription(COMMAND_MSG[self.arm.command_type], self.arm.command_topic, self._on_arm, 10)
        self.create_subscription(COMMAND_MSG[self.hand.command_type], self.hand.command_topic, self._on_hand, 10)
        self.create_service(Trigger, "~/error_recovery", self._on_recovery)
        self._diag = Diagnostics(self)
        self.create_timer(1.0, self._report)
        self.get_logger().info(f"playing {self.arm.name} ({self.arm.command_topic}, {self.arm.state_topic}) and "
                               f"{self.hand.name} ({self.hand.command_topic}, {self.hand.state_topic})")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_sim_state(self, data: bytes) -> None:
        msg = self._reader.decode(data)
        a = joint_state_arrays(msg, JOINT_NAMES)
        q, v, e = a["position"], a["velocity"], a["effort"]
        self._q = q
        e_arm = P.arm_state_effort(self.arm, e[self._arm_idx], self._gravity(np.nan_to_num(q))[self._arm_idx])
        self._arm_state.publish(self._arm_writer.encode(msg.sec, msg.nanosec, q[self._arm_idx], e_arm,
                                                        v[self._arm_idx]))
        t = msg.stamp_seconds
        if t - self._hand_last >= 1.0 / self.hand.state_rate_hz - 1e-6:
            self._hand_last = t
            self._hand_state.publish(self._hand_writer.encode(msg.sec, msg.nanosec, q[self._hand_idx],
                                                              e[self._hand_idx], v[self._hand_idx]))

    def _on_arm(self, msg: JointTrajectory) -> None:
        points = [P.TrajectoryPoint(p.positions, p.velocities, p.effort, to_sec(p.time_from_start))
                  for p in msg.points]
        try:
            q, v = P.check_trajectory(self.arm, msg.joint_names, points, to_sec(msg.header.stamp), self._now())
        except P.Rejected as exc:
            return self._refuse(f"{self.arm.command_topic}: {exc}")
        if not self.reflex.check(q, v, self._now(), points[-1].time_from_start):
            return self._refuse(f"{self.arm.name}: {self.reflex.error}")
        self._to_sim.publish(make_joint_state(self.get_clock().now().to_msg(), self.arm.physical, q))

    def _on_hand(self, msg) -> None:
        try:
            if self.hand.command_type == "float64_array":
                q_cmd = P.forward_command(self.hand, msg.data)
            else:
                q_cmd = P.legacy_joint_cmd(self.hand, msg.name, msg.position, msg.effort)
        except P.Rejected as exc:
            return self._refuse(f"{self.hand.command_topic}: {exc}")
        target = P.hand_sim_target(self.hand, q_cmd, self._q[self._hand_idx], self._sim_kp)
        self._to_sim.publish(make_joint_state(self.get_clock().now().to_msg(), self.hand.physical, target,
                                              effort=np.asarray(self.hand.torque_cap)))

    def _refuse(self, reason: str) -> None:
        if reason not in self.refused:
            self.get_logger().error(f"refused: {reason}")
        self.refused[reason] += 1

    def _on_recovery(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.reflex.recover()
        response.success, response.message = True, f"{self.arm.name}: errors cleared"
        self.get_logger().warning(response.message)
        return response

    def _report(self) -> None:
        level = "error" if self.reflex.error else ("warn" if self.refused else "ok")
        text = self.reflex.error or (f"refused {sum(self.refused.values())} commands" if self.refused else "playing")
        self._diag.publish(level, text, {k[:120]: v for k, v in self.refused.items()})


def main(args: list[str] | None = None) -> None:
    try:
        spin_node(DriverPersonalityNode, args)
    except (KeyError, OSError) as exc:
        print(f"driver_personality_node: robot_profile has no usable simulation section: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
