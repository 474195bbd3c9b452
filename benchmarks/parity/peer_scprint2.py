"""Runs the original scPRINT-2 (``scprint2`` 1.0.3) inside its peer virtualenv and records its outputs.

Usage (from the repository root, with the peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint2-1.0.3/bin/python benchmarks/parity/peer_scprint2.py \
        INPUTS.npz TASK_INPUTS.npz OUT_DIR CONFIG_NAME [CONFIG_NAME ...]

For each named configuration (:data:`CONFIGS`) the worker

1. builds a randomly initialised ``scPRINT2`` with ``attention="normal"`` (CPU attention), from
   a gene-embedding parquet and a gene-position parquet written next to it (relative paths, as the
   published checkpoints hold paths of their authors' disks), moves every weight off its
   initialisation, and, where the configuration says so, grows a classifier (labels added after
   the ``classes`` hyper-parameter was written, which the original's ``on_load_checkpoint``
   handles);
2. saves it with Lightning's ``Trainer.save_checkpoint`` as ``OUT_DIR/CONFIG_NAME.ckpt``;
3. loads it back as the original's CLI does (``scPRINT2.load_from_checkpoint(path,
   precpt_gene_emb=None, gene_pos_file=None)``) and, in eval mode and float32, records
   (``OUT_DIR/CONFIG_NAME.npz``):

   * the forward pass on ``INPUTS.npz`` (every output of ``forward``, per-layer queries / keys and
     attention probabilities), after ``torch.manual_seed(SEED)`` (its VAE compressors draw their
     latent even in evaluation), and generation (``_generate``) from its output cell tokens;
   * its denoising (``_predict(depth_mult=DENOISE_DEPTH_MULT)`` batch by batch, as its
     ``Denoiser`` does) on ``TASK_INPUTS.npz``: ``denoise_mean`` ...;
   * its GRN inference core on ``TASK_INPUTS.npz``: ``_predict(get_attention_layer=...)`` batch by
     batch (the model's ``Attention`` accumulator, set up as ``GNInfer.predict`` does for a fixed
     gene list), then ``GNInfer.aggregate`` and ``GNInfer.filter`` for each of
     :data:`GRN_VARIANTS`: ``network_<variant>`` (cell-token rows and columns removed, rows =
     the attending gene, genes in vocabulary order).

``INPUTS.npz`` is :func:`inputs.build_scprint2_inputs`; ``TASK_INPUTS.npz`` holds real cells over
one fixed gene list (``gene_ids``, ``counts``, ``depth``, ``neighbour_counts``,
``neighbour_distances``, ``batch_size``), made by ``bench_scprint2.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stubs  # noqa: E402

stubs.install()

from importlib.metadata import version  # noqa: E402

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse  # noqa: E402
import torch  # noqa: E402
from scprint2 import scPRINT2  # noqa: E402
from scprint2.tasks.grn import GNInfer  # noqa: E402

PEER_VERSION = version("scprint2")
HUMAN, MOUSE = "NCBITaxon:9606", "NCBITaxon:10090"
#: seed set before each forward pass (the VAE compressors draw from torch's global generator)
SEED = 7
#: depth multiplier of the denoising (the original Denoiser's default predict_depth_mult)
DENOISE_DEPTH_MULT = 4.0

CELL_TYPE = {
    "n": 6,
    "decoder": {
        0: "CL:0000624",
        1: "CL:0000625",
        2: "CL:0000623",
        3: "CL:0000236",
        4: "CL:0001054",
        5: "CL:0000860",
        6: "CL:0000084",
        7: "CL:0000576",
    },
    "hierarchy": {6: [0, 1], 7: [4, 5]},
}
SEX = {"n": 2, "decoder": {0: "PATO:0000383", 1: "PATO:0000384"}, "hierarchy": {}}
ORGANISM = {"n": 2, "decoder": {0: HUMAN, 1: MOUSE}, "hierarchy": {}}
ASSAY = {"n": 3, "decoder": {0: "EFO:0009899", 1: "EFO:0009922", 2: "EFO:0030003"}, "hierarchy": {}}
#: the label the grown assay classifier adds after the ``classes`` hyper-parameter was written
ASSAY_ADDED = "EFO:0008930"

CONFIGS = {
    # the published small-v2 / v2-medium layout: cell transformer, VAE + FSQ compressors,
    # metacell expression encoder, gene-table adapter, positions, two organisms, and the
    # training-only heads (adversarial organism classifier, splicing head) that loading drops
    "s2_cell_vae_metacell": {
        "d_model": 32,
        "nhead": 4,
        "num_heads_kv": 2,
        "nlayers": 2,
        "organisms": [HUMAN, MOUSE],
        "positions": True,
        "gene_table": True,
        "finetune_gene_emb": True,
        "normalization": "log",
        "expr_emb_style": "metacell",
        "expr_encoder_layers": 2,
        "classes": {
            "cell_type_ontology_term_id": CELL_TYPE,
            "organism_ontology_term_id": ORGANISM,
            "sex_ontology_term_id": SEX,
        },
        "compress_class_dim": {
            "cell_type_ontology_term_id": 8,
            "organism_ontology_term_id": 2,
            "sex_ontology_term_id": 2,
        },
        "layers_cls": [16],
        "cell_specific_blocks": True,
        "d_model_cell": 16,
        "nhead_cell": 2,
        "nlayers_cell": 2,
        "num_heads_kv_cell": 1,
        "do_adv_cls": True,
        "splicing_head": True,
    },
    # cell tokens in the gene sequence, FSQ compressors on every token (base included), sum
    # normalisation, metacell token, MVC decoder, full multi-head attention; one organism;
    # attention "legacy-flash" (flash kernels, the same attention)
    "s2_shared_fsq_mvc": {
        "d_model": 32,
        "nhead": 4,
        "num_heads_kv": 4,
        "nlayers": 2,
        "organisms": [HUMAN],
        "positions": False,
        "gene_table": False,
        "normalization": "sum",
        "expr_emb_style": "continuous",
        "expr_encoder_layers": 2,
        "use_metacell_token": True,
        "classes": {"cell_type_ontology_term_id": CELL_TYPE, "sex_ontology_term_id": SEX},
        "compress_class_dim": {
            "default": 3,
            "cell_type_ontology_term_id": 4,
            "sex_ontology_term_id": 1,
        },
        "layers_cls": [],
        "mvc_decoder": "inner product",
        "attention": "legacy-flash",
    },
    # grouped-query attention, VAE compressors (base token included) and FSQ, positions, a gene
    # table without adapter, two organisms, a concat-query MVC decoder (which the original
    # cannot run: loading drops it), and an assay classifier grown from 3 to 4 labels after its
    # hyper-parameters were written
    "s2_gqa_vae_grown": {
        "d_model": 48,
        "nhead": 6,
        "num_heads_kv": 2,
        "nlayers": 3,
        "organisms": [HUMAN, MOUSE],
        "positions": True,
        "gene_table": True,
        "normalization": "log",
        "expr_emb_style": "continuous",
        "expr_encoder_layers": 3,
        "classes": {
            "cell_type_ontology_term_id": CELL_TYPE,
            "assay_ontology_term_id": ASSAY,
            "sex_ontology_term_id": SEX,
        },
        "compress_class_dim": {
            "default": 8,
            "cell_type_ontology_term_id": 10,
            "assay_ontology_term_id": 8,
            "sex_ontology_term_id": 2,
        },
        "layers_cls": [16],
        "mvc_decoder": "concat query",
        "grow": "assay_ontology_term_id",
    },
}

#: GRN variants: the original GNInfer's options
GRN_VARIANTS = {
    "mean": {"head_agg": "mean", "filtration": "none", "preprocess": "softmax"},
    "heads": {"head_agg": "none", "filtration": "none", "preprocess": "softmax"},
    "max_sym_thresh": {
        "head_agg": "max",
        "filtration": "thresh",
        "symmetrize": True,
        "preprocess": "softmax",
    },
    "scores": {"head_agg": "mean", "filtration": "none", "preprocess": "none"},
}


def vocabulary(inputs: dict, organisms: list[str]) -> dict[str, list[str]]:
    genes = [str(g) for g in inputs["genes"]]
    n_human = int(inputs["n_human_genes"])
    by_organism = {HUMAN: genes[:n_human], MOUSE: genes[n_human:]}
    return {organism: by_organism[organism] for organism in organisms}


def build(config: dict, inputs: dict, workdir: Path) -> scPRINT2:
    genes = vocabulary(inputs, config["organisms"])
    flat = [g for organism in config["organisms"] for g in genes[organism]]
    rows = [list(inputs["genes"]).index(g) for g in flat]
    kwargs = dict(
        genes=genes,
        organisms=list(config["organisms"]),
        d_model=config["d_model"],
        nhead=config["nhead"],
        nlayers=config["nlayers"],
        num_heads_kv=config["num_heads_kv"],
        normalization=config["normalization"],
        attention=config.get("attention", "normal"),
        expr_emb_style=config["expr_emb_style"],
        expr_encoder_layers=config["expr_encoder_layers"],
        classes={k: v["n"] for k, v in config["classes"].items()},
        labels_hierarchy={k: v["hierarchy"] for k, v in config["classes"].items()},
        label_decoders={k: dict(v["decoder"]) for k, v in config["classes"].items()},
        compress_class_dim=config["compress_class_dim"],
        layers_cls=config["layers_cls"],
        mvc_decoder=config.get("mvc_decoder"),
        cell_specific_blocks=config.get("cell_specific_blocks", False),
        finetune_gene_emb=config.get("finetune_gene_emb", False),
        use_metacell_token=config.get("use_metacell_token", False),
        do_adv_cls=config.get("do_adv_cls", False),
        splicing_head=config.get("splicing_head", False),
        dropout=0.1,
    )
    for key in ("d_model_cell", "nhead_cell", "nlayers_cell", "num_heads_kv_cell"):
        if key in config:
            kwargs[key] = config[key]
    if config["gene_table"]:
        table = pd.DataFrame(inputs["gene_table"][rows], index=flat)
        table.columns = [str(c) for c in table.columns]
        table.to_parquet(workdir / "gene_embeddings.parquet")
        kwargs["precpt_gene_emb"] = "gene_embeddings.parquet"  # relative: no path in the ckpt
    if config["positions"]:
        positions = pd.DataFrame({"pos": inputs["gene_pos"][rows]}, index=flat)
        positions.to_parquet(workdir / "gene_positions.parquet")
        kwargs["gene_pos_file"] = "gene_positions.parquet"
    return scPRINT2(**kwargs)


@torch.no_grad()
def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Move every weight away from its initialisation (by 0.1 x a standard normal draw)."""
    for param in model.parameters():
        param.add_(torch.randn(param.shape, generator=generator) * 0.1)


