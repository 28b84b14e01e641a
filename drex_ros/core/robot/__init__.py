"""The robot and the objects it handles, as described: the composed Panda + Allegro URDF
(description), its pinocchio model (kinematics, limits, inverse dynamics), joint naming, object
geometry and fiducial markers, and grasp plans.

Imports: nothing of drex but core.paths. Every other package of core may import it.
"""
