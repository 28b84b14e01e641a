"""Training pipeline: the expert's effort search, recorded data, ONNX export round trip, the shipped model."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from drex_ros.core.policy.contract import PolicyContract
from drex_ros.core.policy.runtime import PolicyModel, RuntimeExpectations, check_contract
from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES
from drex_ros.core.sim.scene_build import HAND_KD, HAND_KP
from drex_ros.evaluation.in_process import PolicyController, mass_bins, summarize
from drex_ros.training.behaviour_cloning import TrainConfig, train_policy
from drex_ros.training.dataset import OBS_FIELDS, generate_episode
from drex_ros.training.episode import GraspEpisode, ObjectSample, expert_controller
from drex_ros.training.expert import least_grip_effort
from drex_ros.training.export import check_roundtrip, export_onnx

MODEL = Path(__file__).resolve().parents[1] / "drex_ros" / "models" / "grasp_policy.onnx"
LIGHT = ObjectSample("box", (0.05, 0.05, 0.06), 0.1, 0.8, (0.55, 0.0), 0.0)
HEAVY = ObjectSample("box", (0.05, 0.05, 0.06), 1.0, 0.8, (0.55, 0.0), 0.0)


@pytest.fixture(scope="module")
def labels():
    out = {}
    for name, obj in (("light", LIGHT), ("heavy", HEAVY)):
        episode = GraspEpisode(obj)
        out[name] = (episode, least_grip_effort(episode))
    return out


def test_expert_needs_more_grip_for_the_heavy_object(labels):
    light, heavy = labels["light"][1], labels["heavy"][1]
    assert light.least_effort is not None and heavy.least_effort is not None
    assert heavy.least_effort > light.least_effort + 0.2
    assert light.label_effort > light.least_effort and heavy.label_effort > heavy.least_effort


def test_least_effort_is_the_boundary_of_holding(labels):
    episode, label = labels["heavy"]
    held = episode.run(expert_controller(episode.plan, label.least_effort))
    assert held.success and held.max_lift > 0.12
    too_weak = episode.run(expert_controller(episode.plan, label.least_effort - 0.1))
    assert not too_weak.success and too_weak.dropped_at is not None


# Heavy objects from the training distribution that full effort dropped while the object sat 1.5 cm
# toward the thumb (fingertip contact); centred on the finger axis the hand holds them.
TALL_HEAVY = [
    ObjectSample("box", (0.0538, 0.0539, 0.0824), 1.41, 0.70, (0.525, 0.081), -2.696),
    ObjectSample("cylinder", (0.0281, 0.0864), 1.44, 0.86, (0.586, 0.065), 1.499),
]


@pytest.mark.parametrize("obj", TALL_HEAVY, ids=["box", "cylinder"])
def test_full_effort_holds_a_tall_heavy_object_through_the_shake(obj):
    episode = GraspEpisode(obj)
    result = episode.run(expert_controller(episode.plan, 1.0))
    assert result.success, f"dropped at {result.dropped_at}, max lift {result.max_lift:.3f} m"


def test_recorded_episode_follows_the_contract():
    data = generate_episode(3)
    assert data is not None
    obs_dim = sum(f.size for f in OBS_FIELDS)
    assert data.obs.shape[1] == obs_dim and data.act.shape == (len(data.obs), len(HAND_JOINTS) + 1)
    names = [f.name for f in OBS_FIELDS]
    k = sum(f.size for f in OBS_FIELDS[:names.index("object_mass")])
    assert np.allclose(data.obs[:, k], data.obj.mass)
    assert np.allclose(data.obs[:, k + 1], data.obj.friction)
    assert np.all(np.diff(data.obs[:, -1]) > 0)  # phase time runs forward
    assert np.all((data.act[:, -1] >= 0) & (data.act[:, -1] <= 1))
    assert data.act[-1, -1] == pytest.approx(data.label_effort)


def test_export_round_trip_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    obs_dim = sum(f.size for f in OBS_FIELDS)
    obs = rng.normal(size=(600, obs_dim)).astype(np.float32)
    act = np.tanh(obs[:, :17] + obs[:, -1:]).astype(np.float32)
    result = train_policy(obs, act, np.array([200, 200, 200]), TrainConfig(epochs=2, threads=1), progress=False)
    path = tmp_path / "p.onnx"
    data = export_onnx(result, path)
    assert path.read_bytes() == data
    assert check_roundtrip(result, data, obs[:50]) < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    contract = PolicyContract.from_metadata(meta)
    assert np.allclose(contract.obs_mean, result.obs_mean) and np.allclose(contract.action_std, result.act_std)
    assert contract.grip_effort == list(HAND_JOINTS) and "object_mass" in contract.field_names()


def test_summary_counts_per_bin():
    from drex_ros.evaluation.in_process import ObjectOutcome

    bins = mass_bins()
    assert len(bins) == 5 and bins[0][0] == pytest.approx(0.05) and bins[-1][1] == pytest.approx(1.5)
    outs = [ObjectOutcome(0, LIGHT, 0.2, {"true": True}, {"true": 0.4}, {"true": 0.1}, {"true": "held"},
                          {"true": 10.0}),
            ObjectOutcome(0, LIGHT, None, {"true": False}, {"true": 1.0}, {"true": 0.1}, {"true": "dropped"},
                          {"true": 30.0}, feasible=False),
            ObjectOutcome(0, LIGHT, 0.1, {"true": False}, {"true": 1.0}, {"true": 0.1}, {"true": "crushed"},
                          {"true": 50.0}, feasible=False)]
    s = summarize(outs, bins, ["true"])
    assert s["episodes_per_bin"][:2] == [3, 0]
    assert s["success"]["true"][0] == pytest.approx(1 / 3) and s["liftable_fraction"][0] == pytest.approx(2 / 3)
    assert s["feasible_fraction"][0] == pytest.approx(1 / 3)
    assert s["dropped"]["true"][0] == pytest.approx(1 / 3) and s["crushed"]["true"][0] == pytest.approx(1 / 3)
    assert s["peak_squeeze_n"]["true"][0] == pytest.approx(30.0)
    assert s["grip_over_least"]["true"][0] == pytest.approx((2.0 + 10.0) / 2)


@pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model yet")
class TestShippedModel:
    def test_size_and_contract(self):
        assert MODEL.stat().st_size < 5e6
        model = PolicyModel(MODEL)
        names = model.contract.field_names()
        assert "object_mass" in names and "object_friction" in names
        assert model.contract.position_targets == list(HAND_JOINTS)
        gains = {j: {"kp": HAND_KP, "kd": HAND_KD} for j in HAND_JOINTS}
        expect = RuntimeExpectations(control_rate_hz=50.0, gains=gains)
        assert check_contract(model.contract, JOINT_NAMES, expect) == []

    def test_grip_grows_with_mass(self, labels):
        episode, _ = labels["light"]
        model = PolicyModel(MODEL)
        # A real state at the end of the close phase (reached with the policy itself) ...
        t_closed = episode.plan.phases()["close"][1]
        run = episode.run(PolicyController(model, LIGHT, LIGHT.mass, LIGHT.friction), until=t_closed, record=True)
        info = run.records[-1][0]
        # ... where only the mass the policy is told changes.
        grips = [PolicyController(model, LIGHT, mass, LIGHT.friction)(info)[1] for mass in (0.1, 0.5, 1.0, 1.4)]
        assert grips[-1] > grips[0] + 0.3
        assert all(b > a - 0.02 for a, b in zip(grips, grips[1:], strict=False))

    def test_true_mass_lifts_heavy_and_a_light_belief_drops_it(self, labels):
        episode, _ = labels["heavy"]
        model = PolicyModel(MODEL)
        assert episode.run(PolicyController(model, HEAVY, HEAVY.mass, HEAVY.friction)).success
        assert not episode.run(PolicyController(model, HEAVY, 0.1, HEAVY.friction)).success


@pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model yet")
def test_eval_command_json_keys(tmp_path, capsys):
    import argparse
    import json

    from drex_ros.evaluation import eval_command

    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    args = parser.parse_args(["--episodes-per-bin", "1", "--workers", "1", "--json", "--plot",
                              str(tmp_path / "eval.png")])
    assert eval_command.run(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bins"] == [list(b) for b in mass_bins()]
    assert report["episodes_per_bin"] == [1] * 5
    for cond in ("true", "stand_in", "nominal", "fallback"):
        rates = report[f"success_{cond}_mass"], report["dropped"][cond], report["crushed"][cond]
        assert all(len(r) == 5 and all(0.0 <= v <= 1.0 for v in r) for r in rates)
        assert all(h + d + c == pytest.approx(1.0) for h, d, c in zip(*rates, strict=True))
    assert "success_identified_mass" not in report  # only the node chain's probes identify
    assert "not an identification" in report["stand_in_mass_source"] and report["fallback_mass"] == 1.2
    assert (tmp_path / "eval.png").stat().st_size > 10_000


def test_eval_command_refuses_a_missing_model(tmp_path, capsys):
    import argparse

    from drex_ros.evaluation import eval_command

    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    assert eval_command.run(parser.parse_args(["--model", str(tmp_path / "none.onnx")])) == 2
    assert "no model" in capsys.readouterr().err