@torch.no_grad()
def grow(model: scPRINT2, name: str, generator: torch.Generator) -> None:
    """Add one label to classifier ``name`` after the ``classes`` hyper-parameter was written."""
    old = model.cls_decoders[name].out_layer
    new = torch.nn.Linear(old.in_features, old.out_features + 1)
    new.weight[: old.out_features] = old.weight
    new.bias[: old.out_features] = old.bias
    new.weight[old.out_features :] = torch.randn(1, old.in_features, generator=generator) * 0.1
    new.bias[old.out_features :] = -0.13
    model.cls_decoders[name].out_layer = new
    model.hparams["label_decoders"][name][old.out_features] = ASSAY_ADDED


def save(model: scPRINT2, path: Path) -> None:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)


def load(path: Path) -> scPRINT2:
    """As the original CLI loads a checkpoint (``scprint2/cli.py``).

    Two changes make its evaluation mode deterministic and runnable, each a defect of the
    original, not a choice of the comparison:

    * simpler-flash 1.3.5's softmax attention calls ``scaled_dot_product_attention(...,
      dropout_p=self.dropout)`` whatever the mode, so attention dropout (the model's ``dropout``)
      also applies in evaluation; it is set to 0 in every attention module here (our model
      computes the evaluation-mode attention);
    * the original's forward pass fails on a model with a splicing head (``_expr_decoder``
      scales the spliced means by ``splicing_mult``, which ``forward`` never passes), so that
      head is detached, as our loader drops it; no compared output reads it.
    """
    from simpler_flash.mha import CrossAttention, SelfAttention

    model = scPRINT2.load_from_checkpoint(
        path, precpt_gene_emb=None, gene_pos_file=None, map_location="cpu"
    )
    for module in model.modules():
        if isinstance(module, SelfAttention | CrossAttention):
            module.dropout = 0.0
    model.splicing_head = None
    return model.to(torch.float32).eval()


