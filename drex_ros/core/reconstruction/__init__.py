"""Real-to-sim object model: from RGB-D frames with known camera poses to a mesh, collision parts,
a fitted primitive where one fits, and the files the simulator and the identifier read.

Data path: frames (frames.py) -> TSDF fusion (fusion.py) -> table removal and clustering
(segment.py) -> watertight surface (surface.py) -> primitive fit (primitive.py) and convex parts
(decompose.py) -> files (export.py). pipeline.py runs them in that order and times each stage.
Nothing here knows where the frames came from (the simulator's scan views or a recorded bag).
"""
