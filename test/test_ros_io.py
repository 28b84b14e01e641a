"""Message helpers shared by the nodes."""

from drex_ros.nodes.ros_io import to_sec, to_stamp


def test_stamps_round_on_the_total_not_the_fraction():
    for t in (8.9999999996, 0.0, 1.5, 12.0000000004, 2.999999999):
        stamp = to_stamp(t)
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert abs(to_sec(stamp) - t) < 1e-9


def test_a_callback_that_raises_is_reported_and_the_node_goes_on(ros):
    """Over DDS: a subscription callback that raises on one message does not end the node's
    spinning; the error is reported on /diagnostics and the next message is handled."""
    import threading

    from diagnostic_msgs.msg import DiagnosticArray
    from ros_helpers import Collector, spin_until
    from std_msgs.msg import String

    from drex_ros.nodes.ros_io import CallbackErrors, spin_guarded

    test_node, test_executor = ros
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    handled: list[str] = []

    def on_msg(msg: String) -> None:
        if msg.data == "bad":
            raise ValueError("a message this node cannot take")
        handled.append(msg.data)

    node = rclpy.create_node("fragile_node")
    node.create_subscription(String, "/fragile_input", on_msg, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    errors = CallbackErrors(node)
    stop = threading.Event()
    thread = threading.Thread(target=spin_guarded, args=(executor, errors.report, lambda: not stop.is_set()))
    thread.start()
    try:
        diag = Collector(test_node, DiagnosticArray, "/diagnostics", 50)
        pub = test_node.create_publisher(String, "/fragile_input", 10)
        assert spin_until(test_executor, lambda: pub.get_subscription_count() > 0, 10)
        pub.publish(String(data="bad"))
        assert spin_until(test_executor, lambda: errors.count == 1, 10)
        assert spin_until(test_executor, lambda: any("a callback raised ValueError" in s.message
                                                     for m in diag.messages for s in m.status), 10)
        pub.publish(String(data="good"))
        assert spin_until(test_executor, lambda: handled == ["good"], 10), "the node stopped after the error"
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=5)
        executor.shutdown()
        node.destroy_node()
