"""The orchestrator's state machine, clocked by hand."""

import numpy as np
import pytest

from drex_ros.core.control.task_sequence import Observation, Phase, TaskSequence, TaskSettings

PHASES = {"approach": (0, 1), "descend": (1, 2), "close": (2, 3), "lift": (3, 4), "shake": (4, 5), "hold": (5, 8)}
OBJ = np.array([0.55, 0.0, 0.03])


def obs(now, **kw):
    base = dict(now=now, joint_state_time=now, object_position=OBJ, object_pose_time=now)
    base.update(kw)
    return Observation(**base)


def perceive(seq: TaskSequence) -> float:
    """Start the task and show it a still object until it probes; the time then."""
    assert seq.start(0.0)
    t = 0.0
    while seq.phase is Phase.PERCEIVING:
        t += 0.05
        seq.update(obs(t))
    return t


def run_to_grasp(seq: TaskSequence) -> float:
    assert seq.start(0.0)
    t = 0.0
    while seq.phase is Phase.PERCEIVING:
        t += 0.05
        actions = seq.update(obs(t))
    assert seq.phase is Phase.PROBING and actions.request_identification
    for _ in range(20):  # the push: commands flowing
        t += 0.05
        seq.update(obs(t, last_command_time=t))
    t += 0.5 * seq.settings.probe_gap
    seq.update(obs(t, last_command_time=t - 0.5 * seq.settings.probe_gap))
    assert seq.phase is Phase.PROBING, "a short pause in the probe's commands is not its end"
    t += seq.settings.probe_gap
    seq.update(obs(t, last_command_time=t - 1.5 * seq.settings.probe_gap))
    assert seq.phase is Phase.IDENTIFYING
    t += 1.0
    actions = seq.update(obs(t, last_command_time=t - 1.5, identify_done=True, identify_ok=True, mass=0.4))
    assert seq.phase is Phase.GRASPING and actions.start_grasp
    return t


def test_full_run_reaches_done_when_the_object_is_held_up():
    seq = TaskSequence(grasp_phases=PHASES)
    t0 = run_to_grasp(seq)
    seen = []
    t = t0
    while seq.phase not in (Phase.DONE, Phase.FAILED) and t < t0 + 30:
        t += 0.05
        plan_t = t - t0
        z = OBJ[2] + (0.0 if plan_t < 3 else min(0.15, 0.15 * (plan_t - 3)))
        seq.update(obs(t, last_command_time=t, object_position=OBJ + [0, 0, z - OBJ[2]], grip_settled=plan_t > 2.5))
        seen.append(seq.phase)
    assert seq.phase is Phase.DONE, seq.reason
    assert [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p] == [
        Phase.GRASPING, Phase.LIFTING, Phase.HOLDING, Phase.DONE]
    assert set(seq.durations) == {"perceiving", "probing", "identifying", "grasping", "lifting", "holding"}


def test_dropped_object_fails_with_a_reason():
    seq = TaskSequence(grasp_phases=PHASES)
    t = run_to_grasp(seq)
    for _ in range(400):
        t += 0.05
        seq.update(obs(t, last_command_time=t, grip_settled=True))
    assert seq.phase is Phase.FAILED and "not held" in seq.reason


def test_a_silent_policy_fails_the_grasp():
    seq = TaskSequence(grasp_phases=PHASES)
    t = run_to_grasp(seq)
    t += 1.0
    actions = seq.update(obs(t, last_command_time=t - 0.9))
    assert seq.phase is Phase.GRASPING  # within command_timeout (1 s)
    for _ in range(3):
        t += 0.5
        actions = seq.update(obs(t, last_command_time=t - 1.4))
    assert seq.phase is Phase.FAILED and actions.stop and "policy_node" in seq.reason


def test_the_plan_clock_stands_while_the_policy_is_silent_and_goes_on_from_there():
    """A starved policy comes back to the arm reference where it left it, not ahead of it."""
    seq = TaskSequence(grasp_phases=PHASES)
    t = run_to_grasp(seq)
    times, last = [], t
    for k in range(80):  # 4 s: commands, then none for 0.6 s (ticks 40-51), then commands again
        t += 0.05
        last = last if 40 <= k < 52 else t
        times.append(seq.update(obs(t, last_command_time=last, grip_settled=True)).grasp_time)
    assert seq.phase is not Phase.FAILED, seq.reason
    steps = np.diff(times)
    assert steps[:39] == pytest.approx(0.05) and steps[-20:] == pytest.approx(0.05)
    # Over the silence and the tick that ended it the plan ran on only for plan_pause_after (a
    # policy may be between messages), then stood: 0.3 s, not 0.65 s.
    assert sum(steps[39:52]) == pytest.approx(seq.settings.plan_pause_after + 0.05, abs=0.051)


