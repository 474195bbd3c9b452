"""GRnnData: gene regulatory networks stored in AnnData (rows = regulators, columns = targets)."""

__version__ = "0.1.0"
