"""Training (Lightning): the module, the data module, ``scprint fit`` (LightningCLI) and its Python
entry, fine-tuning. Loading checkpoints for inference is :mod:`scprint.checkpoints` (no Lightning);
``load`` and friends are re-exported here for training code.
"""

from ..checkpoints import FORMAT_VERSION, CheckpointError, Pretrained, load, load_pretrained
from .cli import FinalCheckpoint
from .datamodule import CellDataModule
from .fit import fit
from .lightning_module import OptimOptions, ScPrintLightning
from .objective import Objective

__all__ = [
    "FORMAT_VERSION",
    "CellDataModule",
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
