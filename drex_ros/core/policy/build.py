"""Write an MLP with given weights as a contract-following ONNX policy (onnx.helper, no torch).

Used by tests (small models with known weights, so outputs are checked exactly), by
`drex bench chain` (an MLP of the shipped size), and as a reference for the metadata a
trained model must carry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from drex_ros.core.policy.contract import PolicyContract
from drex_ros.core.policy.runtime import INPUT_NAME, OUTPUT_NAME

OPSET = 17


def build_mlp_policy(contract: PolicyContract, layers: Sequence[tuple[np.ndarray, np.ndarray]],
                     activation: str = "Relu") -> bytes:
    """ONNX bytes of y = W_n(act(... act(W_1 x + b_1) ...)) + b_n with W_i of shape [out, in].

    The activation (an ONNX op name such as Relu, Tanh, Elu) follows every layer but the last.
    """
    contract.validate()
    nodes, inits = [], []
    width = contract.obs_dim
    current = INPUT_NAME
    for k, (w, b) in enumerate(layers):
        w, b = np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
            raise ValueError(f"layer {k}: weight {w.shape} / bias {b.shape} do not follow width {width}")
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"b{k}")]
        last = k == len(layers) - 1
        out = OUTPUT_NAME if last else f"h{k}"
        # Gemm with transB computes x @ W^T + b, the usual [out, in] weight layout.
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [out if last else f"z{k}"], transB=1))
        if not last:
            nodes.append(helper.make_node(activation, [f"z{k}"], [out]))
        current, width = out, w.shape[0]
    if width != contract.act_dim:
        raise ValueError(f"last layer has {width} outputs, the contract's action has {contract.act_dim}")
    graph = helper.make_graph(
        nodes, "drex_policy",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", contract.obs_dim])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", contract.act_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="drex")
    model.ir_version = 8
    helper.set_model_props(model, contract.to_metadata())
    onnx.checker.check_model(model)
    return model.SerializeToString()


def random_mlp_layers(obs_dim: int, act_dim: int, hidden: Sequence[int], seed: int = 0,
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-initialized weights for an MLP of the given hidden widths (for benchmarks)."""
    rng = np.random.default_rng(seed)
    sizes = [obs_dim, *hidden, act_dim]
    return [(rng.normal(0, np.sqrt(2.0 / n_in), (n_out, n_in)), rng.normal(0, 0.01, n_out))
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
