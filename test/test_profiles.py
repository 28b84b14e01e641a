"""Hardware profiles through the real nodes: a full episode per profile (drivers played by
driver_personality_node on the sim), and per profile the three ways the robot must stop with a
message naming the cause: a wrong joint map, a missing driver topic, a stale hand state."""

from __future__ import annotations

import tempfile

import pytest
import yaml
from ros_helpers import Collector, spin_until

from drex_ros.core.robot.profile import profile_folder
from drex_ros.node_process import NodeProcess

ROBOTS = ("fr3_allegro", "panda_allegro_legacy")


def _broken_profile(name: str) -> str:
    """The profile with its hand's last joint mapped onto the first one's URDF joint."""
    doc = yaml.safe_load((profile_folder(name) / "profile.yaml").read_text())
    joints = doc["groups"]["hand"]["joints"]
    joints[-1][1] = joints[0][1]
    handle = tempfile.NamedTemporaryFile("w", suffix="-broken.yaml", delete=False)
    yaml.safe_dump(doc, handle)
    handle.close()
    return handle.name


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("node", ["safety_node", "joint_state_merger_node"])
def test_wrong_joint_map_refuses_to_start_naming_the_joint(robot, node):
    proc = NodeProcess(node, params={"robot_profile": _broken_profile(robot)})
    assert proc.proc.wait(60) == 2
    assert "more than once" in proc.output() and "joint_" in proc.output()


@pytest.mark.parametrize("robot", ROBOTS)
def test_stale_hand_stops_the_robot_naming_it(ros, robot):
    """The arm's driver keeps publishing, the hand's never does: no merged state (so safety
    commands nothing) and the merger names the hand's topic."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState

    from drex_ros.core.robot.model import JOINT_NAMES, robot_model
    from drex_ros.core.robot.profile import load_profile

    node, executor = ros
    prof = load_profile(profile_folder(robot), JOINT_NAMES)
    arm = prof.groups["arm"]
    merged = Collector(node, JointState, prof.state_topic)
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    pub = node.create_publisher(JointState, arm.state_topic, 10)
    merger = NodeProcess("joint_state_merger_node", params={"robot_profile": str(profile_folder(robot))})
    q = robot_model().home()[:7].tolist()

    def send_arm() -> bool:
        msg = JointState(name=list(arm.map.driver_names), position=q, velocity=[0.0] * 7, effort=[0.0] * 7)
        pub.publish(msg)
        return any("hand state" in s.message for d in diags.messages for s in d.status
                   if s.name.endswith("joint_state_merger_node"))

    try:
        assert spin_until(executor, send_arm, 60), merger.output()
        assert not merged.messages
        assert prof.groups["hand"].state_topic in merger.output()
    finally:
        merger.stop()
        node.destroy_publisher(pub)


@pytest.mark.parametrize("robot", ROBOTS)
def test_merger_publishes_urdf_names_stamped_as_the_arm_with_gravity_removed(ros, robot):
    """The merger node (raw bytes in and out) turns the drivers' two streams into one JointState
    in URDF order, with the arm's stamp, and Franka's tau_J less the model's gravity."""
    import numpy as np
    from sensor_msgs.msg import JointState

    from drex_ros.core.robot.gravity import GravityModel
    from drex_ros.core.robot.model import JOINT_NAMES, robot_model
    from drex_ros.core.robot.profile import load_profile

    node, executor = ros
    prof = load_profile(profile_folder(robot), JOINT_NAMES)
    arm, hand = prof.groups["arm"], prof.groups["hand"]
    merged = Collector(node, JointState, prof.state_topic)
    pubs = {g: node.create_publisher(JointState, prof.groups[g].state_topic, 10) for g in ("arm", "hand")}
    merger = NodeProcess("joint_state_merger_node", params={"robot_profile": str(profile_folder(robot))})
    q = robot_model().home()
    tau_j = GravityModel().torques(q)[:7] + 0.5  # 0.5 N*m beyond gravity on every arm joint
    hand_q = q[hand.map.urdf_index]

    def send() -> bool:
        h = JointState(name=list(hand.map.driver_names), position=hand_q.tolist(), velocity=[0.0] * 16,
                       effort=[0.1] * 16)
        a = JointState(name=list(arm.map.driver_names), position=q[:7].tolist(), velocity=[0.0] * 7,
                       effort=tau_j.tolist())
        a.header.stamp.sec, a.header.stamp.nanosec = 12, 345_000_000
        pubs["hand"].publish(h)
        pubs["arm"].publish(a)
        return bool(merged.messages)

    try:
        assert spin_until(executor, send, 60), merger.output()
        m = merged.messages[-1]
        assert list(m.name) == list(JOINT_NAMES)
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (12, 345_000_000)
        np.testing.assert_allclose(m.position, q, atol=1e-12)
        np.testing.assert_allclose(m.effort[:7], 0.5, atol=1e-9)
        np.testing.assert_allclose(np.asarray(m.effort)[hand.map.urdf_index], 0.1)
    finally:
        merger.stop()
        for pub in pubs.values():
            node.destroy_publisher(pub)


@pytest.mark.parametrize("robot", ROBOTS)
def test_missing_driver_topic_holds_naming_it(ros, robot):
    """Fresh state, commands flowing, but no controller on the arm's command topic: safety holds
    and says which topic has no driver."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState

    from drex_ros.core.robot.model import JOINT_NAMES, robot_model
    from drex_ros.core.robot.profile import load_profile

    node, executor = ros
    prof = load_profile(profile_folder(robot), JOINT_NAMES)
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    states = node.create_publisher(JointState, "/joint_states", 10)
    commands = node.create_publisher(JointState, "/drex/smoothed/joint_command", 10)
    safety = NodeProcess("safety_node", params={"robot_profile": str(profile_folder(robot)), "start_latched": False,
                                                "state_freshness": "arrival"})
    q = robot_model().home().tolist()

    def step() -> bool:
        states.publish(JointState(name=list(JOINT_NAMES), position=q))
        commands.publish(JointState(name=list(JOINT_NAMES), position=q))
        return any("no driver subscribes" in s.message for d in diags.messages for s in d.status)

    try:
        assert spin_until(executor, step, 60), safety.output()
        assert prof.groups["arm"].command_topic in safety.output()
    finally:
        safety.stop()
        node.destroy_publisher(states)
        node.destroy_publisher(commands)
