"""Cell embeddings, label predictions and gene embeddings: :class:`Embedder`.

Written into the AnnData (cells x genes, raw counts), with ``key_added`` (default
``"X_scprint"``) the key of the main result and ``<name>`` that key without its ``X_`` prefix
(``"scprint"``), the prefix of the other keys:

* ``obsm[key_added]`` float32: the model's ``cell_embedding`` by default, else the embedding of
  the chosen cell tokens (``model.class_embedding``): for scPRINT-1 ``(n_cells, d_model)``, the
  mean of the tokens; for scPRINT-2 what its own ``Embedder`` writes, the codes of the tokens
  concatenated with compressors, else the mean of the tokens;
* ``obsm["<key_added>_<class>"]`` float32: one embedding per label class (e.g.
  ``X_scprint_cell_type``): its output token ``(n_cells, d_model)``, or a scPRINT-2 class's code
  (e.g. ``(n_cells, 64)``);
* ``obs["<name>_<class>"]`` (categorical leaf label, by its readable name, e.g.
  ``scprint_cell_type``) and ``obs["<name>_<class>_prob"]`` (float32, the winning probability)
  for each label class; with ``probabilities=True`` also ``obsm["<name>_<class>_probs"]``, a
  DataFrame ``(n_cells, n_leaf_labels)`` of softmax probabilities;
* with ``refine`` (graph-regularised label refinement, :mod:`scprint.tasks.refine`): the labels
  and probabilities above are the refined ones, ``obs["<name>_<class>_unrefined"]`` the labels
  before, and ``uns[key_added]["refine"]`` the strength, the graph used and the labels changed;
* with ``gene_embeddings=True``: ``varm["<key_added>_genes"]`` ``(n_genes, d_model)`` float32, the
  model's output gene embedding averaged over the cells whose input held the gene (NaN rows for
  genes never in an input) and ``var["<name>_n_cells"]``, that number of cells; with
  ``gene_embedding_cells=[...]`` also ``varm["<key_added>_genes_<cell>"]`` for each listed cell;
* ``uns[key_added]``: provenance, the classes averaged, the gene match and ``metrics``.

Metrics (when ``obs`` holds the true labels of a class): ``accuracy`` credits a prediction that is
the true label or one of its ontology descendants (a prediction below a coarse true label is
right); ``macro_f1`` is scikit-learn's macro F1 where such credited predictions count as matches.
Cells whose true label the model does not know are left out (``n_unknown``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scprint.data import LabelEncoder
from scprint.errors import InputError
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import gene_matching_options, prepare
from scprint.tasks._model import Checkpoint, load_model, model_device
from scprint.tasks._output import provenance, store_result

log = logging.getLogger(__name__)

__all__ = ["Embedder", "label_metrics"]


def label_metrics(
    true_labels: Sequence[str], predicted: np.ndarray, encoder: LabelEncoder
) -> dict[str, float | int]:
    """Accuracy (crediting predictions below a coarse true label) and macro F1 of leaf predictions,
    over the populations actually scored.

    ``true_labels`` ``(n_cells,)`` are labels as the model's encoder reads them (leaf or coarser
    ontology terms, their names or aliases); ``predicted`` ``(n_cells,)`` are leaf indices into
    ``encoder.classes``. Each true label is scored at itself when the encoder knows it, else at
    its nearest known ancestor (``encoder.nearest_known``; counted in ``n_mapped_to_ancestor``);
    these scored labels are the populations (``n_scored_classes``). A prediction is right when
    it is a descendant leaf of the cell's scored label (``encoder.descendant_leaves``). Cells
    whose true label has no known ancestor are left out (``n_unknown``).

    ``macro_f1`` is scikit-learn's macro F1 over the scored populations only: a prediction is
    mapped to the cell's population when right, else to the most specific scored population
    whose leaves contain it (a false positive of that population), else to no population (a
    miss). ``chance_accuracy`` is ``1 / n_scored_classes`` (a uniform guess among the scored
    populations) and ``majority_accuracy`` the share of the largest one; ``n_classes`` is the
    number of leaves the model predicts among.
    """
    from sklearn.metrics import f1_score

    classes = [str(c) for c in encoder.classes]
    predicted = np.asarray(predicted, dtype=np.int64)
    true_labels = list(true_labels)
    codes = np.asarray(encoder.encode(true_labels), dtype=np.int64)
    nearest = {v: encoder.nearest_known(v) for v, c in zip(true_labels, codes) if c < 0}
    decoded = iter(encoder.decode(codes[codes >= 0]) if (codes >= 0).any() else [])
    resolved = [
        next(decoded) if code >= 0 else nearest[value] for value, code in zip(true_labels, codes)
    ]
    known = np.array([label is not None for label in resolved], dtype=bool)
    n_known = int(known.sum())
    base: dict[str, float | int] = {
        "n_cells": n_known,
        "n_unknown": int((~known).sum()),
        "n_mapped_to_ancestor": int((known & (codes < 0)).sum()),
        "n_classes": len(classes),
    }
    if n_known == 0:
        nan = float("nan")
        return {
            **base,
            "n_scored_classes": 0,
            "chance_accuracy": nan,
            "majority_accuracy": nan,
            "accuracy": nan,
            "macro_f1": nan,
        }
    canonical = np.asarray([label for label in resolved if label is not None], dtype=object)
    scored, sizes = np.unique(canonical.astype(str), return_counts=True)
    leaves = {label: set(encoder.descendant_leaves(label)) for label in scored}
    pred_known = predicted[known]
    credited = np.array(
        [int(p) in leaves[str(t)] for p, t in zip(pred_known, canonical)], dtype=bool
    )
    # a wrong prediction counts against the most specific scored population containing its leaf
    specific = sorted(scored, key=lambda label: len(leaves[label]))
    owner = {
        leaf: next((label for label in specific if leaf in leaves[label]), "")
        for leaf in range(len(classes))
    }
    as_population = np.array(
        [str(t) if ok else owner[int(p)] for p, t, ok in zip(pred_known, canonical, credited)],
        dtype=object,
    )
    macro_f1 = f1_score(
        canonical.astype(str), as_population, labels=list(scored), average="macro", zero_division=0
    )
    return {
        **base,
        "n_scored_classes": len(scored),
        "chance_accuracy": 1.0 / len(scored),
        "majority_accuracy": float(sizes.max() / sizes.sum()),
        "accuracy": float(credited.mean()),
        "macro_f1": float(macro_f1),
    }


class Embedder:
    """Embed cells (and optionally genes) and predict their labels.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; original scPRINT checkpoints too).
    classes
        Cell tokens averaged into ``obsm["X_scprint"]`` (e.g. ``["cell_type"]``); ``None`` = all.
    probabilities
        Also store the full label probabilities in ``obsm["<name>_<class>_probs"]``.
    label_columns
        ``{class: obs column}`` holding true labels for the metrics; default: a column named like
        the class, when present.
    gene_embeddings, gene_embedding_cells
        Average output gene embeddings into ``varm`` (see the module docstring); per-cell gene
        embeddings for the listed ``obs_names``.
    max_len
        Input genes per cell (the model's default choice of genes when ``None``).
    refine, refine_lambda
        Graph-regularised refinement of the label predictions (the original scPRINT-2's "GRIT",
        :mod:`scprint.tasks.refine`): ``True`` for every label class, or a list of classes
        (e.g. ``["cell_type_ontology_term_id"]``). Their logits are smoothed over the cell graph
        (``obsp["connectivities"]`` when present, else UMAP connectivities of each cell's 15
        nearest cells) with strength ``refine_lambda``; the predictions, probabilities and
        metrics are then the refined ones, the unrefined labels in ``obs[...+"_unrefined"]``.
    gene_matching
        How the AnnData's genes are matched to the model's: keyword arguments of
        :func:`scprint.tasks._input.prepare` (``organism``, ``gene_column``, ``gene_table``,
        ``orthologs``, ``min_genes``).
    batch_size, device
        Cells per forward pass; ``"auto"`` (GPU if any), ``"cpu"`` or ``"cuda"``.
    precision
        ``"32"`` (float32, default), ``"bf16"`` (bfloat16 autocast) or ``"int8"`` (int8 linear
        layers, CPU only); see :mod:`scprint.tasks._model`. The first batch is checked
        against float32 and the agreement stored in ``uns[key_added]["precision"]``.
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        *,
        classes: Sequence[str] | None = None,
        probabilities: bool = False,
        label_columns: Mapping[str, str] | None = None,
        gene_embeddings: bool = False,
        gene_embedding_cells: Sequence[str] | None = None,
        max_len: int | None = None,
        refine: bool | Sequence[str] = False,
        refine_lambda: float = 0.1,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
        tokens = list(self.pretrained.model.cell_token_index)
        if classes is not None:
            unknown = [c for c in classes if c not in tokens]
            if unknown or not classes:
                raise InputError(
                    f"classes must be a non-empty subset of the cell tokens {tokens}, got {list(classes)}"
                )
        label_columns = dict(label_columns or {})
        bad = [c for c in label_columns if c not in self.pretrained.model.label_classes]
        if bad:
            raise InputError(
                f"label_columns names unknown label classes {bad}; the model predicts "
                f"{list(self.pretrained.model.label_classes)}"
            )
        self.classes = None if classes is None else list(classes)
        self.probabilities = probabilities
        self.label_columns = label_columns
        self.gene_embeddings = gene_embeddings or bool(gene_embedding_cells)
        self.gene_embedding_cells = list(gene_embedding_cells or [])
        self.max_len = max_len
        label_classes = list(self.pretrained.model.label_classes)
        if refine is True:
            refine = label_classes
        elif refine is False:
            refine = []
        elif isinstance(refine, str) or [c for c in refine if c not in label_classes]:
            raise InputError(
                f"refine must be True, False or a list of label classes among {label_classes}, "
                f"got {refine!r}"
            )
        if refine and not refine_lambda > 0:
            raise InputError(f"refine_lambda must be positive (e.g. 0.1), got {refine_lambda!r}")
        self.refine = list(refine)
        self.refine_lambda = float(refine_lambda)
        self.batch_size = batch_size

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "X_scprint", copy: bool = False
    ) -> ad.AnnData | None:
        """Embed ``adata`` (cells x genes, raw counts) and predict its labels.

        Writes the keys of the module docstring into ``adata`` and
        returns ``None``, or into a copy that is returned (``copy=True``). The label metrics,
        ``{class: {"accuracy", "macro_f1", "n_cells", ...}}`` for the classes with true labels in
        ``obs``, are in ``uns[key_added]["metrics"]``.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        match = data.match
        model = self.pretrained.model
        device = model_device(self.pretrained)
        n_cells = adata.n_obs
        cell_rows = {}
        if self.gene_embedding_cells:
            positions = pd.Index(adata.obs_names).get_indexer(self.gene_embedding_cells)
            missing = [c for c, p in zip(self.gene_embedding_cells, positions) if p < 0]
            if missing:
                raise InputError(f"gene_embedding_cells not in obs_names, e.g. {missing[0]!r}")
            cell_rows = {int(p): c for p, c in zip(positions, self.gene_embedding_cells)}
        vocab_to_var = torch.full(
            (len(self.pretrained.vocab),), -1, dtype=torch.long, device=device
        )
        vocab_to_var[torch.as_tensor(match.vocab_indices, device=device)] = torch.as_tensor(
            match.var_indices, device=device
        )
        default = None
        per_token: dict[str, np.ndarray] = {}
        logits: dict[str, np.ndarray] = {}
        gene_sum = gene_count = None
        per_cell_genes: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for batch in iter_model_batches(
                adata,
                self.pretrained,
                match,
                genes=None,
                max_len=self.max_len,
                batch_size=self.batch_size,
                description="embed",
            ):
                # without gene embeddings only the cell tokens are read: skip the rest (exact)
                out = model(**model_inputs(batch), cells_only=not self.gene_embeddings)
                index = batch["cell_index"].cpu().numpy()
                if self.classes is None:
                    chosen = out.cell_embedding
                else:
                    chosen = model.class_embedding(out, self.classes)
                if default is None:
                    default = np.zeros((n_cells, chosen.shape[-1]), dtype=np.float32)
                    for name, value in out.class_embeddings.items():
                        per_token[name] = np.zeros((n_cells, value.shape[-1]), dtype=np.float32)
                    for name, value in out.logits.items():
                        logits[name] = np.zeros((n_cells, value.shape[-1]), dtype=np.float32)
                    if self.gene_embeddings:
                        d = out.gene_embeddings.shape[-1]
                        gene_sum = torch.zeros(adata.n_vars + 1, d, device=device)
                        gene_count = torch.zeros(adata.n_vars + 1, device=device)
                default[index] = chosen.float().cpu().numpy()
                for name, value in out.class_embeddings.items():
                    per_token[name][index] = value.float().cpu().numpy()
                for name, value in out.logits.items():
                    logits[name][index] = value.float().cpu().numpy()
                if self.gene_embeddings:
                    ids = batch["gene_ids"]
                    var_pos = torch.where(ids >= 0, vocab_to_var[ids.clamp(min=0)], -1)
                    slot = torch.where(var_pos >= 0, var_pos, adata.n_vars).reshape(-1)
                    emb = out.gene_embeddings.float()
                    gene_sum.index_add_(0, slot, emb.reshape(-1, emb.shape[-1]))
                    gene_count.index_add_(0, slot, torch.ones_like(slot, dtype=gene_count.dtype))
                    for b, row in enumerate(index):
                        if int(row) in cell_rows:
                            matrix = np.full(
                                (adata.n_vars, emb.shape[-1]), np.nan, dtype=np.float32
                            )
                            keep = var_pos[b] >= 0
                            matrix[var_pos[b][keep].cpu().numpy()] = emb[b][keep].cpu().numpy()
                            per_cell_genes[cell_rows[int(row)]] = matrix
        key = key_added.removeprefix("X_") or key_added
        obs: dict[str, Any] = {}
        obsm: dict[str, Any] = {key_added: default}
        var: dict[str, np.ndarray] = {}
        varm: dict[str, np.ndarray] = {}
        for name, value in per_token.items():
            obsm[f"{key_added}_{name}"] = value
        metrics: dict[str, dict[str, float | int]] = {}
        refined: dict[str, dict[str, Any]] = {}
        graph = source = None
        if self.refine:
            from scprint.tasks.refine import cell_graph, refine_logits

            graph, source = cell_graph(adata)
            log.info("refining labels %s over %s", self.refine, source)
        for name, value in logits.items():
            encoder = self.pretrained.labels[name]
            if name in self.refine:
                unrefined = value.argmax(axis=1)
                value = refine_logits(value, graph, self.refine_lambda)
                changed = int((value.argmax(axis=1) != unrefined).sum())
                refined[name] = {"n_changed": changed}
            leaf_names = [str(encoder.label_name(c)) for c in encoder.classes]
            if len(set(leaf_names)) != len(leaf_names):
                leaf_names = [str(c) for c in encoder.classes]
            probs = torch.softmax(torch.from_numpy(value), dim=-1).numpy()
            winner = probs.argmax(axis=1)
            obs[f"{key}_{name}"] = pd.Categorical.from_codes(winner, categories=leaf_names)
            obs[f"{key}_{name}_prob"] = probs[np.arange(n_cells), winner].astype(np.float32)
            if name in self.refine:
                obs[f"{key}_{name}_unrefined"] = pd.Categorical.from_codes(
                    unrefined, categories=leaf_names
                )
            if self.probabilities:
                obsm[f"{key}_{name}_probs"] = pd.DataFrame(
                    probs, index=adata.obs_names, columns=leaf_names
                )
            column = self.label_columns.get(name, name)
            if column in adata.obs:
                metrics[name] = label_metrics(
                    adata.obs[column].astype(str).to_numpy(), winner, encoder
                )
                log.info("embed %s: %s", name, metrics[name])
            elif name in self.label_columns:
                raise InputError(
                    f"obs has no column {column!r} (true labels of {name!r}); available: {list(adata.obs.columns)}"
                )
        if self.gene_embeddings:
            counts = gene_count[: adata.n_vars].cpu().numpy()
            mean = (
                (gene_sum[: adata.n_vars] / gene_count[: adata.n_vars].clamp(min=1)[:, None])
                .cpu()
                .numpy()
            )
            mean[counts == 0] = np.nan
            varm[f"{key_added}_genes"] = mean.astype(np.float32)
            var[f"{key}_n_cells"] = counts.astype(np.int64)
            for cell, matrix in per_cell_genes.items():
                varm[f"{key_added}_genes_{cell}"] = matrix
        settings = provenance(
            self.pretrained,
            classes=self.classes or list(per_token),
            metrics=metrics,
            refine=None
            if not self.refine
            else {"lambda": self.refine_lambda, "graph": source, "classes": refined},
            gene_match=match.summary(),
        )
        return store_result(
            adata,
            {"obsm": obsm, "obs": obs, "var": var, "varm": varm},
            settings,
            key_added,
            copy=copy,
        )