def as_numpy(value: torch.Tensor) -> np.ndarray:
    return value.detach().to(torch.float32).cpu().numpy()


def neighbour_inputs(
    model: scPRINT2, inputs: dict, rows: slice | np.ndarray
) -> dict[str, torch.Tensor]:
    if model.expr_emb_style != "metacell":
        return {}
    return {
        "neighbors": torch.as_tensor(inputs["neighbour_counts"][rows]),
        "neighbors_info": torch.as_tensor(inputs["neighbour_distances"][rows]),
    }


def cells_of(inputs: dict, n_genes: int) -> np.ndarray:
    """Rows of the inputs whose genes the vocabulary holds (mouse cells need a mouse block)."""
    return np.flatnonzero((inputs["gene_ids"] < n_genes).all(axis=1))


@torch.no_grad()
def run_forward(model: scPRINT2, inputs: dict) -> dict[str, np.ndarray]:
    rows = cells_of(inputs, len(model.genes))
    gene_pos = torch.as_tensor(inputs["gene_ids"][rows], dtype=torch.long)
    counts = torch.as_tensor(inputs["counts"][rows], dtype=torch.float32)
    depth = torch.as_tensor(inputs["depth"][rows], dtype=torch.float32)
    knn = neighbour_inputs(model, inputs, rows)
    out: dict[str, np.ndarray] = {"rows": rows}
    torch.manual_seed(SEED)
    result, qkvs = model(
        gene_pos,
        counts.clone(),
        req_depth=depth,
        do_class=True,
        get_gene_emb=True,
        # the original's "concat query" / "sum query" MVC decoders fail in its forward pass
        # (their means keep a trailing axis of size 1); only "inner product" runs
        do_mvc=model.hparams.get("mvc_decoder") == "inner product",
        get_attention_layer=list(range(model.nlayers)),
        **knn,
    )
    for key, value in result.items():
        if key == "compressed_cell_embs":
            for i, code in enumerate(value):
                out[f"compressed_cell_embs_{i}"] = as_numpy(code)
        else:
            out[key] = as_numpy(torch.as_tensor(value))
    for i, qkv in enumerate(qkvs):
        q, k = qkv[:, :, 0], qkv[:, :, 1]  # (B, S, H, D) each
        out[f"q_{i}"] = as_numpy(q)
        out[f"k_{i}"] = as_numpy(k)
        scores = torch.einsum("bthd,bshd->bhts", q, k * q.shape[-1] ** -0.5)
        out[f"attn_{i}"] = as_numpy(torch.softmax(scores, dim=-1))
    generated = model._generate(
        result["output_cell_embs"], gene_pos, depth_mult=counts.sum(1), req_depth=depth
    )
    for key, value in generated.items():
        out[f"generate_{key}"] = as_numpy(value)
    return out


