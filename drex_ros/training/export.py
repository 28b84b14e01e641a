"""ONNX export of a trained policy with the contract's metadata, and the round-trip check.

The graph is written from the trained weights by `core.policy_build.build_mlp_policy`
(Gemm + Relu, input `obs`, output `action`), the same writer the runtime's tests use, so
the file needs no exporter beyond onnx itself; `check_roundtrip` then runs it in ONNX
Runtime through the runtime's `PolicyModel` and compares with torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drex_ros.core.policy.build import build_mlp_policy
from drex_ros.core.policy.contract import PolicyContract
from drex_ros.core.policy.runtime import PolicyModel
from drex_ros.training.behaviour_cloning import TrainResult, predict
from drex_ros.training.dataset import base_contract


def trained_contract(result: TrainResult) -> PolicyContract:
    contract = base_contract(result.obs_mean.astype(float), result.obs_std.astype(float),
                             result.act_mean.astype(float), result.act_std.astype(float))
    contract.validate()
    return contract


def export_onnx(result: TrainResult, path: str | Path | None = None) -> bytes:
    """ONNX bytes of the trained MLP with contract metadata; written to `path` if given."""
    data = build_mlp_policy(trained_contract(result), result.model.linear_layers(), activation="Relu")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def check_roundtrip(result: TrainResult, onnx_bytes: bytes, obs: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime (via PolicyModel.act) and torch on `obs` rows."""
    model = PolicyModel(onnx_bytes)
    ort_out = np.array([model.act(o) for o in obs])
    return float(np.max(np.abs(ort_out - predict(result, obs))))
