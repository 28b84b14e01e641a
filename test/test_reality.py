"""The reality layer (core/sim/reality.py): each factor changes what the simulator does or reports
the way it should, and the default changes nothing."""

import numpy as np
import pytest

from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.core.sim.hardware import SimulatedHardware, with_reality_camera
from drex_ros.core.sim.hardware_faults import FaultConfig
from drex_ros.core.sim.reality import ARM_LINKS, Reality, draw, reality_from
from drex_ros.core.sim.scene import NominalGravity, Scene, SceneConfig

J2 = JOINT_NAMES.index("panda_joint2")


def _scene(**fields) -> Scene:
    return Scene(SceneConfig(reality=Reality(**fields)))


def _rest(scene: Scene, steps: int = 500) -> np.ndarray:
    scene.step(steps)
    return scene.joint_efforts()


def _swing(scene: Scene, joint: int = 0, speed: float = 0.3, steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Joint `joint` driven at `speed` rad/s: (efforts, velocities) over the last half of the motion."""
    q0 = scene.joint_positions()
    eff, vel = [], []
    for k in range(steps):
        q = q0.copy()
        q[joint] += speed * k * scene.timestep
        scene.set_targets(q)
        scene.step()
        if k > steps // 2:
            eff.append(scene.joint_efforts())
            vel.append(scene.joint_velocities())
    return np.array(eff), np.array(vel)


def test_the_default_reality_is_the_nominal_simulator_bit_for_bit():
    plain, default = Scene(), _scene()
    for s in (plain, default):
        s.set_targets(s.joint_positions() + 0.05)
        s.step(300)
    assert np.array_equal(plain.joint_positions(), default.joint_positions())
    assert np.array_equal(plain.joint_efforts(), default.joint_efforts())
    assert Reality().is_exact and not draw(np.random.default_rng(0)).is_exact


def test_an_effort_offset_shows_in_the_reported_effort_at_rest():
    offset = np.zeros(7)
    offset[1] = 0.3
    diff = _rest(_scene(effort_offset=tuple(offset))) - _rest(Scene())
    np.testing.assert_allclose(diff[:7], offset, atol=1e-9)
    assert np.all(diff[7:] == 0)


def test_effort_noise_has_its_sigma_and_no_mean():
    scene = _scene(effort_noise=(0.05,) * 7, seed=3)
    exact = Scene()
    diffs = []
    for _ in range(400):
        scene.step()
        exact.step()
        diffs.append(scene.joint_efforts()[:7] - exact.joint_efforts()[:7])
    diffs = np.array(diffs)
    assert np.std(diffs, axis=0) == pytest.approx(np.full(7, 0.05), rel=0.15)
    assert np.all(np.abs(diffs.mean(axis=0)) < 0.01)


def test_with_gravity_reports_the_gravity_torque():
    scene = _scene(effort_semantics="with_gravity")
    gravity = NominalGravity(scene.config).torques(scene.joint_positions())
    diff = _rest(scene) - _rest(Scene())
    assert abs(gravity[J2]) > 5.0  # the shoulder carries the arm
    np.testing.assert_allclose(diff[:7], gravity[:7], atol=2e-3 * np.abs(gravity[:7]).max())


def test_friction_shows_in_motor_side_efforts_when_moving_not_in_link_side():
    coulomb = (0.8, 0, 0, 0, 0, 0, 0)
    base, _ = _swing(Scene())
    motor, vel = _swing(_scene(joint_frictionloss=coulomb, friction_side="motor_side"))
    link, _ = _swing(_scene(joint_frictionloss=coulomb, friction_side="link_side"))
    assert np.all(vel[:, 0] > 0.1)
    assert np.median(motor[:, 0] - base[:, 0]) == pytest.approx(0.8, abs=0.08)  # the motor overcomes it
    assert abs(np.median(link[:, 0] - base[:, 0])) < 0.08  # the link sees only what moves it
    assert np.median(_rest(_scene(joint_frictionloss=coulomb))[0]) == pytest.approx(_rest(Scene())[0], abs=0.8)


def test_viscous_damping_shows_in_motor_side_efforts_in_proportion_to_speed():
    base, _ = _swing(Scene())
    motor, vel = _swing(_scene(joint_damping=(2.0, 0, 0, 0, 0, 0, 0)))
    assert np.median(motor[:, 0] - base[:, 0]) == pytest.approx(2.0 * np.median(vel[:, 0]), rel=0.15)
    link, _ = _swing(_scene(joint_damping=(2.0, 0, 0, 0, 0, 0, 0), friction_side="link_side"))
    assert abs(np.median(link[:, 0] - base[:, 0])) < 0.05


def test_a_heavier_hand_loads_the_arm_by_its_extra_weight():
    scene = _scene(hand_mass_scale=1.05)
    nominal = Scene()
    hand = [scene.model.body(n).id for n in ("palm_link", "link_0.0", "link_15.0_tip")]
    np.testing.assert_allclose(scene.model.body_mass[hand], 1.05 * nominal.model.body_mass[hand])
    # the drivers still compensate the nominal hand: the PD carries the extra ~48 g
    diff = _rest(scene, 1500) - _rest(nominal, 1500)
    true_g = NominalGravity(SceneConfig())  # the nominal model, to compare against the true one below
    q = scene.joint_positions()
    scene_g = _gravity_of(scene, q)
    np.testing.assert_allclose(diff[:7], scene_g[:7] - true_g.torques(q)[:7], atol=0.02)
    assert abs(diff[J2]) > 0.1


def _gravity_of(scene: Scene, q: np.ndarray) -> np.ndarray:
    import mujoco

    data = mujoco.MjData(scene.model)
    data.qpos[:] = scene.data.qpos
    mujoco.mj_kinematics(scene.model, data)
    mujoco.mj_comPos(scene.model, data)
    out = np.zeros(scene.model.nv)
    mujoco.mj_rne(scene.model, data, 0, out)
    return out[[scene.model.joint(n).dofadr[0] for n in JOINT_NAMES]]


def test_link_inertials_are_scaled_and_offset():
    com = tuple((0.0, 0.0, 0.004) if i == 3 else (0.0, 0.0, 0.0) for i in range(7))
    scene = _scene(link_mass_scale=(1.0, 1.0, 1.0, 1.04, 1.0, 1.0, 1.0), link_com_offset=com,
                   link_inertia_scale=(1.0, 1.0, 1.0, 1.1, 1.0, 1.0, 1.0))
    nominal = Scene()
    b = scene.model.body(ARM_LINKS[3]).id
    assert scene.model.body_mass[b] == pytest.approx(1.04 * nominal.model.body_mass[b])
    assert scene.model.body_ipos[b] == pytest.approx(nominal.model.body_ipos[b] + [0, 0, 0.004], abs=1e-3)
    assert np.sum(scene.model.body_inertia[b]) == pytest.approx(1.1 * np.sum(nominal.model.body_inertia[b]))
    assert abs((_rest(scene, 1500) - _rest(nominal, 1500))[J2]) > 0.05  # and the efforts show it


def test_actuator_delay_holds_commands_back():
    delayed, exact = _scene(actuator_delay=0.01), Scene()  # 5 steps
    for s in (delayed, exact):
        q = s.joint_positions()
        q[0] += 0.1
        s.set_targets(q)
        s.step(4)
    assert abs(exact.joint_efforts()[0]) > 1.0 and delayed.joint_efforts()[0] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_array_equal(delayed.targets(), exact.targets())  # what was commanded


def test_physics_options_change_the_model():
    scene = _scene(timestep=0.0005, cone="pyramidal", contact_solref=(0.01, 0.9), contact_solimp=(0.9, 0.97, 0.001))
    import mujoco

    assert scene.model.opt.timestep == 0.0005 and scene.timestep == 0.0005
    assert scene.model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    g = scene.model.geom("object_geom").id
    np.testing.assert_allclose(scene.model.geom_solref[g], [0.01, 0.9])
    np.testing.assert_allclose(scene.model.geom_solimp[g][:3], [0.9, 0.97, 0.001])


def test_the_object_com_and_inertia_are_perturbed():
    scene = _scene(object_com_offset=(0.2, 0.0, -0.1), object_inertia_scale=(1.2, 0.8, 1.0))
    nominal = Scene()
    b = scene.model.body("object").id
    np.testing.assert_allclose(scene.model.body_ipos[b], [0.2 * 0.03, 0.0, -0.1 * 0.03], atol=1e-9)
    assert scene.model.body_mass[b] == nominal.model.body_mass[b]
    assert not np.allclose(scene.model.body_inertia[b], nominal.model.body_inertia[b])


def test_the_camera_part_reaches_the_simulated_camera():
    faults = with_reality_camera(FaultConfig(camera_latency=0.01), Reality(camera_latency=0.05,
                                                                           camera_drop_probability=0.2))
    assert faults.camera_latency == 0.05 and faults.camera_drop_probability == 0.2
    hw = SimulatedHardware(SceneConfig(reality=Reality(camera_drop_probability=1.0)), camera_rate=0.0)
    assert hw.faults.config.camera_drop_probability == 1.0 and hw.faults.drop_frame()
    hw.close()


def test_draw_is_reproducible_plausible_and_round_trips_through_yaml(tmp_path):
    a, b = draw(np.random.default_rng(7)), draw(np.random.default_rng(7))
    assert a == b and a != draw(np.random.default_rng(8))
    assert a.friction_side == "link_side" and max(np.abs(a.effort_offset)) <= 0.3
    assert all(0.94 <= s <= 1.06 for s in a.link_mass_scale) and 0.94 <= a.hand_mass_scale <= 1.06
    assert Reality.load(a.save(tmp_path / "r.yaml")) == a
    assert reality_from("perturbed", 7) == a and reality_from("exact", 7).is_exact
    assert reality_from("exact", path=str(tmp_path / "r.yaml")) == a
    Scene(SceneConfig(reality=a)).step(200)  # a drawn reality builds and runs
    with pytest.raises(ValueError, match="effort_semantics"):
        Reality(effort_semantics="raw").validate()
    with pytest.raises(ValueError, match="unknown reality fields"):
        Reality.from_dict({"efort_offset": [0.0] * 7})
