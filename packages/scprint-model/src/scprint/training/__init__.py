"""Pretraining: the Lightning module, the ``fit`` entry point, checkpoints and the CLI."""

from .checkpoint import FORMAT_VERSION, CheckpointError, Pretrained, load, load_pretrained
from .fit import fit
from .lightning_module import Objective, OptimOptions, ScPrintLightning

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Objective",
    "OptimOptions",
    "Pretrained",
    "ScPrintLightning",
    "fit",
    "load",
    "load_pretrained",
]
