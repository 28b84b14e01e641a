"""Bring up the drex stack: ros2 launch drex bringup.launch.py [sim:=true] [record:=false] ...

Starts perception_node, mass_id_node, policy_node, smoother_node, safety_node and
task_node, each with its parameter file from config_dir; with sim:=true (the default)
also sim_node, the MuJoCo mirror of the arm, hand and camera drivers. With sim:=false
nothing that pretends to be hardware is started. robot:=<name> (default sim) selects
config_dir/robots/<name>/: its params.yaml and site.yaml go after each node's file; a driver
profile adds joint_state_merger_node, remaps the stack to its merged state, and with sim:=true
plays its drivers on the sim (driver_personality_node; sim_node moved off the drivers' topics).
chain:=fused (the default) runs policy, smoother and safety as one process, chain_node, whose
stages call each other directly (DDS only at the edges: less latency, a fraction of the CPU);
chain:=separate runs them as three nodes, for debugging. Both read the same parameter files.
"""

import os
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

# node name -> its parameter file in config_dir
STACK = {"perception_node": "perception.yaml", "mass_id_node": "mass_id.yaml", "policy_node": "policy.yaml",
         "smoother_node": "smoother.yaml", "safety_node": "safety.yaml", "task_node": "task.yaml"}
CHAIN = ("policy_node", "smoother_node", "safety_node")  # chain:=fused runs these in chain_node
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


def _flag(context, name: str, allow_auto: bool = False) -> bool | None:
    """A boolean launch argument; None for auto. A typo (sim:=ture) is an error, not a silent false."""
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if allow_auto and value in ("", "auto"):
        return None
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    allowed = "true or false" + (" or auto" if allow_auto else "")
    raise ValueError(f"launch argument {name}:={value!r} must be {allowed}")


def _file_parameters(path: str, node: str) -> dict:
    """The ros__parameters of `node` in a parameter file ({} if the file or the node is absent)."""
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    return (doc.get(node) or doc.get("/" + node) or {}).get("ros__parameters") or {}


def _profile(config_dir: str, robot: str) -> tuple[str, dict]:
    folder = os.path.join(config_dir, "robots", robot)
    path = os.path.join(folder, "profile.yaml")
    if not os.path.isfile(path):
        raise ValueError(f"launch argument robot:={robot!r}: no {path}")
    with open(path) as f:
        return folder, yaml.safe_load(f) or {}


