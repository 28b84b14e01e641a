"""Compose the Panda + Allegro description from the installed example-robot-data package.

The robot files are not copied into the repository: this module reads the Panda arm
and the Allegro right hand URDFs that `example-robot-data` installs, removes the Panda
gripper, mounts the hand on the arm's flange and writes one URDF. Pinocchio and MuJoCo
both load that one file, so joint names, order and limits are identical by construction.

Edits made to the source files, and why:
- Visual elements are dropped: the Panda's visual meshes are .dae, which MuJoCo cannot
  read, and the collision geometry is what both simulators use.
- Mesh paths become absolute file paths (MuJoCo does not resolve package:// URIs).
- Allegro effort limits are set to 0.7 N*m (the real hand's order of magnitude; the
  upstream file says 15) and its joint friction/damping to small values, because the
  upstream friction of 5-10 N*m would freeze a 0.7 N*m finger.
- A <mujoco> block carries the compiler options MuJoCo needs (keep mesh paths, balance
  the Allegro's inconsistent inertias, keep fixed-joint links such as fingertips).
"""

from __future__ import annotations

import copy
import functools
import os
import xml.etree.ElementTree as ET
from pathlib import Path

ALLEGRO_EFFORT_NM = 0.7
ALLEGRO_DAMPING = 0.05
# Palm base of the Allegro sits 0.095 m below its palm_link origin.
HAND_MOUNT_XYZ = "0 0 0.095"
HAND_MOUNT_RPY = "0 0 0"
PANDA_GRIPPER_LINKS = {"panda_hand", "panda_hand_tcp", "panda_leftfinger", "panda_rightfinger"}
PACKAGE_PREFIX = "package://example-robot-data/robots/"


def robots_dir() -> Path:
    """Folder where example-robot-data installed its robots."""
    import importlib.metadata as metadata

    try:
        dist = metadata.distribution("example-robot-data")
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError("the example-robot-data package is not installed") from exc
    path = Path(dist.locate_file("cmeel.prefix/share/example-robot-data/robots"))
    if not path.is_dir():
        raise FileNotFoundError(f"example-robot-data robots not found at {path}")
    return path


def _absolutize_meshes(root: ET.Element, robots: Path) -> None:
    for mesh in root.iter("mesh"):
        name = mesh.get("filename", "")
        if name.startswith(PACKAGE_PREFIX):
            mesh.set("filename", str(robots / name[len(PACKAGE_PREFIX):]))


def _drop_visuals(root: ET.Element) -> None:
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            link.remove(visual)


def _panda_arm(robots: Path) -> ET.Element:
    root = ET.parse(robots / "panda_description/urdf/panda.urdf").getroot()
    for link in list(root.findall("link")):
        if link.get("name") in PANDA_GRIPPER_LINKS:
            root.remove(link)
    for joint in list(root.findall("joint")):
        if joint.find("child").get("link") in PANDA_GRIPPER_LINKS:
            root.remove(joint)
    for material in list(root.findall("material")):
        root.remove(material)
    return root


def _allegro_hand(robots: Path) -> ET.Element:
    root = ET.parse(robots / "allegro_hand_description/urdf/allegro_right_hand.urdf").getroot()
    for joint in root.findall("joint"):
        if joint.get("type") != "revolute":
            continue
        joint.find("limit").set("effort", str(ALLEGRO_EFFORT_NM))
        dynamics = joint.find("dynamics")
        if dynamics is not None:
            dynamics.set("damping", str(ALLEGRO_DAMPING))
            dynamics.set("friction", "0")
    return root


def _mount_joint() -> ET.Element:
    joint = ET.Element("joint", name="allegro_mount", type="fixed")
    ET.SubElement(joint, "parent", link="panda_link8")
    ET.SubElement(joint, "child", link="palm_link")
    ET.SubElement(joint, "origin", xyz=HAND_MOUNT_XYZ, rpy=HAND_MOUNT_RPY)
    return joint


def _mujoco_block() -> ET.Element:
    block = ET.Element("mujoco")
    ET.SubElement(
        block,
        "compiler",
        strippath="false",
        balanceinertia="true",
        discardvisual="true",
        fusestatic="false",
        angle="radian",
    )
    return block


@functools.lru_cache(maxsize=1)
def robot_urdf() -> str:
    """The composed Panda + Allegro URDF as a string (mesh paths absolute)."""
    robots = robots_dir()
    arm = _panda_arm(robots)
    hand = _allegro_hand(robots)
    robot = ET.Element("robot", name="panda_allegro")
    robot.append(_mujoco_block())
    for part in (arm, hand):
        for child in part:
            if child.tag in ("link", "joint"):
                robot.append(copy.deepcopy(child))
    robot.append(_mount_joint())
    _drop_visuals(robot)
    _absolutize_meshes(robot, robots)
    ET.indent(robot)
    return ET.tostring(robot, encoding="unicode")


def write_urdf(path: str | os.PathLike) -> Path:
    """Write the composed URDF to `path` (used at install time and by `drex urdf`)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('<?xml version="1.0"?>\n' + robot_urdf())
    return out
