"""Runs the original scPRINT (2.3.8 or 1.6.4) inside its peer virtualenv and records its outputs.

Usage (from the repository root, with a peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint-2.3.8/bin/python benchmarks/parity/peer_worker.py \
        INPUTS.npz OUT_DIR CONFIG_NAME [CONFIG_NAME ...]

For each named configuration (:data:`CONFIGS`, which says which release it needs), the worker

1. builds a randomly initialised original ``scPrint`` with ``transformer="normal"`` (CPU attention),
   moves every weight off its near-zero initialisation so that all paths matter numerically,
2. saves it with Lightning's ``Trainer.save_checkpoint`` as ``OUT_DIR/CONFIG_NAME.ckpt``,
3. loads it back the way the original's CLI does (``scPrint.load_from_checkpoint(...,
   precpt_gene_emb=None, transformer="normal")``) and runs, in eval mode and float32,
   the forward pass (ZINB parameters, cell tokens, class logits, gene embeddings, MVC outputs,
   per-layer queries/keys and attention probabilities), the denoising forward pass of its
   ``predict_mode="denoise"`` and the bottleneck generation of ``_generate``,
4. writes the outputs to ``OUT_DIR/CONFIG_NAME.npz``.

``INPUTS.npz`` (made by ``bench_parity.py``) holds the vocabulary (``genes``, Ensembl ids), its
genomic position bins (``gene_pos``), a precomputed gene-embedding table (``gene_table``), and
real cells: ``gene_ids`` ``(B, L)`` vocabulary indices, ``counts`` ``(B, L)`` raw counts and
``depth`` ``(B,)`` total counts.
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
import torch  # noqa: E402

from scprint.model.model import scPrint  # noqa: E402

PEER_VERSION = version("scprint")  # 1.6.4's own __version__ string says 1.6.2

# label classes with a hierarchy: leaves first, then coarse labels (ids >= n_leaves) -> their leaves
CELL_TYPE = {
    "n": 6,
    "decoder": {
        0: "CL:0000624",  # CD4-positive, alpha-beta T cell
        1: "CL:0000625",  # CD8-positive, alpha-beta T cell
        2: "CL:0000623",  # natural killer cell
        3: "CL:0000236",  # B cell
        4: "CL:0001054",  # CD14-positive monocyte
        5: "CL:0000860",  # classical monocyte
        6: "CL:0000084",  # T cell
        7: "CL:0000576",  # monocyte
    },
    "hierarchy": {6: [0, 1], 7: [4, 5]},
}
SEX = {"n": 2, "decoder": {0: "PATO:0000383", 1: "PATO:0000384"}, "hierarchy": {}}
ORGANISM = {"n": 2, "decoder": {0: "NCBITaxon:9606", 1: "NCBITaxon:10090"}, "hierarchy": {}}

CONFIGS = {
    # 2.x layout: gene positions, precomputed gene table, FSQ bottleneck, MVC decoder, batch head
    "v2_pos_fsq": {
        "release": "2",
        "d_model": 32,
        "nhead": 4,
        "nlayers": 2,
        "positions": True,
        "gene_table": True,
        "normalization": "sum",
        "classes": {"cell_type_ontology_term_id": CELL_TYPE, "sex_ontology_term_id": SEX},
        "compress_class_dim": {"cell_type_ontology_term_id": 3, "sex_ontology_term_id": 1},
        "layers_cls": [16],
        "mvc_decoder": "inner product",
        "num_batch_labels": 3,
        "depth_atinput": True,
    },
    # 2.x: grouped-query attention, log normalisation, depth read by the expression decoder
    "v2_gqa_log": {
        "release": "2",
        "d_model": 48,
        "nhead": 6,
        "num_heads_kv": 2,
        "nlayers": 3,
        "positions": False,
        "gene_table": False,
        "normalization": "log",
        "classes": {
            "cell_type_ontology_term_id": CELL_TYPE,
            "organism_ontology_term_id": ORGANISM,
            "sex_ontology_term_id": SEX,
        },
        "compress_class_dim": None,
        "layers_cls": [],
        "mvc_decoder": "None",
        "num_batch_labels": 2,
        "depth_atinput": False,
    },
    # 2.x "v2" architecture (config/base_v2.yml): cell tokens in their own transformer that
    # cross-attends to the genes, depth read by the decoder, grouped-query attention
    "v2_cell_blocks": {
        "release": "2",
        "d_model": 32,
        "nhead": 4,
        "num_heads_kv": 2,
        "nlayers": 2,
        "positions": True,
        "gene_table": False,
        "normalization": "log",
        "classes": {"cell_type_ontology_term_id": CELL_TYPE, "sex_ontology_term_id": SEX},
        "compress_class_dim": None,
        "layers_cls": [16],
        "mvc_decoder": "inner product",
        "num_batch_labels": 2,
        "depth_atinput": False,
        "cell_specific_blocks": True,
    },
    # 1.6.x layout: `gene_encoder.embedding`, cell tokens [base, depth, classes]
    "v1_layout": {
        "release": "1",
        "d_model": 24,
        "nhead": 2,
        "nlayers": 2,
        "positions": True,
        "gene_table": True,
        "normalization": "sum",
        "classes": {"cell_type_ontology_term_id": CELL_TYPE, "sex_ontology_term_id": SEX},
        "layers_cls": [12],
        "mvc_decoder": "None",
        "num_batch_labels": 2,
    },
}


def build(config: dict, inputs: dict, workdir: Path) -> scPrint:
    genes = [str(g) for g in inputs["genes"]]
    kwargs = dict(
        genes=genes,
        organisms=["NCBITaxon:9606"],
        d_model=config["d_model"],
        nhead=config["nhead"],
        nlayers=config["nlayers"],
        gene_pos_enc=[int(p) for p in inputs["gene_pos"]] if config["positions"] else None,
        normalization=config["normalization"],
        transformer="normal",
        classes={k: v["n"] for k, v in config["classes"].items()},
        labels_hierarchy={k: v["hierarchy"] for k, v in config["classes"].items()},
        label_decoders={k: v["decoder"] for k, v in config["classes"].items()},
        layers_cls=config["layers_cls"],
        mvc_decoder=config["mvc_decoder"],
        num_batch_labels=config["num_batch_labels"],
        dropout=0.1,
    )
    if config["gene_table"]:
        table = pd.DataFrame(inputs["gene_table"], index=genes)
        table.columns = [str(c) for c in table.columns]
        table.to_parquet(workdir / "gene_embeddings.parquet")
        kwargs["precpt_gene_emb"] = "gene_embeddings.parquet"  # relative: no path in the ckpt
    if config["release"] == "2":
        kwargs.update(
            compress_class_dim=config["compress_class_dim"],
            depth_atinput=config["depth_atinput"],
            num_heads_kv=config.get("num_heads_kv"),
            cell_specific_blocks=config.get("cell_specific_blocks", False),
        )
    return scPrint(**kwargs)


@torch.no_grad()
def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Move every weight away from its initialisation (LayerNorm weights near 1, the rest by 0.1)."""
    for param in model.parameters():
        param.add_(torch.randn(param.shape, generator=generator) * 0.1)


