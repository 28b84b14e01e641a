"""Start a drex node as its own OS process, the way `ros2 run` would, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile


class NodeProcess:
    """`python -m drex_ros.nodes.NAME --ros-args -p k:=v ...` with its output kept for assertions."""

    def __init__(self, name: str, params: dict[str, object] | None = None, params_file: str | None = None,
                 remaps: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", f"drex_ros.nodes.{name}", "--ros-args"]
        for old, new in (remaps or {}).items():
            args += ["-r", f"{old}:={new}"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_ros_value(value)}"]
        if params_file:
            args += ["--params-file", params_file]
        self.log = tempfile.NamedTemporaryFile(mode="w+", suffix=f"-{name}.log", delete=False)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def stop(self, timeout: float = 10.0) -> int:
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


def _ros_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    return str(value)
