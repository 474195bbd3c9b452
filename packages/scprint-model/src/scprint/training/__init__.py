"""Training: the Lightning module, ``scprint fit`` (LightningCLI) and its Python entry, checkpoints."""

from .checkpoint import FORMAT_VERSION, CheckpointError, Pretrained, load, load_pretrained
from .cli import FinalCheckpoint
from .fit import fit
from .lightning_module import Objective, OptimOptions, ScPrintLightning

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "FinalCheckpoint",
    "Objective",
    "OptimOptions",
    "Pretrained",
    "ScPrintLightning",
    "fit",
    "load",
    "load_pretrained",
]
