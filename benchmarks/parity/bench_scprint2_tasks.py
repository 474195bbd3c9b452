"""scPRINT-2's new tasks against the original's own: imputation, gene embeddings, graph-regularised
label refinement (GRIT) and counterfactual generation from a class code.

The original is ``scprint2`` 1.0.3 in the peer venv ``benchmarks/.peer-venvs/scprint2-1.0.3``
(``peer_scprint2_tasks.py``), on the checkpoints it saved for ``bench_scprint2.py``
(``tests/fixtures/parity/scprint2_<config>.ckpt``) and the same 12 real Kang cells x 24 genes
(``scprint2_task_inputs.npz``, each cell's 6 nearest cells for the metacell encoder). Float32 on
CPU. Compared, per configuration:

* imputation: the original ``Imputer`` loop (``method="generative"``, ``predict_depth_mult=4``)
  against our :class:`scprint.tasks.Imputer` reading the 24 genes and imputing 16 other
  vocabulary genes; bar 1e-4 on each cell's imputed means as fractions of their total (the
  counts difference is in the note);
* gene embeddings: the forward pass of the original ``GeneEmbeddingExtractor`` against our
  :class:`scprint.tasks.GeneEmbedder` over the 24 genes: the mean over cells, its
  ``average=True`` result (mean of batch means, batches of equal size here) and each cell's
  matrix (``groupby`` a column of unique values); bar 1e-4;
* GRIT: the original ``graph_regularized_logit_refinement`` against our
  :func:`scprint.tasks.refine.refine_logits` on the original's own cell-type logits of these
  cells and one cell graph (UMAP connectivities of the task neighbours), two strengths; bar 1e-4
  and identical predicted labels;
* counterfactual: each cell's cell-type token replaced by the decoding of the mean cell-type
  code of 6 reference cells, then generation over the 24 genes (the original's compressor and
  ``_generate``, as its ``Generate`` task calls it) against our :class:`scprint.tasks.Generator`
  with a code target; bar 1e-4 on the means as fractions of their total, and on the code.

Defects of the original worked around in the peer only: its VAE compressors draw their latent in
evaluation too (the draw is replaced by the mean, which our tasks decode: an imputation or a
counterfactual is then the same on every run); its ``Imputer`` passes the neighbours' counts but
not their distances, on which the metacell encoder fails (they are passed, as its ``Denoiser``
does), and needs a number of cells divisible by its batch size (batches of 4 here); its
gene-embedding task accepts ``use_knn`` but never passes the neighbours to the model (they are
passed, as ``use_knn=True`` says, and as our task does).

Without ``--peers`` the committed fixtures (``tests/fixtures/parity/scprint2_tasks_*.npz``, made
by the original) are compared; ``--peers`` regenerates them with the original first (creating
the peer venv when needed), ``--write-fixtures`` then replaces the committed ones. Writes
``benchmarks/results/parity_scprint2_tasks.{md,json}``.

Usage::

    python benchmarks/parity/bench_scprint2_tasks.py [--peers [--write-fixtures]]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import write_results  # noqa: E402
from bench_scprint2 import FIXTURES, PEER  # noqa: E402
from setup_peers import create, peer_python, run_peer  # noqa: E402

from scprint.testing.parity import SCPRINT2_CONFIGS, SCPRINT2_TASK_INPUTS  # noqa: E402
from scprint.testing.parity_tasks import EXTRA, compare, fixture_name  # noqa: E402

N_IMPUTE = 16
GRIT_LAMBDAS = (0.1, 1.0, 10.0)
#: cells whose mean cell-type code is the counterfactual's target ("reference" label)
REFERENCE_ROWS = np.arange(6)
log = logging.getLogger("benchmarks.parity.scprint2_tasks")


def build_extra(task: dict[str, np.ndarray], n_human: int) -> dict[str, np.ndarray]:
    """The genes to impute (16 human vocabulary genes the cells were not read over, spread over
    the vocabulary), the cell graph of the refinement, its strengths and the reference cells."""
    from scprint.tasks.refine import umap_connectivities

    read = set(task["gene_ids"][0].tolist())
    others = np.array([i for i in range(n_human) if i not in read])
    impute = others[np.linspace(0, len(others) - 1, N_IMPUTE).astype(int)]
    n = len(task["depth"])
    indices = np.hstack([np.arange(n)[:, None], task["neighbour_indices"]])
    distances = np.hstack([np.zeros((n, 1)), task["neighbour_distances"]])
    graph = umap_connectivities(indices, distances.astype(np.float64))
    return {
        "impute_ids": impute.astype(np.int64),
        "connectivities_data": graph.data,
        "connectivities_indices": graph.indices,
        "connectivities_indptr": graph.indptr,
        "grit_lambdas": np.asarray(GRIT_LAMBDAS),
        # scores that differ between cells: log1p of the cells' counts of 6 genes
        "grit_scores": np.log1p(task["counts"][:, :6].astype(np.float64)),
        "reference_rows": REFERENCE_ROWS,
    }


def regenerate(folder: Path) -> None:
    """The original runs its tasks on the committed checkpoints and task cells."""
    task = dict(np.load(FIXTURES / SCPRINT2_TASK_INPUTS))
    n_human = int(np.load(FIXTURES / "scprint2_inputs.npz")["n_human_genes"])
    np.savez(folder / EXTRA, **build_extra(task, n_human))
    if not peer_python(PEER).exists():
        log.info("creating the peer venv %s (needs a package index)", PEER)
        create(PEER, None)
    stdout = run_peer(
        PEER,
        HERE / "peer_scprint2_tasks.py",
        FIXTURES / SCPRINT2_TASK_INPUTS,
        folder / EXTRA,
        FIXTURES,
        folder,
        *SCPRINT2_CONFIGS,
    )
    log.info("%s: %s", PEER, stdout.strip().splitlines()[-1][:200])
    for name in SCPRINT2_CONFIGS:
        (folder / f"{name}.npz").rename(folder / fixture_name(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", action="store_true", help="regenerate with the original scPRINT-2"
    )
    parser.add_argument(
        "--write-fixtures", action="store_true", help="with --peers: replace the committed fixtures"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.write_fixtures and not args.peers:
        parser.error("--write-fixtures needs --peers")
    with tempfile.TemporaryDirectory() as tmp:
        folder = FIXTURES
        if args.peers:
            folder = Path(tmp)
            regenerate(folder)
        rows = compare(FIXTURES, folder)
        if args.write_fixtures:
            for path in [folder / EXTRA, *(folder / fixture_name(n) for n in SCPRINT2_CONFIGS)]:
                shutil.copy2(path, FIXTURES / path.name)
    source = (
        "regenerated live by scprint2 1.0.3"
        if args.peers
        else "committed fixtures made by scprint2 1.0.3"
    )
    notes = (
        f"The original scPRINT-2's tasks ({source}) against ours, float32 on CPU, on the"
        " checkpoints the original saved for parity_scprint2 and 12 real Kang 2018 PBMC cells x"
        " 24 genes (each cell's 6 nearest cells for the metacell encoder). Imputation of 16 other"
        " vocabulary genes at 4x depth and counterfactual generation (cell-type token replaced by"
        " the decoding of the mean cell-type code of 6 reference cells): means compared as"
        " fractions of each cell's total; gene embeddings: mean over cells, the original's"
        " average=True (batches of 4 cells) and per cell; GRIT: the original's refinement of its"
        " own cell-type logits over one cell graph, refined logits and labels (these randomly initialised models give nearly the same logits to every cell, so no label changes there), and the same on scores whose labels vary between cells (log1p counts of 6 genes), where the refinement changes labels. Bar 1e-4. In the"
        " peer only: the VAE latent is its mean (the original draws it in evaluation too), the"
        " Imputer gets the neighbours' distances (it passes only their counts and fails on a"
        " metacell model), the gene-embedding task gets the neighbours (use_knn is never"
        " passed on)."
    )
    path = write_results("parity_scprint2_tasks", rows, notes=notes)
    log.info("wrote %s", path)
    failed = [f"{row['config']}/{row['output']}" for row in rows if not row["ok"]]
    if failed:
        log.error("parity not met for %s", failed)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