@torch.no_grad()
def run_denoise(model: scPRINT2, task: dict) -> dict[str, np.ndarray]:
    """``_predict(depth_mult=DENOISE_DEPTH_MULT)`` batch by batch, as the original Denoiser."""
    model.on_predict_epoch_start()
    parts: list[list[np.ndarray]] = [[], [], []]
    size = int(task["batch_size"])
    for start in range(0, len(task["depth"]), size):
        rows = slice(start, start + size)
        knn = neighbour_inputs(model, task, rows)
        result = model._predict(
            torch.as_tensor(task["gene_ids"][rows], dtype=torch.long),
            torch.as_tensor(task["counts"][rows], dtype=torch.float32),
            torch.as_tensor(task["depth"][rows], dtype=torch.float32),
            knn_cells=knn.get("neighbors"),
            knn_cells_info=knn.get("neighbors_info"),
            do_generate=False,
            depth_mult=DENOISE_DEPTH_MULT,
            keep_output=False,
        )
        for part, value in zip(parts, result["expr"]):
            part.append(as_numpy(value))
    return {
        "denoise_mean": np.concatenate(parts[0]),
        "denoise_disp": np.concatenate(parts[1]),
        "denoise_zero_logits": np.concatenate(parts[2]),
    }


def start_index(model: scPRINT2) -> dict[str, int]:
    """First vocabulary index of each organism (the original Collator's ``start_idx``)."""
    starts, offset = {}, 0
    for organism in model.organisms:
        starts[organism] = offset
        offset += len(model._genes[organism])
    return starts


