"""The MuJoCo mirror of the hardware: scene building from the robot description, stepping
and rendering (scene), the simulated arm, hand and camera drivers (hardware, command_intake,
hardware_faults), and re-simulation of recorded bags (resimulate).

Imports: core.robot, core.bag.
"""
