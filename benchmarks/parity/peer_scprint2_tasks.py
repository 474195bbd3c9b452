"""Runs the original scPRINT-2's new tasks (``scprint2`` 1.0.3) inside its peer virtualenv.

Usage (from the repository root, with the peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint2-1.0.3/bin/python benchmarks/parity/peer_scprint2_tasks.py \
        TASK_INPUTS.npz EXTRA.npz CKPT_DIR OUT_DIR CONFIG_NAME [CONFIG_NAME ...]

For each configuration it loads ``CKPT_DIR/scprint2_<CONFIG_NAME>.ckpt`` (a checkpoint the
original saved, ``peer_scprint2.py``) as the original's CLI does (``peer_scprint2.load``) and
records in ``OUT_DIR/<CONFIG_NAME>.npz``, float32 on CPU, for the real cells of
``TASK_INPUTS.npz`` (``gene_ids``, ``counts``, ``depth``, neighbours):

* ``impute_mean`` / ``impute_disp`` / ``impute_zero_logits`` ``(n_cells, n_impute)``: the loop of
  the original ``Imputer(method="generative")`` (``tasks/impute.py``): ``_predict(...,
  do_generate=True, depth_mult=IMPUTE_DEPTH_MULT, generate_on=EXTRA["impute_ids"] repeated
  batch_size times)`` batch by batch, batches of ``IMPUTE_BATCH`` cells (the original repeats the
  genes to impute ``batch_size`` times, so a smaller last batch fails: 12 cells in batches of 4);
* ``gene_embedding`` ``(n_cells, n_genes, d)``: the forward pass of the original
  ``GeneEmbeddingExtractor`` (``tasks/gene_emb.py``: ``model(gene_pos, expression,
  req_depth=depth, depth_mult=expression.sum(1), get_gene_emb=True)``) and
  ``gene_embedding_average`` its ``average=True`` result (the mean of the batch means);
* ``grit_logits`` / ``grit_refined`` / ``grit_predictions``: its cell-type logits
  (``cls_output_cell_type_ontology_term_id`` of the same forward pass) and the original's
  ``utils.graph_refinement.graph_regularized_logit_refinement`` of them over the cell graph
  ``EXTRA["connectivities_*"]`` for each ``lambda_reg`` of ``EXTRA["grit_lambdas"]``, and the
  same for the scores ``EXTRA["grit_scores"]`` (``grit_scores_refined_*``, whose labels vary
  between cells, unlike the randomly initialised models' logits);
* ``counterfactual_mean`` / ``_disp`` / ``_zero_logits`` ``(n_cells, n_genes)``: each cell's
  output cell tokens with the cell-type token replaced by its compressor's decoding of a code,
  the mean cell-type code (``compressed_cell_embs``) of the cells ``EXTRA["reference_rows"]``,
  then the original's ``_generate`` (as its ``Generate`` task calls it: ``depth_mult`` and
  ``req_depth`` the cell's depth) over the task genes. ``counterfactual_code`` is that code.

Three defects of the original are worked around here only, each documented in
``bench_scprint2_tasks.py``: the original draws the VAE latent in evaluation too
(``VAEDecoder.reparameterize`` is replaced by its mean here, what our tasks decode), its Imputer
passes the neighbours' counts but not their distances (the metacell encoder fails on that; they
are passed, as its Denoiser does), and its gene-embedding task takes ``use_knn`` but never passes
the neighbours (they are passed, as ``use_knn=True`` says).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import peer_scprint2  # noqa: E402  (installs the stand-ins)
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from peer_scprint2 import as_numpy, load, neighbour_inputs  # noqa: E402
from scprint2.model import decoders  # noqa: E402
from scprint2.utils.graph_refinement import graph_regularized_logit_refinement  # noqa: E402

#: the original Imputer's default predict_depth_mult
IMPUTE_DEPTH_MULT = 4.0
#: cells per batch of the imputation (divides the 12 task cells: see the module docstring)
IMPUTE_BATCH = 4
CELL_TYPE = "cell_type_ontology_term_id"


def _vae_mean(self, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``VAEDecoder.reparameterize`` without the draw: the latent's mean."""
    return mu


decoders.VAEDecoder.reparameterize = _vae_mean


def batches(n_cells: int, size: int):
    for start in range(0, n_cells, size):
        yield slice(start, min(start + size, n_cells))


