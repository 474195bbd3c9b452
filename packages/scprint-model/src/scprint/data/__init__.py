"""Data side of scPRINT: vocabulary, organisms, gene matching, label ontologies, cell sources
(h5ad, SOMA), gene sampling and training streams. Nothing here imports Lightning (the Lightning
data module is :class:`scprint.training.CellDataModule`).
"""

from .ontology import LabelEncoder
from .organisms import ORGANISMS
from .sampling import make_inference_batches, sample_context, trim_padding
from .soma import SomaSource
from .source import CellSource
from .streams import SamplingOptions, build_label_encoders
from .vocabulary import MIN_OVERLAP_GENES, Vocabulary

__all__ = [
    "MIN_OVERLAP_GENES",
    "ORGANISMS",
    "CellSource",
    "LabelEncoder",
    "SamplingOptions",
    "SomaSource",
    "Vocabulary",
    "build_label_encoders",
    "make_inference_batches",
    "sample_context",
    "trim_padding",
]
