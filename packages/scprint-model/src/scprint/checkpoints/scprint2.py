"""Reading scPRINT-2 checkpoints (the ``scprint2`` package 1.0.x; published ``small-v2.ckpt``,
``v2-medium.ckpt``).

A scPRINT-2 checkpoint is a Lightning checkpoint whose ``hyper_parameters`` are the
``scPRINT2`` constructor arguments (``genes`` as ``{organism: [Ensembl ids]}``, ``organisms``,
``classes``, ``label_decoders``, ``labels_hierarchy``, ``compress_class_dim``, ...) and whose
``state_dict`` keys are our module names (:class:`scprint.model.ScPrint2` keeps the original's).
This module turns them into a :class:`ScPrint2Config`, a :class:`Vocabulary` and label encoders,
doing what the original's ``on_load_checkpoint`` does:

* the paths of the gene-embedding and gene-position files (``precpt_gene_emb``,
  ``gene_pos_file``, on the authors' disks) are ignored: the gene table and the position table
  (``pos_encoder.pe``) are in the state dict;
* a classifier's number of labels is its weights' (``cls_decoders.<class>.out_layer``), which may
  exceed the ``classes`` hyper-parameter when labels were added later;
* ``gene_encoder[.0].embedding.weight`` (older key) is read as ``...embeddings.weight``; a
  ``transformer`` hyper-parameter (older name) as ``attention``; a gene list (older layout) is
  split into organisms by its Ensembl prefixes, in list order;
* training-only heads are dropped with a log line: the adversarial organism / assay classifiers
  (``adv_*_decoder``), the splicing head (``splicing_head``, whose outputs the original's own
  forward pass cannot compute), the batch discriminator, and an MVC decoder the model does not
  declare or that the original cannot run (``"concat query"`` / ``"sum query"``).

Options we do not offer raise :class:`CheckpointError` naming them: attention variants other
than softmax attention (``performer``, ``hyper``, ``criss-cross``, ``softpick``, ``adasplash``,
``linear``), binned expression, ``raw`` / ``both`` normalisation, a gene-gene attention bias, a
memory-mapped gene table. Missing or unexpected tensors raise it too, naming the key.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.ontology import LabelEncoder
from ..data.organisms import ORGANISMS, organism_of_gene
from ..data.vocabulary import Vocabulary
from ..model import ScPrint2, ScPrint2Config
from ..model.scprint2 import ScPrint2Output
from . import scprint1
from .pretrained import Pretrained
from .reader import CheckpointError, load_state_strict

log = logging.getLogger(__name__)

#: Hyper-parameters only scPRINT-2's ``scPRINT2`` writes (how a checkpoint is recognised).
SIGNATURE = ("d_model_cell", "nlayers_cell", "finetune_gene_emb", "splicing_head", "do_adv_cls")
#: State-dict prefixes of heads only training uses.
TRAINING_ONLY_PREFIXES = (
    "adv_assay_decoder.",
    "adv_organism_decoder.",
    "splicing_head.",
    "grad_reverse_discriminator_loss.",
)
#: ``attention`` values whose maths is softmax attention (``flash`` / ``legacy-flash`` are fused
#: kernels of it; the original falls back to ``normal`` without them).
SOFTMAX_ATTENTION = ("normal", "flash", "legacy-flash")
#: MVC decoders the original's forward pass can run.
RUNNABLE_MVC = ("inner product",)
VERSION = "original scPRINT-2"
#: The original scPRINT2 constructor's defaults, for hyper-parameters a checkpoint lacks.
DEFAULTS: dict[str, Any] = {
    "nhead": 4,
    "nlayers": 8,
    "num_heads_kv": 4,
    "dropout": 0.1,
    "normalization": "sum",
    "expr_emb_style": "continuous",
    "expr_encoder_layers": 3,
    "use_metacell_token": False,
    "layers_cls": [256, 128],
    "zinb": True,
    "cell_specific_blocks": False,
    "d_model_cell": 128,
    "nlayers_cell": 6,
    "nhead_cell": 4,
    "num_heads_kv_cell": 4,
    "freeze_embeddings": True,
}


def is_scprint2(checkpoint: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint dictionary was written by scPRINT-2 (``scprint2`` 1.0.x)."""
    hparams = checkpoint.get("hyper_parameters")
    return (
        isinstance(hparams, dict)
        and "genes" in hparams
        and "d_model" in hparams
        and any(key in hparams for key in SIGNATURE)
    )


