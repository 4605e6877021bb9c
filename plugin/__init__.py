"""QGIS front-ends: Processing provider and algorithms, dialog, dock, background tasks.

No numerics live here: every job goes through the engine via the Processing
algorithm ``diffusion_pansharpening:pansharpen``.
"""
