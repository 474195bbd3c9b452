"""Real-data readers shared by the package's tests and the benchmarks (one definition each).

Nothing here downloads: the files come from the data folder (``SCPRINT_DATA_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SEMRAU_MESC", "mouse_cells"]

#: The Semrau mouse embryonic stem cells of McCalla et al. (2023), under the data folder.
SEMRAU_MESC = Path("grn") / "mccalla2023_stone_sroy" / "scRNA" / "semrau_rna_filtered_log2.tsv.gz"


def mouse_cells(data_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Semrau mESC raw counts ``(n_cells, n_genes)`` float32 and the genes' mouse symbols.

    The file holds ``log2(1 + log2(1 + counts))`` per gene and cell; the integer counts are
    recovered exactly (largest rounding error ~2e-11).
    """
    table = pd.read_csv(Path(data_dir) / SEMRAU_MESC, sep="\t", index_col=0)
    counts = np.round(2.0 ** (2.0 ** table.to_numpy(dtype=np.float64) - 1.0) - 1.0)
    return counts.T.astype(np.float32), np.asarray(table.index, dtype=str)