def _hparam(hparams: dict[str, Any], key: str) -> Any:
    value = hparams.get(key)
    return DEFAULTS.get(key) if value is None else value


def refuse_unsupported(hparams: dict[str, Any], path: str) -> None:
    """Raise :class:`CheckpointError` for an option of the original that we do not offer."""
    attention = hparams.get("attention") or hparams.get("transformer") or "normal"
    if attention not in SOFTMAX_ATTENTION:
        raise CheckpointError(
            f"{path}: attention={attention!r} is not supported; scprint runs scPRINT-2 models "
            f"trained with softmax attention ({', '.join(SOFTMAX_ATTENTION)})"
        )
    checks = {
        "expr_emb_style": (("continuous", "metacell"), "expression encoder"),
        "normalization": (("sum", "log"), "expression normalisation"),
    }
    for key, (allowed, what) in checks.items():
        value = _hparam(hparams, key)
        if value not in allowed:
            raise CheckpointError(
                f"{path}: {key}={value!r} ({what}) is not supported; expected one of {list(allowed)}"
            )
    if hparams.get("attn_bias") not in (None, "none"):
        raise CheckpointError(
            f"{path}: attn_bias={hparams['attn_bias']!r} (a gene-gene attention bias read from a "
            "file) is not supported"
        )
    if hparams.get("memmap_gene_emb"):
        raise CheckpointError(
            f"{path}: memmap_gene_emb=True (a gene table kept outside the checkpoint) is not supported"
        )


