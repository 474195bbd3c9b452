"""Reading the original scPRINT's first-generation checkpoints (packages 1.6.x and 2.x).

An original checkpoint holds ``hyper_parameters`` (the ``scPrint`` constructor arguments, plus
``genes``, ``gene_pos_enc``, ``label_counts``, ``label_decoders`` and ``labels_hierarchy`` the
model wrote there) and a ``state_dict`` whose keys are our module names (:mod:`scprint.model`
keeps the original's). This module turns the hyper-parameters into a :class:`ModelConfig`, a
:class:`Vocabulary` and one :class:`LabelEncoder` per label class, and renames the few keys that
changed between releases, as the original's ``on_load_checkpoint`` does:

* 1.6.x: ``gene_encoder.embedding.weight`` -> ``gene_encoder.embeddings.weight``; cell tokens in
  the order ``[base, depth, classes]`` (2.x: ``[depth, base, classes]``);
* ``grad_reverse_discriminator_loss.*`` (the adversarial batch classifier, a training-only loss
  head) is not part of the model and is dropped, with a log line saying so.

Anything else that does not fit (an unknown hyper-parameter value the network depends on, a
missing or unexpected tensor) raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.ontology import LabelEncoder, is_term_id, term_label
from ..data.organisms import ORGANISMS
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint
from .pretrained import Pretrained
from .reader import CheckpointError, load_state_strict

log = logging.getLogger(__name__)

#: State-dict prefixes of training-only heads that inference does not use.
TRAINING_ONLY_PREFIXES = ("grad_reverse_discriminator_loss.",)


def is_original(checkpoint: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint dictionary was written by the original scPRINT."""
    hparams = checkpoint.get("hyper_parameters")
    return isinstance(hparams, dict) and "genes" in hparams and "d_model" in hparams


def release_of(checkpoint: dict[str, Any]) -> str:
    """``"1.x"`` or ``"2.x"``: which original key layout a checkpoint uses."""
    state = checkpoint.get("state_dict", {})
    if "gene_encoder.embedding.weight" in state or "depth_atinput" not in checkpoint.get(
        "hyper_parameters", {}
    ):
        return "1.x"
    return "2.x"


def _require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise CheckpointError(f"{path}: {message}")


