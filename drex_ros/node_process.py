"""Start a drex node (or the drex CLI) as its own OS process, the way `ros2 run` would, and stop it.

One launcher for the demo, the benchmarks and the tests: each node in its own process
(no shared GIL, both cores used), its output kept in a log file for reports and assertions.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


class NodeProcess:
    """`python -m drex_ros.nodes.NAME --ros-args [-r a:=b] [-p k:=v] [--params-file F] [extra]`."""

    def __init__(self, name: str, params: dict[str, object] | None = None, params_file: str | None = None,
                 remaps: dict[str, str] | None = None, ros_args: Sequence[str] = (), log_path: Path | None = None,
                 module: str | None = None, argv: Sequence[str] = ()) -> None:
        """module/argv: run another module (e.g. drex_ros.cli with argv ["bringup", ...]) instead of a node."""
        args = [sys.executable, "-m", module or f"drex_ros.nodes.{name}", *argv, "--ros-args"]
        for old, new in (remaps or {}).items():
            args += ["-r", f"{old}:={new}"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={ros_value(value)}"]
        if params_file:
            args += ["--params-file", params_file]
        args += list(ros_args[1:] if ros_args[:1] == ["--ros-args"] else ros_args)
        self.name = name
        if log_path is None:  # a log only for output(): gone when the launching interpreter exits
            handle = tempfile.NamedTemporaryFile(mode="w+", suffix=f"-{name}.log", delete=False)
            log_path = Path(handle.name)
            handle.close()
            atexit.register(log_path.unlink, missing_ok=True)
        self.log_path = Path(log_path)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """Ctrl-C (the node shuts down cleanly), then a kill if it does not within `timeout`."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def stop_all(procs: dict[str, NodeProcess], order: Sequence[str] = ()) -> None:
    """Stop processes, those named in `order` first and in that order (e.g. the policy before safety)."""
    rank = {name: i for i, name in enumerate(order)}
    for name in sorted(procs, key=lambda n: rank.get(n, -1)):
        procs[name].stop()


def use_private_domain(domain_id: int | None = None) -> int:
    """Put this process (and the nodes it starts) in a DDS domain of its own, on this host only.

    A closed world - a benchmark, an evaluation - must neither hear another stack's /clock and
    /joint_states nor send commands to another simulator. Default: 150 + pid % 80, away from the
    tests' domains (1-101). Returns the domain id.
    """
    domain = domain_id if domain_id is not None and domain_id >= 0 else 150 + os.getpid() % 80
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


def ros_value(value: object) -> str:
    """A Python value as a `-p name:=value` literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    return str(value)
