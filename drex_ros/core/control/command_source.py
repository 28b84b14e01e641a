"""Who may move the robot: the command stream has one owner at a time.

mass_id_node (its probes) and policy_node both publish on /drex/policy/joint_command; each names
itself in the command's header.frame_id (the smoother passes the header through). The task
grants the stream on /drex/command_owner (latched) as its phase changes, and safety_node accepts
only the granted source, so a stray publisher cannot move the robot during the other's motion.
"""

from __future__ import annotations

from drex_ros.core.control.task_sequence import Phase

POLICY = "policy"
MASS_ID = "mass_id"
ANY = "any"  # no arbitration (a stack without a task node: benches, single-node tests)
NOBODY = ""

_OWNER_OF_PHASE = {
    Phase.PROBING: MASS_ID,
    Phase.IDENTIFYING: MASS_ID,  # the weighing probe runs inside the identify call
    Phase.CALIBRATING: MASS_ID,  # the robot calibration's excitation (mass_id_node streams it)
    Phase.GRASPING: POLICY,
    Phase.LIFTING: POLICY,
    Phase.HOLDING: POLICY,
    Phase.DONE: POLICY,  # the policy goes on holding what it lifted
}


def owner_for_phase(phase: Phase) -> str:
    """The source granted the command stream in a task phase (nobody while idle, perceiving,
    or after a failure: nothing moves until the operator starts a task)."""
    return _OWNER_OF_PHASE.get(phase, NOBODY)
