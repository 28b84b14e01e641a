"""Files of an object model: the closed mesh, the convex parts, an MJCF fragment, a JSON summary
and a PNG of the views, the fused cloud and the model.

Meshes are written in the object frame: origin on the table under the centre of the object's
footprint, z up, the world's yaw (what the simulator places with a free joint). The MJCF body
collides with the primitive where one was chosen, else with the convex parts, and shows the mesh.
The mass is left out: it is the mass identifier's to say.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import trimesh

from drex_ros.core.reconstruction.pipeline import ObjectModel


def object_origin(model: ObjectModel) -> np.ndarray:
    """World position of the object frame: footprint centre, on the table."""
    lo, hi = model.mesh.bounds
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, model.cloud.table_z])


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def mjcf_fragment(model: ObjectModel, name: str, mesh_file: str, part_files: list[str]) -> str:
    """A <mujoco> document with the object's assets and one free body named `name`."""
    origin = object_origin(model)
    root = ET.Element("mujoco", model=name)
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "mesh", name=f"{name}_visual", file=mesh_file)
    body = ET.SubElement(ET.SubElement(root, "worldbody"), "body", name=name, pos=_fmt(origin))
    ET.SubElement(body, "freejoint", name=f"{name}_free")
    ET.SubElement(body, "geom", type="mesh", mesh=f"{name}_visual", contype="0", conaffinity="0", group="1",
                  mass="0")
    fit = model.choice.fit
    if fit is not None:
        size = {"box": np.asarray(fit.size) / 2, "cylinder": [fit.size[0], fit.size[1] / 2],
                "sphere": fit.size}[fit.kind]
        ET.SubElement(body, "geom", name=f"{name}_collision", type=fit.kind, size=_fmt(size),
                      pos=_fmt(fit.centre - origin), euler=_fmt([0, 0, fit.yaw]), group="3")
    for i, part_file in enumerate(part_files):
        ET.SubElement(asset, "mesh", name=f"{name}_part{i}", file=part_file)
        ET.SubElement(body, "geom", name=f"{name}_collision{i}", type="mesh", mesh=f"{name}_part{i}", group="3")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def summary(model: ObjectModel, name: str) -> dict:
    fit = model.choice.fit
    return {"name": name, "frames": len(model.frames), "points": int(len(model.cloud.points)),
            "table_z_m": model.cloud.table_z, "origin_m": object_origin(model).tolist(),
            "extents_m": model.extents.tolist(), "volume_m3": model.volume,
            "mesh_volume_m3": float(model.mesh.volume), "watertight": bool(model.mesh.is_watertight),
            "closed_by": model.mesh.metadata.get("closed_by", ""),
            "primitive": {"kind": model.choice.kind, "size_m": list(fit.size) if fit else None,
                          "yaw_rad": fit.yaw if fit else None},
            "fit_residual_mm": {k: {"p90": 1e3 * f.p90, "p99": 1e3 * f.p99} for k, f in model.choice.fits.items()},
            "collision_parts": len(model.parts), "timings_s": model.timings}


def write_model(model: ObjectModel, out_dir: str | Path, name: str = "object", png: bool = True) -> dict[str, Path]:
    """Write mesh, parts, MJCF, JSON (and the PNG) into out_dir; returns their paths."""
    out = Path(out_dir)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    to_object = trimesh.transformations.translation_matrix(-object_origin(model))
    paths = {"mesh": out / f"{name}.obj", "stl": out / f"{name}.stl", "mjcf": out / f"{name}.xml",
             "summary": out / f"{name}.json"}
    mesh = model.mesh.copy().apply_transform(to_object)
    mesh.export(paths["mesh"])
    mesh.export(paths["stl"])
    part_files = []
    for i, part in enumerate(model.parts):
        part_files.append(f"parts/{name}_part{i}.stl")
        part.copy().apply_transform(to_object).export(out / part_files[-1])
    paths["mjcf"].write_text(mjcf_fragment(model, name, paths["stl"].name, part_files))
    paths["summary"].write_text(json.dumps(summary(model, name), indent=1))
    if png:
        from drex_ros.core.reconstruction.figure import draw

        paths["png"] = out / f"{name}.png"
        draw(model, paths["png"])
    return paths
