"""Problem sizes of the GPU suite: full on a GPU, tiny in the CPU smoke run (``SCPRINT_GPU_SMOKE=1``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

SMOKE = os.environ.get("SCPRINT_GPU_SMOKE") == "1"


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of the suite: full on a GPU, tiny in the CPU smoke run."""

    dtypes: tuple[torch.dtype, ...]
    head_dims: tuple[int, ...]
    #: Query and key lengths, neither a multiple of any tile (16 to 128).
    seq_q: int
    seq_k: int
    batch: int
    heads: int
    network_genes: int
    network_cells: int
    model_preset: str
    model_batch: int


FULL = Sizes(
    dtypes=(torch.float16, torch.bfloat16, torch.float32),
    head_dims=(32, 64, 128),
    seq_q=333,
    seq_k=461,
    batch=2,
    heads=3,
    network_genes=2000,
    network_cells=4,
    model_preset="small",
    model_batch=16,
)
TINY = Sizes(
    dtypes=(torch.float16, torch.bfloat16, torch.float32),
    head_dims=(32,),
    seq_q=21,
    seq_k=35,
    batch=2,
    heads=2,
    network_genes=40,
    network_cells=3,
    model_preset="tiny",
    model_batch=4,
)
SIZES = TINY if SMOKE else FULL
