"""Stopping nodes the way an operator does: Ctrl-C from a terminal (every process of the group
gets SIGINT, often twice) or SIGTERM from a supervisor. Each node ends with status 0 and no
traceback, and safety_node's last act is a hold."""

from __future__ import annotations

import signal
import time

from drex_ros.node_process import NodeProcess


def _wait_for(proc: NodeProcess, text: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text not in proc.output():
        if not proc.alive():
            return False
        time.sleep(0.1)
    return text in proc.output()


def test_two_sigints_or_a_sigterm_end_every_node_cleanly_and_safety_holds_last():
    sim = NodeProcess("sim_node", {"publish_camera": False})
    safety = NodeProcess("safety_node")
    smoother = NodeProcess("smoother_node")
    try:
        assert _wait_for(sim, "sim_node"), sim.output()[-2000:]
        for proc in (safety, smoother):
            assert _wait_for(proc, "]: "), proc.output()[-2000:]  # its first log line: it is up
        safety.proc.send_signal(signal.SIGINT)
        safety.proc.send_signal(signal.SIGINT)
        smoother.proc.send_signal(signal.SIGTERM)
        sim.proc.send_signal(signal.SIGINT)
        codes = {p.name: p.proc.wait(20) for p in (safety, smoother, sim)}
    finally:
        for proc in (safety, smoother, sim):
            if proc.alive():
                proc.kill()
    for proc in (safety, smoother, sim):
        assert "Traceback" not in proc.output(), proc.output()[-3000:]
    assert codes == {"safety_node": 0, "smoother_node": 0, "sim_node": 0}, codes
    assert "holding: shutting down" in safety.output(), safety.output()[-2000:]