def config_from_hparams(
    hparams: dict[str, Any], state: dict[str, torch.Tensor], path: str
) -> ScPrint2Config:
    """The :class:`ScPrint2Config` of a scPRINT-2 checkpoint (``state`` already renamed)."""
    refuse_unsupported(hparams, path)
    mvc = hparams.get("mvc_decoder")
    if (
        mvc in (None, "None")
        or mvc not in RUNNABLE_MVC
        or "mvc_decoder.gene2query.weight" not in state
    ):
        mvc = None
    compress = hparams.get("compress_class_dim")
    heads_kv = _hparam(hparams, "num_heads_kv")
    heads_kv_cell = _hparam(hparams, "num_heads_kv_cell")
    try:
        return ScPrint2Config(
            d_model=int(hparams["d_model"]),
            n_layers=int(_hparam(hparams, "nlayers")),
            n_heads=int(_hparam(hparams, "nhead")),
            n_heads_kv=None if heads_kv is None else int(heads_kv),
            dropout=float(_hparam(hparams, "dropout")),
            normalisation=str(_hparam(hparams, "normalization")),
            expression_encoder=str(_hparam(hparams, "expr_emb_style")),
            expr_encoder_layers=int(_hparam(hparams, "expr_encoder_layers")),
            metacell_token=bool(_hparam(hparams, "use_metacell_token")),
            classifier_layers=list(_hparam(hparams, "layers_cls")),
            zinb=bool(_hparam(hparams, "zinb")),
            mvc_decoder=mvc,
            compress_class_dim=None if compress is None else dict(compress),
            cell_specific_blocks=bool(_hparam(hparams, "cell_specific_blocks")),
            d_model_cell=int(_hparam(hparams, "d_model_cell")),
            n_layers_cell=int(_hparam(hparams, "nlayers_cell")),
            n_heads_cell=int(_hparam(hparams, "nhead_cell")),
            n_heads_kv_cell=None if heads_kv_cell is None else int(heads_kv_cell),
            gene_adapter="gene_encoder.0.embeddings.weight" in state,
            freeze_gene_embeddings=bool(_hparam(hparams, "freeze_embeddings")),
            use_positions="pos_encoder.pe" in state,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: hyper-parameters do not describe a model: {err}") from err


def genes_by_organism(hparams: dict[str, Any], path: str) -> dict[str, list[str]]:
    """``{organism: [Ensembl ids]}`` in the model's vocabulary order (its ``organisms`` order)."""
    genes = hparams["genes"]
    if isinstance(genes, dict):
        # the original's vocabulary: the genes of each organism of ``organisms``, in that order
        listed = [str(o) for o in (hparams.get("organisms") or genes)]
        absent = [o for o in listed if o not in genes]
        if absent:
            raise CheckpointError(
                f"{path}: hyper-parameter organisms lists {absent[0]!r}, which genes does not hold"
            )
        return {o: [str(g) for g in genes[o]] for o in listed}
    grouped: dict[str, list[str]] = {}
    for gene in genes:
        organism = organism_of_gene(str(gene))
        if organism is None:
            raise CheckpointError(
                f"{path}: hyper-parameter genes is a list holding {str(gene)!r}, whose organism "
                "its Ensembl prefix does not tell; expected {organism: [Ensembl ids]}"
            )
        grouped.setdefault(organism, []).append(str(gene))
    return grouped


def model_state(
    checkpoint: dict[str, Any], hparams: dict[str, Any], path: str
) -> dict[str, torch.Tensor]:
    """The state dict under our module names: renamed keys, training-only heads dropped."""
    state = dict(checkpoint["state_dict"])
    for prefix in ("gene_encoder.", "gene_encoder.0."):
        old, new = f"{prefix}embedding.weight", f"{prefix}embeddings.weight"
        if old in state:
            state[new] = state.pop(old)
    dropped = [k for k in state if k.startswith(TRAINING_ONLY_PREFIXES)]
    mvc = hparams.get("mvc_decoder")
    if mvc not in RUNNABLE_MVC:
        dropped += [k for k in state if k.startswith("mvc_decoder.")]
    for key in dropped:
        del state[key]
    heads = sorted({key.split(".")[0] for key in dropped})
    if heads:
        log.info(
            "%s: not loading the training-only heads %s (%d tensors)%s",
            path,
            heads,
            len(dropped),
            f"; the original cannot run its {mvc!r} MVC decoder"
            if "mvc_decoder" in heads and mvc not in (None, "None")
            else "",
        )
    pe = state.get("pos_encoder.pe")
    if pe is not None and pe.dim() == 2:
        state["pos_encoder.pe"] = pe.unsqueeze(1)
    return state


def label_sizes(
    hparams: dict[str, Any], state: dict[str, torch.Tensor], path: str
) -> dict[str, int]:
    """Label class -> labels its classifier scores (its weights' size), in cell-token order."""
    classes = hparams.get("classes") or {}
    counts = hparams.get("label_counts")
    if isinstance(counts, dict) and set(counts) == set(classes):
        classes = counts
    sizes = {}
    for name in classes:
        bias = state.get(f"cls_decoders.{name}.out_layer.bias")
        if bias is None:
            raise CheckpointError(
                f"checkpoint {path!r} lacks tensor 'cls_decoders.{name}.out_layer.bias'"
            )
        sizes[str(name)] = int(bias.shape[0])
    return sizes


def load(checkpoint: dict[str, Any], path: Path) -> Pretrained:
    """A :class:`Pretrained` scPRINT-2 model from a checkpoint dictionary (see the module docstring)."""
    hparams = dict(checkpoint["hyper_parameters"])
    if "attention" not in hparams and "transformer" in hparams:
        hparams["attention"] = hparams["transformer"]
    state = model_state(checkpoint, hparams, str(path))
    config = config_from_hparams(hparams, state, str(path))
    genes = genes_by_organism(hparams, str(path))
    organisms = list(genes)
    sizes = label_sizes(hparams, state, str(path))
    labels: dict[str, LabelEncoder] = scprint1.label_encoders(
        {**hparams, "label_counts": sizes}, str(path)
    )
    flat = [g for organism in organisms for g in genes[organism]]
    known = [o for o in organisms if o in ORGANISMS]
    if not known:
        raise CheckpointError(
            f"{path}: the model's organisms {organisms} include neither of {sorted(ORGANISMS)}"
        )
    vocab = Vocabulary(genes=flat, symbols=[""] * len(flat), organism=known[0])
    model = ScPrint2(config, len(flat), sizes)
    load_state_strict(model, state, path)
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=config.normalisation,
        version=VERSION,
        path=path,
        sampling={
            "max_len": config.max_len,
            "gene_sampling": "random",
            "pad_with_unexpressed": True,
        },
        organisms=organisms,
    )