@torch.no_grad()
def run_impute(model, task: dict, impute_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The original Imputer's loop (method "generative")."""
    model.on_predict_epoch_start()
    generate_on = torch.as_tensor(impute_ids, dtype=torch.long).unsqueeze(0)
    generate_on = generate_on.repeat(IMPUTE_BATCH, 1)
    parts: list[list[np.ndarray]] = [[], [], []]
    for rows in batches(len(task["depth"]), IMPUTE_BATCH):
        knn = neighbour_inputs(model, task, rows)
        result = model._predict(
            torch.as_tensor(task["gene_ids"][rows], dtype=torch.long),
            torch.as_tensor(task["counts"][rows], dtype=torch.float32),
            torch.as_tensor(task["depth"][rows], dtype=torch.float32),
            knn_cells=knn.get("neighbors"),
            knn_cells_info=knn.get("neighbors_info"),
            do_generate=True,
            depth_mult=IMPUTE_DEPTH_MULT,
            generate_on=generate_on,
            keep_output=False,
        )
        for part, value in zip(parts, result["expr"]):
            part.append(as_numpy(value))
    return {
        "impute_mean": np.concatenate(parts[0]),
        "impute_disp": np.concatenate(parts[1]),
        "impute_zero_logits": np.concatenate(parts[2]),
    }


@torch.no_grad()
def run_forward(model, task: dict, batch_size: int) -> tuple[dict, list[torch.Tensor]]:
    """The original GeneEmbeddingExtractor's forward pass, batch by batch; the outputs and the
    batch means of the gene embeddings."""
    outputs: dict[str, list] = {}
    means = []
    for rows in batches(len(task["depth"]), batch_size):
        knn = neighbour_inputs(model, task, rows)
        expression = torch.as_tensor(task["counts"][rows], dtype=torch.float32)
        out = model(
            gene_pos=torch.as_tensor(task["gene_ids"][rows], dtype=torch.long),
            expression=expression,
            req_depth=torch.as_tensor(task["depth"][rows], dtype=torch.float32),
            depth_mult=expression.sum(1),
            get_gene_emb=True,
            do_class=True,
            **knn,
        )
        means.append(out["gene_embedding"].mean(dim=0, keepdim=True))
        for key in ("gene_embedding", f"cls_output_{CELL_TYPE}", "output_cell_embs"):
            outputs.setdefault(key, []).append(out[key])
        index = model.classes.index(CELL_TYPE) + 1
        outputs.setdefault("code", []).append(out["compressed_cell_embs"][index])
    return {k: torch.cat(v) for k, v in outputs.items()}, means


def decode_code(model, code: torch.Tensor) -> torch.Tensor:
    """The cell-type compressor's token for ``code`` ``(B, n)``: a VAE's decoder, an FSQ's
    rounding and projection out (its ``forward`` after ``project_in``)."""
    compressor = model.compressor[CELL_TYPE]
    if isinstance(compressor, decoders.VAEDecoder):
        return compressor.decoder(code)
    grouped = code.reshape(code.shape[0], compressor.num_codebooks, -1)
    return compressor.project_out(compressor.quantize(grouped).reshape(code.shape[0], -1))


@torch.no_grad()
def run_counterfactual(model, task: dict, forward: dict, reference: np.ndarray) -> dict:
    code = forward["code"][torch.as_tensor(reference)].mean(dim=0, keepdim=True)
    token = decode_code(model, code)
    tokens = forward["output_cell_embs"].clone()
    tokens[:, model.classes.index(CELL_TYPE) + 1] = token
    depth = torch.as_tensor(task["depth"], dtype=torch.float32)
    out = model._generate(
        cell_embs=tokens,
        gene_pos=torch.as_tensor(task["gene_ids"], dtype=torch.long),
        depth_mult=depth,
        req_depth=depth,
        metacell_token=None,
    )
    return {
        "counterfactual_code": as_numpy(code[0]),
        "counterfactual_mean": as_numpy(out["mean"]),
        "counterfactual_disp": as_numpy(out["disp"]),
        "counterfactual_zero_logits": as_numpy(out["zero_logits"]),
    }


class _Graph:
    """What ``graph_regularized_logit_refinement`` reads of an AnnData: ``obsp``."""

    def __init__(self, connectivities: sp.csr_matrix) -> None:
        self.obsp = {"connectivities": connectivities}


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    task = dict(np.load(argv[0], allow_pickle=False))
    extra = dict(np.load(argv[1], allow_pickle=False))
    ckpt_dir, out_dir = Path(argv[2]), Path(argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = sp.csr_matrix(
        (
            extra["connectivities_data"],
            extra["connectivities_indices"],
            extra["connectivities_indptr"],
        ),
        shape=(len(task["depth"]),) * 2,
    )
    report = {}
    for name in argv[4:]:
        model = load(ckpt_dir / f"scprint2_{name}.ckpt")
        outputs = run_impute(model, task, extra["impute_ids"])
        forward, means = run_forward(model, task, IMPUTE_BATCH)
        outputs["gene_embedding"] = as_numpy(forward["gene_embedding"])
        outputs["gene_embedding_average"] = as_numpy(torch.cat(means).sum(0) / len(means))
        logits = as_numpy(forward[f"cls_output_{CELL_TYPE}"]).astype(np.float64)
        outputs["grit_logits"] = logits
        for lam in extra["grit_lambdas"]:
            for prefix, scores in (("grit", logits), ("grit_scores", extra["grit_scores"])):
                refined = graph_regularized_logit_refinement(
                    scores, _Graph(graph), lambda_reg=float(lam)
                )
                outputs[f"{prefix}_refined_{lam:g}"] = np.asarray(refined)
                outputs[f"{prefix}_predictions_{lam:g}"] = np.argmax(refined, axis=1)
        outputs.update(run_counterfactual(model, task, forward, extra["reference_rows"]))
        np.savez_compressed(out_dir / f"{name}.npz", **outputs)
        report[name] = sorted(outputs)
    print(json.dumps({"peer": f"scprint2 {peer_scprint2.PEER_VERSION}", "outputs": report}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
