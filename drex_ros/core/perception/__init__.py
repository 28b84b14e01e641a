"""The object's 6-D pose from RGB-D: marker poses refined with depth, a markerless depth
fallback, the pose filter, image decoding checks, camera calibration from a marker board, and
helpers that measure all of it against rendered ground truth.

Imports: core.robot, core.sim (rendering, for calibration and evaluation only).
"""
