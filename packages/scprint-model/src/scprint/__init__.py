"""scPRINT: a single-cell foundation model over genes."""

__version__ = "0.1.0"
