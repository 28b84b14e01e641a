"""Behaviour cloning: a torch MLP from contract observations to hand targets + grip effort.

The network works on normalized values (the contract's obs/action mean and std), which is
exactly what the runtime feeds it. The grip-effort output carries more weight in the loss
than any single joint target, since it is the one number that decides whether a heavy
object is held. The split into training and validation is by episode, so validation
measures generalization to unseen objects, not to unseen frames of a seen one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

HIDDEN = (256, 256, 256)
STD_FLOOR = 1e-2  # constant columns (e.g. a joint the expert never moves) still get a usable scale
EFFORT_WEIGHT = 8.0


class PolicyMLP(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = HIDDEN) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def linear_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight [out, in], bias) of every Linear layer, for the ONNX writer."""
        return [(m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
                for m in self.net if isinstance(m, nn.Linear)]


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 2


@dataclass
class TrainResult:
    model: PolicyMLP
    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_effort_mae: list[float] = field(default_factory=list)  # grip fraction, de-normalized
    seconds: float = 0.0
    n_train: int = 0
    n_val: int = 0


def normalization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR)


def split_by_episode(lengths: np.ndarray, val_fraction: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of training and validation frames, whole episodes to one side."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    order = rng.permutation(len(lengths))
    n_val = max(1, int(round(val_fraction * len(lengths)))) if len(lengths) > 1 else 0
    val_eps, train_eps = order[:n_val], order[n_val:]

    def rows(eps: np.ndarray) -> np.ndarray:
        if len(eps) == 0:
            return np.zeros(0, dtype=int)
        return np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in eps])

    return rows(train_eps), rows(val_eps)


def train_policy(obs: np.ndarray, act: np.ndarray, lengths: np.ndarray, config: TrainConfig | None = None,
                 progress: bool = True) -> TrainResult:
    """Fit the MLP; returns it with the normalization and the loss curves."""
    config = config or TrainConfig()
    if obs.ndim != 2 or act.ndim != 2 or len(obs) != len(act) or int(lengths.sum()) != len(obs):
        raise ValueError(f"inconsistent data: obs {obs.shape}, act {act.shape}, {int(lengths.sum())} frames")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    train_rows, val_rows = split_by_episode(lengths, config.val_fraction, rng)
    obs_mean, obs_std = normalization(obs[train_rows])
    act_mean, act_std = normalization(act[train_rows])
    x = torch.from_numpy(((obs - obs_mean) / obs_std).astype(np.float32))
    y = torch.from_numpy(((act - act_mean) / act_std).astype(np.float32))
    weights = torch.ones(act.shape[1])
    weights[-1] = EFFORT_WEIGHT
    model = PolicyMLP(obs.shape[1], act.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    result = TrainResult(model, obs_mean, obs_std, act_mean, act_std, n_train=len(train_rows), n_val=len(val_rows))
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.monotonic()
    bar = tqdm(range(config.epochs), desc="training", disable=not progress)
    for _ in bar:
        model.train()
        perm = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=gen)]
        total = 0.0
        for i in range(0, len(perm), config.batch_size):
            idx = perm[i:i + config.batch_size]
            loss = (((model(x[idx]) - y[idx]) ** 2) * weights).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        result.train_loss.append(total / max(1, len(perm)))
        model.eval()
        with torch.no_grad():
            if len(val_rows):
                pred = model(x[val_rows])
                result.val_loss.append(float((((pred - y[val_rows]) ** 2) * weights).mean()))
                effort = pred[:, -1].numpy() * act_std[-1] + act_mean[-1]
                result.val_effort_mae.append(float(np.mean(np.abs(effort - act[val_rows, -1]))))
        bar.set_postfix(train=f"{result.train_loss[-1]:.4f}",
                        val=f"{result.val_loss[-1]:.4f}" if result.val_loss else "-")
    result.seconds = time.monotonic() - t0
    return result


def predict(result: TrainResult, obs: np.ndarray) -> np.ndarray:
    """De-normalized actions from the torch model (the reference the ONNX export is checked against)."""
    with torch.no_grad():
        out = result.model(torch.from_numpy(((obs - result.obs_mean) / result.obs_std).astype(np.float32)))
    return out.numpy() * result.act_std + result.act_mean
