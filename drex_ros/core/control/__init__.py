"""What turns an upstream command into a safe hardware command, and what sequences a task:
EMA smoothing, the safety clamp (limits, watchdog, e-stop latch), the task sequence, and the
in-hand check that stands in for the camera while the hand hides the object.

Imports: core.robot, core.identify_reply.
"""
