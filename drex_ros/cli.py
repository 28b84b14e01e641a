"""The `drex` command. Each subcommand lives in its own module, imported only when used.

A command module provides `add_arguments(parser)` and `run(args) -> int` (the exit code).
`drex bench NAME` runs the benchmark module drex_ros.bench.NAME the same way. Anything from
`--ros-args` on (what launch_ros appends) is kept out of argparse and handed to the
command as `args.ros_args`, for rclpy.init.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "bringup": ("drex_ros.commands.bringup", "run all nodes in one process (no ROS 2 CLI needed)"),
    "demo": ("drex_ros.commands.demo", "the whole loop in simulation for several objects"),
    "identify": ("drex_ros.commands.identify", "identify an object's mass from a recorded MCAP bag"),
    "record": ("drex_ros.commands.record", "record the stack's topics to an MCAP bag"),
    "reconstruct": ("drex_ros.commands.reconstruct", "object mesh, collision parts, MJCF and primitive from a scan "
                    "bag"),
    "replay": ("drex_ros.commands.replay", "re-simulate a recorded bag, or replay it through a policy"),
    "train": ("drex_ros.training.train_command", "generate grasp data, train and export the policy"),
    "eval": ("drex_ros.evaluation.eval_command", "evaluate the grasp policy per mass bin"),
    "calibrate-camera": ("drex_ros.commands.calibrate_camera", "camera extrinsics from a marker board"),
    "calibrate-robot": ("drex_ros.commands.calibrate_robot", "arm effort offsets and joint friction from an "
                        "excitation bag"),
    "excite": ("drex_ros.commands.excite", "calibrate the robot through the running stack (excitation motion)"),
    "urdf": ("drex_ros.commands.urdf", "write the composed Panda + Allegro URDF"),
    "sim": ("drex_ros.commands.sim", "run the sim node and move the robot through a few poses"),
}
BENCHES: dict[str, str] = {
    "sim": "physics and rendering speed of the scene",
    "chain": "policy -> smoother -> safety latency",
    "perception": "object pose accuracy and speed against ground truth",
    "massid": "mass identification accuracy and wall time",
    "calibration": "robot calibration: planted effort offsets and friction recovered within 2 std",
    "loop": "whole episodes reaching done, idle and under a CPU hog, one process and per node",
    "reconstruct": "object shape from RGB-D: chamfer, extents, volume, primitive choice, time",
    "safety": "safety clamp: promises on random event sequences, burst speed, watchdog over DDS",
}


def _usage() -> str:
    lines = ["usage: drex COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["  bench NAME        " + ", ".join(f"{n}" for n in BENCHES) + " (add --json for one JSON object)"]
    return "\n".join(lines)


def _bench_usage() -> str:
    lines = ["usage: drex bench NAME [options]   (drex bench NAME --help for its options)", "", "benches:"]
    return "\n".join(lines + [f"  {name:<12} {help_}" for name, help_ in BENCHES.items()])


def _first_paragraph(doc: str | None) -> str:
    """A module docstring's first paragraph as one line: argparse's description."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _load(module_name: str, label: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"drex: '{label}' is not available in this build", file=sys.stderr)
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ros_args: list[str] = []
    if "--ros-args" in argv:
        cut = argv.index("--ros-args")
        argv, ros_args = argv[:cut], argv[cut:]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "bench":
        if not rest or rest[0] not in BENCHES:
            asked_help = rest[:1] in (["-h"], ["--help"])
            print(_bench_usage(), file=sys.stdout if asked_help else sys.stderr)
            return 0 if asked_help else 2
        name, rest, module_name = f"bench {rest[0]}", rest[1:], f"drex_ros.bench.{rest[0]}"
    elif name in COMMANDS:
        module_name = COMMANDS[name][0]
    else:
        print(f"drex: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = _load(module_name, name)
    if module is None:
        return 2
    parser = argparse.ArgumentParser(prog=f"drex {name}", description=_first_paragraph(module.__doc__))
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    args.ros_args = ros_args
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
