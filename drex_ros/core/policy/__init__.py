"""The grasp policy at run time: its observation/action contract, the ONNX runtime wrapper,
the control loop that policy_node runs, model building for tests, and replay of bags through it.

Imports: core.robot, core.control (hand_hold), core.sim (resimulate, for replay), core.bag.
"""
