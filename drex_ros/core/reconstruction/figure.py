"""One PNG of a reconstruction: a few depth views, the fused object cloud and the model's surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drex_ros.core.reconstruction.pipeline import ObjectModel


def draw(model: ObjectModel, path: str | Path, views: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(0, len(model.frames) - 1, min(views, len(model.frames))).astype(int)
    fig = plt.figure(figsize=(4 * (len(picks) + 2), 4))
    for i, k in enumerate(picks):
        ax = fig.add_subplot(1, len(picks) + 2, i + 1)
        depth = np.where(model.frames[k].depth > 0, model.frames[k].depth, np.nan)
        ax.imshow(depth, cmap="viridis")
        ax.set_title(f"depth {model.frames[k].source or k}")
        ax.axis("off")
    pts = model.cloud.points[:: max(1, len(model.cloud.points) // 4000)]
    ax = fig.add_subplot(1, len(picks) + 2, len(picks) + 1, projection="3d")
    ax.scatter(*pts.T, s=1, c=pts[:, 2], cmap="viridis")
    ax.set_title(f"fused cloud ({len(model.cloud.points)} points)")
    surface = model.surface
    ax = fig.add_subplot(1, len(picks) + 2, len(picks) + 2, projection="3d")
    ax.plot_trisurf(*surface.vertices.T, triangles=surface.faces, color="0.8", edgecolor="none")
    ax.set_title(f"model: {model.choice.kind}")
    for a in fig.axes[len(picks):]:
        a.set_box_aspect(np.ptp(model.cloud.points, axis=0))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