def test_a_silent_policy_does_not_use_up_the_grips_time_to_settle():
    """Silence before the lift (a starved policy's start) is the policy's, not the grip's: a grip
    that settles 2.5 s after the planned lift still lifts, whatever came before."""
    seq = TaskSequence(grasp_phases=PHASES)
    t = run_to_grasp(seq)
    quiet_until = t + 0.9  # the policy's first command comes 0.9 s into the grasp (command_timeout 1 s)
    lift_at = PHASES["lift"][0]
    while seq.phase is Phase.GRASPING and t < quiet_until + lift_at + 6.0:
        t += 0.05
        last = None if t < quiet_until else t
        plan_t = seq.grasp_elapsed(t) or 0.0
        seq.update(obs(t, last_command_time=last, grip_settled=t >= quiet_until + lift_at + 2.5))
    assert seq.phase is Phase.LIFTING, seq.reason
    assert plan_t <= lift_at + 0.1


def test_stale_joint_states_fail_any_phase():
    seq = TaskSequence()
    seq.start(0.0)
    seq.update(obs(1.0, joint_state_time=0.2))
    assert seq.phase is Phase.PERCEIVING  # 0.8 s: within joint_state_timeout (1 s)
    seq.update(obs(1.5, joint_state_time=0.2))
    assert seq.phase is Phase.PERCEIVING  # one stale update is not yet a failure
    seq.update(obs(1.52, joint_state_time=1.51))
    seq.update(obs(1.54, joint_state_time=0.2))
    assert seq.phase is Phase.PERCEIVING  # the strikes restart once a fresh state arrived
    seq.update(obs(1.56, joint_state_time=0.2))
    seq.update(obs(1.58, joint_state_time=0.2))
    assert seq.phase is Phase.FAILED and "joint_states" in seq.reason


def test_every_phase_times_out():
    seq = TaskSequence(TaskSettings(timeouts={k: 1.0 for k in ("perceiving", "probing", "identifying", "grasping",
                                                                 "lifting", "holding")}))
    seq.start(0.0)
    for k in range(3):
        seq.update(obs(1.5 + 0.02 * k, object_position=None, object_pose_time=None))
    assert seq.phase is Phase.FAILED and "perceiving timed out" in seq.reason


def test_failed_identification_is_reported():
    seq = TaskSequence(grasp_phases=PHASES)
    seq.start(0.0)
    t = 0.0
    while seq.phase is Phase.PERCEIVING:
        t += 0.05
        seq.update(obs(t))
    seq.update(obs(t + 0.1, identify_done=True, identify_ok=False, identify_message="unidentifiable"))
    assert seq.phase is Phase.FAILED and "unidentifiable" in seq.reason


def test_a_moving_object_is_not_accepted_as_seen():
    seq = TaskSequence()
    seq.start(0.0)
    for k in range(20):
        seq.update(obs(0.05 * (k + 1), object_position=OBJ + [0.01 * k, 0, 0]))
    assert seq.phase is Phase.PERCEIVING


def test_unidentifiable_mass_grasps_with_the_fallback_when_configured():
    seq = TaskSequence(TaskSettings(fallback_mass=1.2), grasp_phases=PHASES)
    seq.start(0.0)
    t = 0.0
    while seq.phase is Phase.PERCEIVING:
        t += 0.05
        seq.update(obs(t))
    actions = seq.update(obs(t + 0.1, identify_done=True, identify_ok=False, identify_message="unidentifiable: flat"))
    assert actions.publish_fallback_mass and seq.used_fallback and seq.phase is Phase.PROBING
    actions = seq.update(obs(t + 0.2, identify_done=True, identify_ok=False, identify_message="unidentifiable: flat",
                             mass=1.2))
    assert actions.start_grasp and seq.phase is Phase.GRASPING
    other = TaskSequence(TaskSettings(fallback_mass=1.2))
    other.start(0.0)
    other.phase = Phase.IDENTIFYING
    other.update(obs(1.0, identify_done=True, identify_ok=False, identify_message="joint states were lost"))
    assert other.phase is Phase.FAILED  # only a verdict of "unidentifiable" falls back


