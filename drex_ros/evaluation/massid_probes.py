"""Mass-identification probes recorded through the real nodes, and their bags identified as
mass_id_node would: shared by `drex bench massid` and the identified condition of `drex eval`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from drex_ros.core.identify_reply import UNIDENTIFIABLE, is_unidentifiable
from drex_ros.training.episode import ObjectSample


@dataclass
class BenchObject(ObjectSample):
    """An object of the scene with its place in the bench (it names the bag's folder and seeds the camera noise)."""

    index: int = 0


# --- recording through the nodes -----------------------------------------------------------------
class ProbeUnidentifiable(RuntimeError):
    """mass_id_node answered "unidentifiable" before recording (no probe can be planned)."""


def record_probe(obj: BenchObject, out_dir: Path, say, rtf: float,
                 reality_seed: int | None = None) -> tuple[Path, Path | None]:
    """Push the object, then weigh it, with mass_id_node through the node chain (each node its own
    process); the bags' paths (no weighing bag where that probe could not be planned).

    `reality_seed`: sim_node simulates a perturbed cell drawn from it (core/sim/reality.py), and the
    pose relay takes that cell's camera noise, latency and drops; None: the exact simulator. The
    reality stays in sim_node and the relay: the bags are identified without it."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from drex_ros.evaluation.pose_relay import CameraPoseEmulator
    from drex_ros.node_process import NodeProcess

    out_dir.mkdir(parents=True, exist_ok=True)
    world = {} if reality_seed is None else {"reality": "perturbed", "reality_seed": reality_seed}
    procs = [
        NodeProcess("sim_node", {"publish_camera": False, "real_time_factor": rtf, "object_shape": obj.shape,
                                 "object_size": list(obj.size), "object_mass": obj.mass,
                                 "object_friction": obj.friction, "object_position": list(obj.position),
                                 "object_yaw": obj.yaw, **world}),
        NodeProcess("smoother_node"),
        NodeProcess("safety_node"),
        NodeProcess("mass_id_node", {"use_sim_time": True, "object_shape": obj.shape, "object_size": list(obj.size),
                                     "record_dir": str(out_dir), "identify": False}),
    ]
    node = rclpy.create_node(f"bench_massid_{obj.index}")
    relay = CameraPoseEmulator(seed=obj.index, **camera_of(reality_seed))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(relay)
    try:
        client = node.create_client(Trigger, "/drex/identify_mass")
        states = []
        node.create_subscription(JointState, "/joint_states", states.append, 10)
        deadline = time.monotonic() + 60
        while not client.service_is_ready() or relay.published < 15 or len(states) < 200:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("nodes did not come up:\n" + "\n".join(p.output()[-2000:] for p in procs))
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + 180
        while not future.done():
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("probe timed out:\n" + procs[3].output()[-3000:])
        res = future.result()
        if not res.success and is_unidentifiable(res.message):
            raise ProbeUnidentifiable(res.message.removeprefix(f"{UNIDENTIFIABLE}: "))  # the table says it
        if not res.success:
            raise RuntimeError(f"probe failed: {res.message}\n{procs[3].output()[-3000:]}")
        say(f"  recorded object {obj.index}: {res.message}")
    finally:
        executor.remove_node(relay)
        executor.remove_node(node)
        relay.destroy_node()
        node.destroy_node()
        for p in procs:
            p.stop()
    return latest_bags(out_dir)


def camera_of(reality_seed: int | None) -> dict:
    """The pose relay's noise, drops and latency in the perturbed cell of `reality_seed` (none: its defaults)."""
    if reality_seed is None:
        return {}
    from drex_ros.core.sim.reality import reality_from

    r = reality_from("perturbed", reality_seed)
    return {"position_noise": r.camera_position_noise, "rotation_noise_deg": r.camera_rotation_noise_deg,
            "drop_probability": r.camera_drop_probability, "latency": r.camera_latency}


def latest_bags(out_dir: Path) -> tuple[Path, Path | None]:
    """The latest push bag in `out_dir` and the weighing bag recorded after it, if any."""
    pushes = sorted(out_dir.glob("massid_*"))
    if not pushes:
        raise RuntimeError(f"no bag written in {out_dir}")
    weighs = [w for w in sorted(out_dir.glob("weigh_*")) if w.name.removeprefix("weigh_") >=
              pushes[-1].name.removeprefix("massid_")]
    return pushes[-1], (weighs[-1] if weighs else None)


# --- identification ----------------------------------------------------------------------------------
def _identify_timed(obj: BenchObject, bag: Path, cfg) -> tuple[object, str, float]:
    """(estimate or None, refusal, wall s) of one bag, identified as `drex identify` would."""
    from drex_ros.core.massid.identify import identify
    from drex_ros.core.massid.recording import read_recording
    from drex_ros.core.massid.types import RecordingError

    rec = read_recording(bag, obj.shape, obj.size)
    t = time.perf_counter()
    try:
        return identify(rec, cfg), "", time.perf_counter() - t
    except RecordingError as exc:  # an unusable recording counts as unidentifiable, with its reason
        return None, str(exc), time.perf_counter() - t


def identify_bag(obj: BenchObject, bag: Path, weigh_bag: Path | None = None, calibration=None) -> dict:
    """One table row: the push's bag identified, and the weighing bag where mass_id_node would weigh
    (core.weigh.weighing_reason); the wall time is both identifications'. `calibration`: the robot's
    (core.massid.robot_calibration), or None."""
    from drex_ros.core.massid.types import MassIdConfig
    from drex_ros.core.massid.weigh import weighing_reason, with_push_friction

    cfg = MassIdConfig(calibration=calibration)
    est, refusal, wall = _identify_timed(obj, bag, cfg)
    push_mass = None if est is None else est.mass  # the push's own reading, for the push-only figures
    why = weighing_reason(est, cfg, refusal) if weigh_bag is not None else ""
    if why:
        weighed, weigh_refusal, weigh_wall = _identify_timed(obj, weigh_bag, cfg)
        wall += weigh_wall
        if weighed is not None and weighed.identifiable:
            est, refusal, bag = with_push_friction(weighed, est, cfg), "", weigh_bag
        elif not est.identifiable:  # the push's answer stands, with both reasons
            est.reason = f"{est.reason}; weighing: {weigh_refusal or weighed.reason}"
    if est is None:
        return {**asdict(obj), "bag": str(bag), "identifiable": False, "reason": refusal, "mass_est": None,
                "std_est": None, "friction_est": None, "wall_s": wall, "rollouts": 0, "err_pct": None,
                "method": "push", "weigh_reason": why, "push_mass_est": push_mass}
    row = {**asdict(obj), "bag": str(bag), "identifiable": est.identifiable, "reason": est.reason,
           "mass_est": est.mass, "std_est": est.std, "friction_est": est.friction, "wall_s": wall,
           "rollouts": est.rollouts, "direct_mass": est.direct_mass, "direct_friction": est.direct_friction,
           "method": est.method, "weigh_reason": why, "push_mass_est": push_mass}
    row["err_pct"] = None if est.mass is None else 100.0 * (est.mass / obj.mass - 1.0)
    return row
