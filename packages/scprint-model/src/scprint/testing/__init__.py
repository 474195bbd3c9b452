"""Code shared by the package's tests and the repository's benchmarks (one definition each).

* :mod:`scprint.testing.data`: real-data readers (files from ``SCPRINT_DATA_DIR``; nothing here
  downloads);
* :mod:`scprint.testing.parity`: our side of the parity checks against the original scPRINT
  (2.3.8) and scPRINT-2 (1.0.3): our tasks on the inputs the original was run on, compared with
  its recorded outputs; :mod:`scprint.testing.parity_tasks` does the same for scPRINT-2's newer
  tasks (imputation, gene embeddings, GRIT, counterfactual generation);
* :mod:`scprint.testing.synthetic`: a freshly initialised model and synthetic batches for device
  and throughput checks (synthetic counts: never for accuracy).

The original's side runs in its own virtual environment (``benchmarks/parity/peer_*.py`` in the
repository); its outputs are committed as fixtures beside the package's tests.
"""

from __future__ import annotations

from scprint.testing.data import SEMRAU_MESC, mouse_cells

__all__ = ["SEMRAU_MESC", "mouse_cells"]