@torch.no_grad()
def run_gninfer(model: scPRINT2, task: dict, options: dict) -> np.ndarray:
    """The original GNInfer on a fixed gene list: its ``predict`` loop, ``aggregate``, ``filter``."""
    vocab = list(model.genes)
    given = [vocab[i] for i in task["gene_ids"][0]]
    gn = GNInfer(how="most var within", num_genes=len(given), **options)
    gn.how = "some"  # GNInfer(how="some") fails in its __init__ (reads genelist before setting it)
    gn.curr_genes = given
    gn.layer = list(range(model.nlayers))
    gn.n_cell_embs = model.attn.additional_tokens
    model.attn.precomp_attn = gn.head_agg == "mean_full"
    model.on_predict_epoch_start()
    model.attn.data = None
    # as GNInfer.predict for a fixed gene list: positions relative to the cells' organism
    starts = list(start_index(model).items())
    for i, (organism, first) in enumerate(starts):
        if organism == HUMAN:
            model.attn.speciesloc = first
            if i + 1 < len(starts):
                model.attn.gene_dim = starts[i + 1][1] - first
    size = int(task["batch_size"])
    for start in range(0, len(task["depth"]), size):
        rows = slice(start, start + size)
        knn = neighbour_inputs(model, task, rows)
        model._predict(
            torch.as_tensor(task["gene_ids"][rows], dtype=torch.long),
            torch.as_tensor(task["counts"][rows], dtype=torch.float32),
            torch.as_tensor(task["depth"][rows], dtype=torch.float32),
            knn_cells=knn.get("neighbors"),
            knn_cells_info=knn.get("neighbors_info"),
            keep_output=False,
            get_attention_layer=gn.layer,
        )
    adjacency = gn.aggregate(model)
    if [vocab.index(g) for g in gn.curr_genes] != list(task["gene_ids"][0]):
        raise RuntimeError(
            "the original reordered the genes; the task genes must be in vocabulary order"
        )
    n = gn.n_cell_embs
    if gn.head_agg == "none":
        network = adjacency[n:, n:, :]
    else:
        network = gn.filter(adjacency)[n:, n:]
        if scipy.sparse.issparse(network):
            network = network.toarray()
    model.attn.data = None
    model.attn.speciesloc = 0
    model.attn.gene_dim = len(vocab)
    return np.asarray(network, dtype=np.float32)


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    inputs = dict(np.load(argv[0], allow_pickle=False))
    task = dict(np.load(argv[1], allow_pickle=False))
    out_dir = Path(argv[2]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in argv[3:]:
        config = CONFIGS[name]
        torch.manual_seed(0)
        workdir = out_dir / f".work_{name}"
        workdir.mkdir(exist_ok=True)
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            model = build(config, inputs, workdir)
        finally:
            os.chdir(cwd)
        generator = torch.Generator().manual_seed(1)
        perturb(model, generator)
        if "grow" in config:
            grow(model, config["grow"], generator)
        path = out_dir / f"{name}.ckpt"
        save(model, path)
        loaded = load(path)
        outputs = run_forward(loaded, inputs)
        outputs.update(run_denoise(loaded, task))
        for variant, options in GRN_VARIANTS.items():
            outputs[f"network_{variant}"] = run_gninfer(loaded, task, options)
        np.savez_compressed(out_dir / f"{name}.npz", **outputs)
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
        report[name] = {
            "ckpt_bytes": path.stat().st_size,
            "outputs": sorted(outputs),
            "peer": f"scprint2 {PEER_VERSION}",
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
