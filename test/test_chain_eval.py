"""One grasp episode of `drex eval --chain` through the real nodes (sim_node, policy_node,
smoother_node, safety_node, each its own process, over DDS), judged by the ground truth."""

import rclpy

from drex_ros.evaluation.chain_eval import run_chain_episode
from drex_ros.evaluation.eval_command import MODELS_DIR
from drex_ros.evaluation.in_process import eval_object, mass_bins, object_seed


def test_a_node_chain_grasp_given_the_true_mass_lifts_and_holds(tmp_path):
    bins = mass_bins()
    episode, masses = eval_object(bins[2], object_seed(1000, 2, 0), 0.5, 0.1)
    obj = episode.obj
    log = tmp_path / "nodes.log"
    rclpy.init()
    try:
        out = run_chain_episode(obj, masses["true"], str(MODELS_DIR / "grasp_policy.onnx"), log=log)
    finally:
        rclpy.shutdown()
    assert out.started, f"{out.problem}\n{log.read_text()[-3000:]}"
    assert out.success, f"{out}\n{log.read_text()[-3000:]}"
    assert out.max_lift >= 0.10 and 0.0 < out.peak_grip <= 1.0