def _nodes(context, *args, **kwargs):
    sim = _flag(context, "sim")
    use_sim_time = _flag(context, "use_sim_time", allow_auto=True)
    use_sim_time = sim if use_sim_time is None else use_sim_time
    config_dir = LaunchConfiguration("config_dir").perform(context)
    if not os.path.isdir(config_dir):
        # launch_ros would only warn per file and start every node on built-in defaults
        raise ValueError(f"launch argument config_dir:={config_dir!r} is not a folder")
    policy_model = LaunchConfiguration("policy_model").perform(context)
    record = _flag(context, "record")
    record_path = LaunchConfiguration("record_path").perform(context)
    folder, profile = _profile(config_dir, LaunchConfiguration("robot").perform(context))
    extra = [f for f in (os.path.join(folder, "params.yaml"), os.path.join(folder, "site.yaml")) if os.path.isfile(f)]
    drivers = bool(profile.get("groups"))
    profile_file = os.path.join(folder, "profile.yaml")
    stack_remaps = list((profile.get("stack_remaps") or {}).items()) if drivers else []
    chain = LaunchConfiguration("chain").perform(context).strip().lower()
    if chain not in ("fused", "separate"):
        raise ValueError(f"launch argument chain:={chain!r} must be fused or separate")

    actions, fused = [], {}  # fused: chain node name -> (its parameter file, its overrides)
    for name, config_file in STACK.items():
        overrides = {"use_sim_time": use_sim_time}
        if name == "policy_node" and policy_model:
            overrides["model_path"] = policy_model
        if name == "safety_node" and use_sim_time:
            # The command watchdog counts the robot's seconds: a sim slower than real time is not silence.
            overrides["watchdog_clock"] = "ros"
        markers = os.path.join(config_dir, "markers.yaml")
        if name == "perception_node" and os.path.isfile(markers) \
                and not _file_parameters(os.path.join(config_dir, config_file), name).get("markers_file"):
            # empty markers_file means the marker table beside perception.yaml; the node alone can
            # only look in the source checkout or sys.prefix, not in a colcon install's share/drex
            overrides["markers_file"] = markers
        if name == "safety_node" and drivers:
            overrides["robot_profile"] = profile_file
            if sim:  # the simulated cell has no operator to release the real robot's start-up latch
                overrides["start_latched"] = False
        if chain == "fused" and name in CHAIN:
            fused[name] = (os.path.join(config_dir, config_file), overrides)
            continue
        actions.append(Node(package="drex", executable=name, name=name, output="screen", remappings=stack_remaps,
                            parameters=[os.path.join(config_dir, config_file), *extra, overrides]))
    if fused:
        # No name=: it would rename all three nodes of the process. Each file and the overrides are
        # keyed by node name, so every stage reads exactly what it reads as a separate node.
        with tempfile.NamedTemporaryFile("w", prefix="drex_chain_", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({n: {"ros__parameters": o} for n, (_, o) in fused.items()}, f)
        actions.append(Node(package="drex", executable="chain_node", output="screen", remappings=stack_remaps,
                            parameters=[*(path for path, _ in fused.values()), *extra, f.name]))
    if drivers:
        merger = {"robot_profile": profile_file, "use_sim_time": use_sim_time}
        if sim:
            merger["state_timeout_scale"] = 4.0  # two Python hops on a shared host (commands/robot_profile.py)
        actions.append(Node(package="drex", executable="joint_state_merger_node", name="joint_state_merger_node",
                            output="screen", parameters=[merger]))
    if sim:
        # The simulator is the clock: it never waits on /clock itself.
        sim_remaps = list((profile.get("sim_remaps") or {}).items()) if drivers else []
        actions.append(Node(package="drex", executable="sim_node", name="sim_node", output="screen",
                            remappings=sim_remaps, parameters=[os.path.join(config_dir, "sim.yaml"), *extra]))
        if drivers:
            actions.append(Node(package="drex", executable="driver_personality_node",
                                name="driver_personality_node", output="screen",
                                parameters=[{"robot_profile": profile_file, "use_sim_time": True}]))
    if record:
        actions.append(Node(package="drex", executable="recorder_node", name="recorder", output="screen",
                            remappings=stack_remaps,
                            parameters=[{"path": record_path, "use_sim_time": use_sim_time}]))
    return actions


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("drex"), "config")
    return LaunchDescription([
        DeclareLaunchArgument("sim", default_value="true", description="start the MuJoCo sim_node"),
        DeclareLaunchArgument("robot", default_value="sim",
                              description="profile in config_dir/robots: sim, fr3_allegro, panda_allegro_legacy"),
        DeclareLaunchArgument("use_sim_time", default_value="auto",
                              description="true/false; auto follows sim"),
        DeclareLaunchArgument("config_dir", default_value=default_config,
                              description="folder with <node>.yaml parameter files"),
        DeclareLaunchArgument("policy_model", default_value="",
                              description="ONNX grasp policy (empty: the one in policy.yaml)"),
        DeclareLaunchArgument("chain", default_value="fused",
                              description="fused: policy, smoother, safety as one pipeline (chain_node); "
                                          "separate: three nodes over DDS, for debugging"),
        DeclareLaunchArgument("record", default_value="false", description="record the stack's topics to MCAP"),
        DeclareLaunchArgument("record_path", default_value="drex_record.mcap", description="bag written by record"),
        OpaqueFunction(function=_nodes),
    ])
