"""BenGRN: benchmark gene-network inference against ground truths with exact metrics."""

__version__ = "0.1.0"
