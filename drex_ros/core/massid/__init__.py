"""Mass and friction identification: the push and weighing probes, the checks that make a
recording usable, the push fit against MuJoCo replays (trajectory matching, force regression),
the weighing reading, and their reports.

Imports: everything else in core; nothing in core imports it.
"""
