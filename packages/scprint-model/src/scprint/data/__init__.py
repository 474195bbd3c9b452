"""Data side of scPRINT: vocabulary, label ontologies, lazy datasets, gene sampling, data module."""

from .datamodule import CellDataModule, SamplingOptions, build_label_encoders
from .ontology import LabelEncoder
from .sampling import make_inference_batches, sample_context
from .soma import SomaSource
from .source import CellSource
from .vocabulary import MIN_OVERLAP_GENES, ORGANISMS, Vocabulary

__all__ = [
    "MIN_OVERLAP_GENES",
    "ORGANISMS",
    "CellDataModule",
    "CellSource",
    "LabelEncoder",
    "SamplingOptions",
    "SomaSource",
    "Vocabulary",
    "build_label_encoders",
    "make_inference_batches",
    "sample_context",
]