@torch.no_grad()
def outputs_as_original(
    model: ScPrint2,
    gene_ids: torch.Tensor,
    counts: torch.Tensor,
    depth: torch.Tensor,
    neighbours: torch.Tensor | None = None,
    neighbour_distances: torch.Tensor | None = None,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Our model's outputs under the original's names (the parity contract, ``benchmarks/parity``).

    The forward pass with VAE latents drawn as the original draws them (``sample_latent=True``,
    after ``torch.manual_seed(seed)`` when ``seed`` is given): ``mean``, ``disp``,
    ``zero_logits``, ``input_cell_embs`` / ``input_cell_emb``, ``output_cell_embs`` /
    ``output_cell_emb``, ``compressed_cell_embs_<i>`` (token ``i``), ``vae_kl_loss``,
    ``cls_output_<class>``, ``gene_embedding``, ``mvc_*``; per layer ``q_<i>`` / ``k_<i>``
    ``(B, S, heads, head_dim)`` and the attention probabilities ``attn_<i>``; and generation
    from the output cell tokens (``generate_*``) at each cell's depth.
    """
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    forward: ScPrint2Output = model(
        gene_ids,
        counts,
        depth,
        return_qk=True,
        return_mvc=model.mvc_decoder is not None,
        neighbours=neighbours,
        neighbour_distances=neighbour_distances,
        sample_latent=True,
    )
    out: dict[str, torch.Tensor] = {
        "mean": forward.zinb_mean,
        "input_cell_embs": forward.input_cell_tokens,
        "input_cell_emb": forward.input_cell_tokens.mean(dim=1),
        "output_cell_embs": forward.cell_tokens,
        "output_cell_emb": forward.cell_embedding,
        "gene_embedding": forward.gene_embeddings,
    }
    if forward.zinb_dispersion is not None:
        out.update(disp=forward.zinb_dispersion, zero_logits=forward.zinb_dropout_logit)
    if forward.cell_codes is not None:
        for i, name in enumerate(model.cell_token_index):
            out[f"compressed_cell_embs_{i}"] = forward.cell_codes[name]
        out["vae_kl_loss"] = forward.vae_kl if forward.vae_kl is not None else torch.zeros(())
    out.update({f"cls_output_{name}": value for name, value in forward.logits.items()})
    for key, value in (forward.mvc or {}).items():
        out[f"mvc_{key}"] = value
    for layer, (q, k) in enumerate(forward.qk or []):
        out[f"q_{layer}"] = q.transpose(1, 2)
        out[f"k_{layer}"] = k.transpose(1, 2)
        scores = torch.einsum("bhtd,bhsd->bhts", q, k * q.shape[-1] ** -0.5)
        out[f"attn_{layer}"] = torch.softmax(scores, dim=-1)
    generated = model.decode_from_cell_tokens(
        forward.cell_tokens, gene_ids, counts.sum(1), depth=depth
    )
    out["generate_mean"] = generated["mean"]
    if "dispersion" in generated:
        out["generate_disp"] = generated["dispersion"]
        out["generate_zero_logits"] = generated["dropout_logit"]
    return {key: value.detach().float().cpu().numpy() for key, value in out.items()}