def config_from_hparams(hparams: dict[str, Any], release: str, path: str) -> ModelConfig:
    """The :class:`ModelConfig` of an original checkpoint's hyper-parameters."""
    unsupported = {
        "use_metacell_token": (False, "a metacell token"),
        "expr_emb_style": ("continuous", "a non-continuous expression encoder"),
        "attn_bias": ("none", "a gene-gene attention bias"),
        "prenorm": (True, "post-norm transformer blocks"),
    }
    for key, (expected, what) in unsupported.items():
        if key in hparams and hparams[key] != expected and hparams[key] is not None:
            raise CheckpointError(
                f"{path}: hyper-parameter {key}={hparams[key]!r} ({what}) is not supported; "
                f"this loader reproduces models with {key}={expected!r}"
            )
    mvc = hparams.get("mvc_decoder", "None")
    compress = hparams.get("compress_class_dim")
    try:
        return ModelConfig(
            d_model=int(hparams["d_model"]),
            n_layers=int(hparams.get("nlayers", 6)),
            n_heads=int(hparams.get("nhead", 8)),
            n_heads_kv=None
            if hparams.get("num_heads_kv") is None
            else int(hparams["num_heads_kv"]),
            dropout=float(hparams.get("dropout", 0.1)),
            mlp_ratio=float(hparams.get("mlp_ratio") or 4.0),
            normalisation=str(hparams.get("normalization", "sum")),
            expr_encoder_layers=int(hparams.get("expr_encoder_layers", 2)),
            classifier_layers=list(hparams.get("layers_cls") or []),
            depth_at_input=bool(hparams.get("depth_atinput", True)),
            depth_token_first=release != "1.x",
            zinb=bool(hparams.get("zinb", True)),
            mvc_decoder=None if mvc in (None, "None") else str(mvc),
            compress_class_dim=None if compress is None else dict(compress),
            cell_specific_blocks=bool(hparams.get("cell_specific_blocks", False)),
            freeze_gene_embeddings=bool(hparams.get("freeze_embeddings", True)),
            use_positions=hparams.get("gene_pos_enc") is not None,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: hyper-parameters do not describe a model: {err}") from err


def label_counts(hparams: dict[str, Any]) -> dict[str, int]:
    """Label class -> number of leaf labels, in class-token order."""
    counts = hparams.get("label_counts")
    if counts is None and isinstance(hparams.get("classes"), dict):
        counts = hparams["classes"]
    return {str(k): int(v) for k, v in (counts or {}).items()}


def label_encoders(hparams: dict[str, Any], path: str) -> dict[str, LabelEncoder]:
    """One :class:`LabelEncoder` per label class from ``label_decoders`` and ``labels_hierarchy``.

    Leaves are the labels ``0..n-1`` the classifier scores; coarse labels (ids ``>= n``) are the
    keys of ``labels_hierarchy``, each an ancestor of the leaves it lists. Ontology term ids get
    their names from the offline ontology (:mod:`scprint.data.ontology`).
    """
    decoders = hparams.get("label_decoders") or {}
    hierarchy = hparams.get("labels_hierarchy") or {}
    encoders = {}
    for name, n_leaves in label_counts(hparams).items():
        decoder = {int(k): str(v) for k, v in (decoders.get(name) or {}).items()}
        missing = [i for i in range(n_leaves) if i not in decoder]
        _require(
            not missing,
            path,
            f"label_decoders[{name!r}] lacks labels {missing[:5]} of the {n_leaves} its classifier scores",
        )
        leaves = [decoder[i] for i in range(n_leaves)]
        tree = {int(k): [int(i) for i in v] for k, v in (hierarchy.get(name) or {}).items()}
        coarse_ids = sorted(set(tree) | {i for i in decoder if i >= n_leaves})
        coarse = [decoder.get(i, f"{name}:{i}") for i in coarse_ids]
        ancestors: dict[str, list[str]] = {leaf: [] for leaf in leaves}
        for coarse_id, members in tree.items():
            for leaf in members:
                _require(
                    0 <= leaf < n_leaves,
                    path,
                    f"labels_hierarchy[{name!r}][{coarse_id}] lists {leaf}, not a leaf (0..{n_leaves - 1})",
                )
                ancestors[leaves[leaf]].append(decoder.get(coarse_id, f"{name}:{coarse_id}"))
        names = {
            label: ORGANISMS.get(label) or term_label(label)
            for label in leaves + coarse
            if is_term_id(label) and (label in ORGANISMS or not label.startswith("NCBITaxon:"))
        }
        encoders[name] = LabelEncoder(
            name=name, classes=leaves, coarse=coarse, ancestors=ancestors, names=names
        )
    return encoders


def vocabulary(hparams: dict[str, Any], path: str) -> tuple[Vocabulary, list[str]]:
    """The gene vocabulary (Ensembl ids, with position bins when the model uses them) and the
    organisms the checkpoint lists."""
    organisms = [str(o) for o in (hparams.get("organisms") or ["NCBITaxon:9606"])]
    genes_hparam = hparams["genes"]
    if isinstance(genes_hparam, dict):  # {organism: genes}: one vocabulary, organisms in order
        organisms = [str(o) for o in genes_hparam]
        genes = [str(g) for organism_genes in genes_hparam.values() for g in organism_genes]
    else:
        genes = [str(g) for g in genes_hparam]
    positions = hparams.get("gene_pos_enc")
    if positions is not None:
        _require(
            len(positions) == len(genes),
            path,
            f"gene_pos_enc has {len(positions)} entries for {len(genes)} genes",
        )
        positions = np.asarray(positions, dtype=np.int64)
    vocab = Vocabulary(
        genes=genes, symbols=[""] * len(genes), positions=positions, organism=organisms[0]
    )
    return vocab, organisms


def model_state(checkpoint: dict[str, Any], release: str, path: str) -> dict[str, torch.Tensor]:
    """The state dict under our module names (renamed keys, training-only heads dropped)."""
    state = dict(checkpoint["state_dict"])
    renames = {"gene_encoder.embedding.weight": "gene_encoder.embeddings.weight"}
    for old, new in renames.items():
        if old in state:
            state[new] = state.pop(old)
    dropped = [k for k in state if k.startswith(TRAINING_ONLY_PREFIXES)]
    for key in dropped:
        del state[key]
    if dropped:
        log.info(
            "%s: not loading the training-only batch discriminator (%d tensors)", path, len(dropped)
        )
    pe = state.get("pos_encoder.pe")
    if pe is not None and pe.dim() == 2:
        state["pos_encoder.pe"] = pe.unsqueeze(1)
    return state


#: Depth multiplier of the original's ``predict_mode="denoise"`` (``predict_depth_mult``).
DENOISE_DEPTH_MULT = 3.0


@torch.no_grad()
def outputs_as_original(
    model: torch.nn.Module,
    gene_ids: torch.Tensor,
    counts: torch.Tensor,
    depth: torch.Tensor,
) -> dict[str, np.ndarray]:
    """Our model's outputs under the original's output names (the parity contract).

    Runs, in eval mode, what the harness records from the original (``benchmarks/parity``):
    the forward pass (``mean``, ``disp``, ``zero_logits``, ``cell_embs``, ``cell_emb``,
    ``cls_output_<class>``, ``gene_embedding``, ``mvc_*``; ``q_<layer>``/``k_<layer>``
    ``(B, S, heads, head_dim)`` and the attention probabilities ``attn_<layer>``
    ``(B, heads, S, S)``), the denoising pass at :data:`DENOISE_DEPTH_MULT` times the depth
    (``denoise_*``) and bottleneck generation from the output cell tokens (``generate_*``).

    Args:
        model: a :class:`scprint.model.ScPrint`.
        gene_ids: ``(B, L)`` vocabulary indices (no padding, as the original).
        counts: ``(B, L)`` raw counts.
        depth: ``(B,)`` total counts per cell.
    """
    model.eval()
    out: dict[str, torch.Tensor] = {}
    forward = model(
        gene_ids, counts, depth, return_qk=True, return_mvc=model.mvc_decoder is not None
    )
    out.update(
        mean=forward.zinb_mean,
        cell_embs=forward.cell_tokens,
        cell_emb=forward.cell_tokens.mean(dim=1),
        gene_embedding=forward.gene_embeddings,
    )
    if forward.zinb_dispersion is not None:
        out.update(disp=forward.zinb_dispersion, zero_logits=forward.zinb_dropout_logit)
    out.update({f"cls_output_{name}": value for name, value in forward.logits.items()})
    for key, value in (forward.mvc or {}).items():
        out[f"mvc_{key}"] = value
    for layer, (q, k) in enumerate(forward.qk or []):
        out[f"q_{layer}"] = q.transpose(1, 2)
        out[f"k_{layer}"] = k.transpose(1, 2)
        scores = torch.einsum("bhtd,bhsd->bhts", q, k * q.shape[-1] ** -0.5)
        out[f"attn_{layer}"] = torch.softmax(scores, dim=-1)

    mult = DENOISE_DEPTH_MULT
    denoised = model(gene_ids, counts, depth * mult, target_depth=counts.sum(1) * mult)
    out["denoise_mean"] = denoised.zinb_mean
    if denoised.zinb_dispersion is not None:
        out["denoise_disp"] = denoised.zinb_dispersion
        out["denoise_zero_logits"] = denoised.zinb_dropout_logit

    generated = model.decode_from_cell_tokens(
        forward.cell_tokens, gene_ids, counts.sum(1), depth=depth
    )
    out["generate_mean"] = generated["mean"]
    if model.cell_transformer is None:  # the original drops them for cell_specific_blocks
        out["generate_cell_embs"] = generated["cell_tokens"]
        out["generate_cell_emb"] = generated["cell_tokens"].mean(dim=1)
    if "dispersion" in generated:
        out["generate_disp"] = generated["dispersion"]
        out["generate_zero_logits"] = generated["dropout_logit"]
    out.update({f"generate_cls_output_{n}": v for n, v in generated["logits"].items()})
    return {key: value.detach().float().cpu().numpy() for key, value in out.items()}


def parity_errors(
    ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, float]:
    """Max abs difference per output, means compared as fractions of their library size.

    ZINB / MVC means are counts (library size x a softmax); they are divided by their row sums
    first, so that every compared number is O(1) and one tolerance (1e-5) fits all outputs.
    Outputs present on one side only raise ``KeyError`` naming them.
    """
    only_ours = sorted(set(ours) - set(reference))
    only_reference = sorted(set(reference) - set(ours))
    if only_ours or only_reference:
        raise KeyError(
            f"outputs differ: only ours {only_ours}, only the original's {only_reference}"
        )
    errors = {}
    for key, expected in reference.items():
        got = ours[key].astype(np.float64)
        expected = expected.astype(np.float64)
        if got.shape != expected.shape:
            raise ValueError(f"{key}: shape {got.shape} vs the original's {expected.shape}")
        if key.endswith("mean"):
            got = got / got.sum(-1, keepdims=True)
            expected = expected / expected.sum(-1, keepdims=True)
        errors[key] = float(np.abs(got - expected).max())
    return errors


def load(checkpoint: dict[str, Any], path: Path) -> Pretrained:
    hparams = checkpoint["hyper_parameters"]
    release = release_of(checkpoint)
    config = config_from_hparams(hparams, release, str(path))
    vocab, organisms = vocabulary(hparams, str(path))
    labels = label_encoders(hparams, str(path))
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    model = ScPrint(
        config,
        len(vocab),
        {name: len(encoder.classes) for name, encoder in labels.items()},
        gene_positions=positions,
    )
    load_state_strict(model, model_state(checkpoint, release, str(path)), path)
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=config.normalisation,
        version=f"original {release}",
        path=path,
        sampling={
            "max_len": config.max_len,
            "gene_sampling": "random",
            "pad_with_unexpressed": True,
        },
        organisms=organisms,
    )