def test_the_hand_may_hide_the_object_while_reaching_but_not_once_lifting():
    seq = TaskSequence(grasp_phases=PHASES)
    t0 = run_to_grasp(seq)
    assert seq.phase is Phase.GRASPING
    t = t0
    while t < t0 + PHASES["lift"][0] - 0.1:  # approach, descend, close: no pose at all
        t += 0.05
        seq.update(obs(t, object_position=None, object_pose_time=None, last_command_time=t))
    assert seq.phase is Phase.GRASPING, seq.reason
    for _ in range(int(seq.settings.object_pose_timeout / 0.05) + 10):
        t += 0.05
        seq.update(obs(t, object_position=None, object_pose_time=None, last_command_time=t, grip_settled=True))
    assert seq.phase is Phase.FAILED and "object pose lost" in seq.reason


def test_the_arm_waits_at_the_grasp_until_the_grip_settles():
    seq = TaskSequence(grasp_phases=PHASES)
    t0 = run_to_grasp(seq)
    lift_at, settle = PHASES["lift"][0], seq.settings.grip_settle
    t, times = t0, []
    while t < t0 + lift_at + 1.0:  # the fingers are still closing a second past the planned lift
        t += 0.05
        times.append(seq.update(obs(t, last_command_time=t)).grasp_time)
        assert seq.phase is Phase.GRASPING
    assert max(times) == lift_at and times[-1] == lift_at, "the plan's clock stands at the lift"
    seq.update(obs(t + 0.05, last_command_time=t + 0.05, grip_settled=True))
    seq.update(obs(t + 0.1, last_command_time=t + 0.1, grip_settled=False))  # a flicker is not a grip
    seq.update(obs(t + 0.15, last_command_time=t + 0.15, grip_settled=True))
    assert seq.phase is Phase.GRASPING
    t += 0.15
    while seq.phase is Phase.GRASPING:
        t += 0.05
        actions = seq.update(obs(t, last_command_time=t, grip_settled=True))
    assert seq.phase is Phase.LIFTING and t - (t0 + lift_at + 1.15) >= settle - 1e-9
    assert lift_at <= actions.grasp_time < lift_at + 0.1, "the lift starts from its beginning, not skipped ahead"


def test_a_grip_that_never_settles_fails_the_grasp():
    seq = TaskSequence(grasp_phases=PHASES)
    t = run_to_grasp(seq)
    actions = None
    while seq.phase is Phase.GRASPING:
        t += 0.05
        actions = seq.update(obs(t, last_command_time=t))
    assert seq.phase is Phase.FAILED and actions.stop and "grip did not settle" in seq.reason
    assert "lifting" not in seq.durations


def test_an_answer_within_the_probe_gap_still_reports_probing_then_identifying():
    seq = TaskSequence(grasp_phases=PHASES)
    t = perceive(seq)
    probe_start = seq.phase_start
    for _ in range(20):
        t += 0.05
        seq.update(obs(t, last_command_time=t))
    last_command = t
    t += 0.4 * seq.settings.probe_gap  # identified before the commands' silence counts as the probe's end
    actions = seq.update(obs(t, last_command_time=last_command, identify_done=True, identify_ok=True, mass=0.4))
    assert seq.phase is Phase.GRASPING and actions.start_grasp
    assert seq.durations["probing"] == pytest.approx(last_command - probe_start)
    assert seq.durations["identifying"] == pytest.approx(t - last_command)


def test_the_grasp_waits_for_a_pose_newer_than_the_probe_and_fails_naming_it_if_none_comes():
    seq = TaskSequence(grasp_phases=PHASES)
    t = perceive(seq)
    seen = t
    t += 1.0  # the probe ran, the camera lost the object: the last pose is from before it
    actions = seq.update(obs(t, identify_done=True, identify_ok=True, mass=0.4, object_pose_time=seen))
    assert seq.phase is Phase.PROBING and not actions.start_grasp
    actions = seq.update(obs(t + 1.0, identify_done=True, identify_ok=True, mass=0.4))  # seen again
    assert seq.phase is Phase.GRASPING and actions.start_grasp
    lost = TaskSequence(grasp_phases=PHASES)
    lost.start(0.0)
    lost.phase = Phase.IDENTIFYING
    for k in range(80):
        lost.update(obs(1.0 + 0.05 * k, identify_done=True, identify_ok=True, mass=0.4, object_pose_time=0.2))
    assert lost.phase is Phase.FAILED and "no fresh object pose after the probe (last seen" in lost.reason
