"""Measuring a trained grasp policy: in-process episodes per mass bin, the same objects
through the real node chain, mass-identification probes for the identified condition, the
resumable journal behind it, and the camera-like pose relay the benches share.

Imports: core, nodes, training (episodes, expert labels). Training never imports it; bench may.
"""
