"""Test-wide set-up: isolate DDS traffic per test process, render offscreen."""

import fcntl
import os
import tempfile

import pytest

_DOMAIN_LOCK = None


def _claim_domain() -> int:
    """The first DDS domain (1-101) no other test process on this machine holds.

    A lock file per domain, held for this process's lifetime, so concurrent pytest runs
    never hear each other's nodes (pid-derived ids collide now and then).
    """
    global _DOMAIN_LOCK
    for domain in range(1, 102):
        handle = open(os.path.join(tempfile.gettempdir(), f"drex-ros-domain-{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DOMAIN_LOCK = handle
        return domain
    return os.getpid() % 100 + 1


os.environ["ROS_DOMAIN_ID"] = str(_claim_domain())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


@pytest.fixture(scope="module")
def ros(request):
    """rclpy up, one test node and its executor for the module (node named after the module)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    node = rclpy.create_node(request.module.__name__.rsplit(".", 1)[-1])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long property runs (the full hypothesis example count); -m slow")


def pytest_collection_modifyitems(config, items):
    """`slow` tests run only when asked for (-m slow): the default run stays short."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