def save(model: scPrint, path: Path) -> None:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)


def load(path: Path) -> scPrint:
    """As the original CLI loads a checkpoint (``scprint/cli.py``)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    extra = {}
    if "label_counts" in checkpoint["hyper_parameters"]:
        extra["classes"] = checkpoint["hyper_parameters"]["label_counts"]
    return scPrint.load_from_checkpoint(
        path, precpt_gene_emb=None, transformer="normal", map_location="cpu", **extra
    )


def as_numpy(value: torch.Tensor) -> np.ndarray:
    return value.detach().to(torch.float32).cpu().numpy()


@torch.no_grad()
def run(model: scPrint, config: dict, inputs: dict) -> dict[str, np.ndarray]:
    model.eval()
    gene_pos = torch.as_tensor(inputs["gene_ids"], dtype=torch.long)
    counts = torch.as_tensor(inputs["counts"], dtype=torch.float32)
    depth = torch.as_tensor(inputs["depth"], dtype=torch.float32)
    layers = list(range(config["nlayers"]))
    if config.get("cell_specific_blocks"):
        # blocks alternate cross / self attention; the self-attention blocks are the odd ones
        layers = [2 * i + 1 for i in layers]
    mvc = config["mvc_decoder"] != "None"
    depth_key = "req_depth" if config["release"] == "2" else "full_depth"
    out = {}

    result, qkvs = model(
        gene_pos,
        counts.clone(),
        **{depth_key: depth},
        do_class=True,
        get_gene_emb=True,
        do_mvc=mvc,
        get_attention_layer=layers,
    )
    for key, value in result.items():
        out[key] = as_numpy(value)
    for i, qkv in enumerate(qkvs):
        q, k = qkv[:, :, 0], qkv[:, :, 1]  # (B, S, H, D) each
        out[f"q_{i}"] = as_numpy(q)
        out[f"k_{i}"] = as_numpy(k)
        scale = 1.0 / np.sqrt(q.shape[-1])
        scores = torch.einsum("bthd,bshd->bhts", q, k * scale)  # as simpler-flash SelfAttention
        out[f"attn_{i}"] = as_numpy(torch.softmax(scores, dim=-1))

    multiplier = 3.0  # predict_mode="denoise" with predict_depth_mult=3
    denoised = model(
        gene_pos,
        counts.clone(),
        **{depth_key: depth * multiplier},
        depth_mult=counts.sum(1) * multiplier,
        do_class=True,
    )
    for key in ("mean", "disp", "zero_logits"):
        out[f"denoise_{key}"] = as_numpy(denoised[key])

    cell_embs = result["cell_embs"].clone()
    if config["release"] == "2":
        # the decoder reads the depth when it is not a token (depth_atinput=False); the
        # original's own predict_mode="generate" passes req_depth=None, which fails there
        generated = model._generate(
            cell_embs,
            gene_pos,
            depth_mult=counts.sum(1),
            req_depth=None if config["depth_atinput"] else depth,
            do_class=True,
        )
    else:
        generated = model._generate(
            cell_embs, gene_pos, depth_mult=counts.sum(1), full_depth=None, do_class=True
        )
    for key, value in generated.items():
        out[f"generate_{key}"] = as_numpy(value)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    inputs = dict(np.load(argv[0], allow_pickle=False))
    out_dir = Path(argv[1]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    release = PEER_VERSION.split(".")[0]
    report = {}
    for name in argv[2:]:
        config = CONFIGS[name]
        if config["release"] != release:
            raise SystemExit(
                f"{name} needs scprint {config['release']}.x, this venv has {PEER_VERSION}"
            )
        torch.manual_seed(0)
        workdir = out_dir / f".work_{name}"
        workdir.mkdir(exist_ok=True)
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            model = build(config, inputs, workdir)
        finally:
            os.chdir(cwd)
        perturb(model, torch.Generator().manual_seed(1))
        path = out_dir / f"{name}.ckpt"
        save(model, path)
        outputs = run(load(path), config, inputs)
        np.savez_compressed(out_dir / f"{name}.npz", **outputs)
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
        report[name] = {
            "ckpt_bytes": path.stat().st_size,
            "outputs": sorted(outputs),
            "peer": f"scprint {PEER_VERSION}",
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
