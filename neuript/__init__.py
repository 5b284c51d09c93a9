"""neuript — NeurIPT, a foundation model for EEG-based neural interfaces.

Layers (dependencies point one way): ``cli → train / evaluate → data, model → electrodes``.
"""

__version__ = "0.1.0"
