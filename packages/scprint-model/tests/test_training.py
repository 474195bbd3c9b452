"""Pretraining on real Kang counts: losses go down, checkpoints round-trip, resume is exact, DDP runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from scprint import load_pretrained
from scprint.checkpoints.ours import checkpoint_metadata
from scprint.cli import main as scprint_main
from scprint.data import make_inference_batches
from scprint.model import ModelConfig, ScPrint
from scprint.model.losses import zinb_nll
from scprint.model.tokens import reduce_gene_table
from scprint.training import FORMAT_VERSION, Objective, ScPrintLightning, fit, load

TERMS = ("denoise", "generation", "classification", "disentanglement")


def train_curve(run: Path) -> pd.DataFrame:
    metrics = pd.read_csv(run / "metrics.csv")
    return metrics.dropna(subset=["train/loss"]).set_index("step")


def test_tiny_model_lowers_each_loss_term(tiny_run: Path, tiny_steps: int) -> None:
    curve = train_curve(tiny_run)
    assert curve.index.max() == tiny_steps - 1
    first, last = curve.head(15), curve.tail(15)
    for term in TERMS:
        before, after = first[f"train/{term}"].mean(), last[f"train/{term}"].mean()
        assert after < before, f"{term}: {before:.3f} -> {after:.3f}"
    validation = pd.read_csv(tiny_run / "metrics.csv").dropna(subset=["val/loss"])
    assert len(validation) == 2 and validation["val/loss"].iloc[-1] < validation["val/loss"].iloc[0]


def test_checkpoint_holds_everything_for_inference(tiny_checkpoint: Path, kang_adata) -> None:
    pretrained = load_pretrained(tiny_checkpoint, device="cpu")
    assert pretrained.version
    assert pretrained.normalisation == ModelConfig.from_yaml("tiny").normalisation
    assert not pretrained.model.training
    assert pretrained.model.label_classes == ["cell_type"]
    assert len(pretrained.vocab) == kang_adata.n_vars
    cell_type = pretrained.labels["cell_type"]
    assert sorted(cell_type.classes) == sorted(
        kang_adata.obs["cell_type_ontology_term_id"].unique()
    )
    assert cell_type.encode(["CD4 T cells"])[0] == cell_type.classes.index("CL:0000624")
    batch = next(
        make_inference_batches(
            kang_adata, pretrained.vocab, max_len=pretrained.config.max_len, batch_size=16
        )
    )
    with torch.no_grad():
        out = pretrained.model(batch["gene_ids"], batch["counts"], batch["depth"])
    assert out.logits["cell_type"].shape == (16, len(cell_type.classes))


def test_save_then_load_gives_identical_outputs(
    tiny_checkpoint: Path, tmp_path: Path, kang_adata
) -> None:
    pretrained = load_pretrained(tiny_checkpoint, device="cpu")
    torch.manual_seed(1)
    model = ScPrint(pretrained.config, len(pretrained.vocab), {"cell_type": 4}).eval()
    meta = checkpoint_metadata(pretrained.config, pretrained.vocab, pretrained.labels, {})
    path = tmp_path / "saved.ckpt"
    torch.save(
        {"scprint": meta, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
        path,
    )
    loaded = load_pretrained(path, device="cpu").model
    batch = next(make_inference_batches(kang_adata, pretrained.vocab, max_len=32, batch_size=8))
    with torch.no_grad():
        expected = model(batch["gene_ids"], batch["counts"], batch["depth"])
        got = loaded(batch["gene_ids"], batch["counts"], batch["depth"])
    assert torch.equal(expected.cell_embedding, got.cell_embedding)
    assert torch.equal(expected.zinb_mean, got.zinb_mean)
    assert torch.equal(expected.logits["cell_type"], got.logits["cell_type"])


def test_incompatible_checkpoint_version_names_both_versions(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    checkpoint["scprint"]["format"] = FORMAT_VERSION + 1
    checkpoint["scprint"]["version"] = "9.9.9"
    path = tmp_path / "future.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(
        ValueError,
        match=f"format version {FORMAT_VERSION + 1} .*9.9.9.*reads format version {FORMAT_VERSION}",
    ):
        load_pretrained(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="unknown layout"):
        load_pretrained(path)


def _checkpoint_every(folder: Path, steps: int) -> ModelCheckpoint:
    return ModelCheckpoint(
        dirpath=folder,
        filename="step{step}",
        every_n_train_steps=steps,
        save_top_k=-1,
        auto_insert_metric_name=False,
    )


def test_resume_continues_at_the_same_step_and_loss(
    kang_adata, tmp_path: Path, quiet_trainer
) -> None:
    common = {
        "data": {"files": [kang_adata]},
        "model": {"config": {"dropout": 0.1}},
        "seed_everything": 5,
    }
    whole = tmp_path / "whole"
    trainer = {"max_steps": 12, "val_check_interval": 6}
    fit(
        "tiny",
        common,
        trainer=quiet_trainer(whole, **trainer),
        callbacks=[_checkpoint_every(whole / "checkpoints", 6)],
    )
    middle = whole / "checkpoints" / "step6.ckpt"
    assert middle.is_file()
    resumed = tmp_path / "resumed"
    final = fit("tiny", common, trainer=quiet_trainer(resumed, **trainer), ckpt_path=middle)
    assert torch.load(final, map_location="cpu", weights_only=True)["global_step"] == 12
    expected, got = train_curve(whole), train_curve(resumed)
    assert list(got.index) == list(range(6, 12))
    np.testing.assert_allclose(got["train/loss"], expected.loc[6:11, "train/loss"], rtol=1e-5)
    for term in TERMS:
        np.testing.assert_allclose(
            got[f"train/{term}"], expected.loc[6:11, f"train/{term}"], rtol=1e-5
        )
    # the learning rate follows the same warm-up (a LinearLR scheduler restored from the checkpoint)
    np.testing.assert_allclose(got["train/lr"], expected.loc[6:11, "train/lr"], rtol=1e-6)
    assert expected.loc[0, "train/lr"] == pytest.approx(0.006 / 5)


def test_fit_rejects_bad_input(kang_adata, tmp_path: Path) -> None:
    run = {"trainer": {"max_steps": 2, "default_root_dir": str(tmp_path)}}
    with pytest.raises(ValueError, match="has no label column 'disease'"):
        fit("tiny", run, data={"files": [kang_adata], "labels": ["disease"]})
    with pytest.raises(ValueError, match="unknown organism"):
        fit("tiny", run, data={"files": [kang_adata], "organism": "martian"})
    with pytest.raises(ValueError, match="width"):
        fit("tiny", run, data={"files": [kang_adata]}, model={"config": {"width": 3}})
    logged = kang_adata[:50].copy()
    logged.X = logged.X.astype(np.float32) * 0.5
    with pytest.raises(ValueError, match="raw integer counts, found 0.5"):
        fit("tiny", run, data={"files": [logged]})
    assert not list(tmp_path.glob("*.ckpt"))


def test_gene_embedding_table_initialises_frozen_identities(
    kang_adata, tmp_path: Path, quiet_trainer
) -> None:
    """The table is reduced to ``d_model`` by the original's adaptive average pooling."""
    symbols = kang_adata.var["gene_symbol"].astype(str).to_numpy()[:300]
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 8)), index=symbols)
    table.columns = [f"dim{i}" for i in range(8)]
    table.to_parquet(tmp_path / "genes.parquet")
    path = fit(
        "tiny",
        data={
            "files": [kang_adata],
            "val_fraction": 0.0,
            "gene_embeddings": str(tmp_path / "genes.parquet"),
        },
        model={"config": {"freeze_gene_embeddings": True}},
        trainer=quiet_trainer(tmp_path, max_steps=3),
    )
    pretrained = load_pretrained(path, device="cpu")
    rows = pretrained.vocab.index_of(list(symbols[:5]))
    # unchanged after three optimiser steps: frozen during training
    embeddings = pretrained.model.gene_encoder.embeddings.weight
    expected = reduce_gene_table(torch.tensor(table.to_numpy()[:5]), pretrained.config.d_model)
    np.testing.assert_allclose(embeddings.detach().numpy()[rows], expected.numpy(), rtol=1e-6)


def test_resume_with_another_config_raises(
    kang_adata, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    run = {"trainer": {"default_root_dir": str(tmp_path)}, "ckpt_path": str(tiny_checkpoint)}
    with pytest.raises(ValueError, match="pass the same config to resume"):
        fit("tiny", run, data={"files": [kang_adata]}, model={"config": {"d_model": 64}})
    with pytest.raises(
        ValueError,
        match="classifies \\['cell_type'\\], but the data's label columns are \\['donor_id'\\]",
    ):
        fit("tiny", run, data={"files": [kang_adata], "labels": ["donor_id"]})


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_printed_config_reruns_and_the_cli_writes_a_checkpoint(
    kang_file: Path, tmp_path: Path, capsys
) -> None:
    """``scprint fit --print_config`` gives a complete YAML that ``scprint fit --config`` runs."""
    options = ["--data.files", f"[{kang_file}]", "--data.val_fraction", "0"]
    options += ["--model.config.d_model", "16", "--data.batch_size", "8"]
    assert scprint_main(["fit", "--config", "tiny", *options, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["config"]["n_layers"] == ModelConfig.from_yaml("tiny").n_layers
    assert printed["model"]["objective"]["noise"] == [0.6] and printed["trainer"]["max_steps"]
    config = tmp_path / "printed.yaml"
    config.write_text(yaml.safe_dump(printed))
    run = ["--trainer.max_steps", "3", "--trainer.default_root_dir", str(tmp_path / "run")]
    code = scprint_main(["-q", "fit", "--config", str(config), *run])
    assert code == 0
    pretrained = load_pretrained(tmp_path / "run" / "scprint.ckpt", device="cpu")
    assert pretrained.config.d_model == 16 and pretrained.config.n_layers == 2
    # the data samples the model's context length (model.config.max_len is linked to data)
    assert pretrained.sampling["max_len"] == pretrained.config.max_len == 64
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 3 and saved["data"]["batch_size"] == 8
    # a checkpoint alone rebuilds the LightningModule
    module = ScPrintLightning.load_from_checkpoint(tmp_path / "run" / "scprint.ckpt")
    assert module.config == pretrained.config and module.model.label_classes == ["cell_type"]


def test_cli_mistakes_exit_2_with_one_line(kang_file: Path, tmp_path: Path, capsys) -> None:
    base = ["fit", "--config", "tiny", "--trainer.default_root_dir", str(tmp_path)]
    files = ["--data.files", f"[{kang_file}]"]
    assert scprint_main([*base, *files, "--model.config.widht", "3"]) == 2
    _one_line_error(capsys, "model.config: Option 'widht' is not accepted")
    assert scprint_main([*base, "--data.files", f"[{tmp_path / 'absent.h5ad'}]"]) == 2
    _one_line_error(capsys, "absent.h5ad", "does not exist")
    unlabelled = tmp_path / "unlabelled.h5ad"
    cells = ad.read_h5ad(kang_file)[:60]
    cells.obs = cells.obs.drop(columns=["cell_type", "cell_type_ontology_term_id"])
    cells.write_h5ad(unlabelled)
    assert scprint_main([*base, "--data.files", f"[{kang_file}, {unlabelled}]"]) == 2
    _one_line_error(capsys, "'unlabelled.h5ad' has no label column 'cell_type'")
    config = tmp_path / "typo.yaml"
    config.write_text("data:\n  batchsize: 8\n")
    assert scprint_main([*base, *files, "--config", str(config)]) == 2
    _one_line_error(capsys, "Group 'data' does not accept option 'batchsize'")
    assert not list(tmp_path.glob("*.ckpt"))


DDP_SCRIPT = """
import sys
import anndata as ad
from scprint.training import fit

adata = ad.read_h5ad(sys.argv[1])[:200].copy()
fit("tiny", data={"files": [adata], "batch_size": 8}, trainer={"max_steps": 4, "accelerator": "cpu",
    "devices": 2, "strategy": "ddp", "val_check_interval": 2, "log_every_n_steps": 1,
    "default_root_dir": sys.argv[2], "enable_progress_bar": False})
"""


def test_ddp_on_two_cpu_processes_completes(kang_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_fit.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    result = subprocess.run(
        [sys.executable, str(script), str(kang_path), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert (
        "All distributed processes registered. Starting with 2 processes"
        in result.stderr + result.stdout
    )
    checkpoint = torch.load(
        tmp_path / "run" / "scprint.ckpt", map_location="cpu", weights_only=True
    )
    assert checkpoint["global_step"] == 4


def objective_module(pretrained, objective: Objective) -> ScPrintLightning:
    """The session's tiny model under ``objective``; cell_type leaves plus one coarse label
    (the first two leaves)."""
    n_leaves = pretrained.model.label_sizes["cell_type"]
    descendants = torch.cat([torch.eye(n_leaves), torch.zeros(1, n_leaves)]).bool()
    descendants[n_leaves, :2] = True
    return ScPrintLightning.from_network(
        pretrained.model, {"cell_type": descendants}, objective
    ).eval()


@pytest.fixture(scope="module")
def labelled_batch(tiny_checkpoint: Path, kang_adata) -> dict[str, torch.Tensor]:
    pretrained = load_pretrained(tiny_checkpoint, device="cpu")
    batch = next(
        make_inference_batches(kang_adata, pretrained.vocab, max_len=32, batch_size=6, seed=3)
    )
    n_leaves = pretrained.model.label_sizes["cell_type"]
    labels = torch.tensor([[0], [1], [n_leaves], [-1], [2], [n_leaves]])
    return {**batch, "labels": labels}


def test_objective_total_is_the_weighted_sum_of_the_original_passes(
    tiny_checkpoint: Path, labelled_batch: dict[str, torch.Tensor]
) -> None:
    pretrained = load_pretrained(tiny_checkpoint, device="cpu")
    objective = Objective(expression_mse=0.1)
    module = objective_module(pretrained, objective)
    torch.manual_seed(0)
    with torch.no_grad():
        terms = module.losses(labelled_batch, by_pass=True)
    # Classification on the first pass only; denoise / generation on their own passes; the
    # cell-token terms on every pass that has cell tokens; each total the sum over passes.
    assert "full/classification" in terms and "denoise_60/classification" not in terms
    assert "full/denoise" not in terms and "denoise_60/denoise" in terms
    for name in ("disentanglement", "ecs"):
        per_pass = [v for k, v in terms.items() if k.endswith(f"/{name}")]
        assert len(per_pass) >= 2
        assert terms[name].item() == pytest.approx(sum(v.item() for v in per_pass), rel=1e-6)
    weights = {
        "denoise": 1.0,
        "generation": 1.0,
        "expression_mse": 0.1,
        "classification": 1.0,
        "disentanglement": 0.1,
        "ecs": 0.1,
        "cce": 0.1,
    }
    expected = sum(w * terms[name].item() for name, w in weights.items())
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-6)
    torch.manual_seed(0)
    with torch.no_grad():
        again = module.losses(labelled_batch)
    assert again["loss"].item() == terms["loss"].item()


def test_objective_switches_remove_their_terms(
    tiny_checkpoint: Path, labelled_batch: dict[str, torch.Tensor]
) -> None:
    pretrained = load_pretrained(tiny_checkpoint, device="cpu")
    module = objective_module(
        pretrained, Objective(full_forward=False, generation=0, ecs=0, cce=0, noise=(0.3,))
    )
    with torch.no_grad():
        terms = module.losses(labelled_batch, by_pass=True)
    assert "denoise_30/classification" in terms
    assert not any(k.startswith(("full/", "generation/")) for k in terms)
    assert {"ecs", "cce", "generation", "expression_mse"}.isdisjoint(terms)
    softmax = objective_module(pretrained, Objective(classification_loss="softmax"))
    with torch.no_grad():
        assert softmax.losses(labelled_batch)["classification"].item() != pytest.approx(
            terms["classification"].item()
        )
    with pytest.raises(ValueError, match="noise levels must be in"):
        Objective(noise=(1.5,))
    binomial = objective_module(pretrained, Objective(noise_model="binomial", generation=0))
    thinned = {**labelled_batch, "thinned_counts": torch.floor(labelled_batch["counts"] / 2)}
    with torch.no_grad():
        terms = binomial.losses(thinned, by_pass=True)
        direct = binomial.model(
            thinned["gene_ids"],
            thinned["thinned_counts"],
            thinned["depth"],
            target_depth=thinned["counts"].sum(1),
        )
    expected = zinb_nll(
        thinned["counts"], direct.zinb_mean, direct.zinb_dispersion, direct.zinb_dropout_logit
    )
    assert terms["denoise_binomial/denoise"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs the batch's 'thinned_counts'"):
        binomial.losses(labelled_batch)
    with pytest.raises(ValueError, match="noise_model must be one of"):
        Objective(noise_model="gaussian")
    with pytest.raises(ValueError, match="mask_ratios must be in"):
        Objective(mask_ratios=(1.0,))
    with pytest.raises(ValueError, match="set full_forward=True or give noise levels"):
        Objective(full_forward=False, noise=())
    with pytest.raises(ValueError, match="classification_loss must be one of"):
        Objective(classification_loss="focal")


PARITY = Path(__file__).parent / "fixtures" / "parity"
#: The original's logged component -> ours (``losses(..., by_pass=True)``).
ORIGINAL_COMPONENTS = {
    "full_forward_cls": "full/classification",
    "full_forward_emb_independence": "full/disentanglement",
    "full_forward_ecs": "full/ecs",
    "denoise_60%_emb_independence": "denoise_60/disentanglement",
    "denoise_60%_ecs": "denoise_60/ecs",
    "gen_emb_independence": "generation/disentanglement",
    "gen_ecs": "generation/ecs",
    "cce": "cce",
}


@pytest.mark.parametrize("name", ["v2_gqa_log", "v2_pos_fsq", "v2_cell_blocks"])
@pytest.mark.parametrize("variant", ["zinb", "mse", "mask"])
def test_training_objective_equals_the_original_full_training(name: str, variant: str) -> None:
    """Same original checkpoint, real cells, labels and seed: every component of the original's
    ``_full_training`` (``benchmarks/parity/training_step_worker.py``), eval mode."""
    with np.load(PARITY / "training_step.npz") as data:
        original = {k: data[k] for k in data.files}
    with np.load(PARITY / "inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}
    pretrained = load(PARITY / f"{name}.ckpt", device="cpu")
    descendants = {c: torch.from_numpy(e.descendant_matrix()) for c, e in pretrained.labels.items()}
    mse = 0.1 if variant == "mse" else 0.0
    objective = Objective(expression_mse=mse, mask_ratios=(0.3,) if variant == "mask" else ())
    module = ScPrintLightning.from_network(pretrained.model, descendants, objective).eval()
    batch = {
        "gene_ids": torch.as_tensor(inputs["gene_ids"]),
        "counts": torch.as_tensor(inputs["counts"]),
        "depth": torch.as_tensor(inputs["depth"]),
        "labels": torch.as_tensor(original[f"{name}/labels"]),
    }
    torch.manual_seed(int(original["seed"]))
    with torch.no_grad():
        ours = module.losses(batch, by_pass=True)
    theirs = {
        k.split("/", 2)[2]: float(v)
        for k, v in original.items()
        if k.startswith(f"{name}/{variant}/")
    }
    expected = {o: theirs[k] for k, o in ORIGINAL_COMPONENTS.items() if k in theirs}
    # with cell-specific blocks the original scores no cell-token term on the generation pass
    assert {o for k, o in ORIGINAL_COMPONENTS.items() if k not in theirs}.isdisjoint(ours)
    got = {ours_name: float(ours[ours_name]) for ours_name in expected}
    got["denoise_60%_expr"] = float(
        ours["denoise_60/denoise"] + mse * ours.get("denoise_60/expression_mse", 0.0)
    )
    got["gen_expr"] = float(
        ours["generation/generation"] + mse * ours.get("generation/expression_mse", 0.0)
    )
    expected["denoise_60%_expr"], expected["gen_expr"] = (
        theirs["denoise_60%_expr"],
        theirs["gen_expr"],
    )
    if variant == "mask":
        expected["mask"] = theirs["mask_30%_expr"]
        got["mask"] = float(ours["mask_30/masked"])
        for term in ("emb_independence", "ecs"):
            expected[f"mask_{term}"] = theirs[f"mask_30%_{term}"]
        got["mask_emb_independence"] = float(ours["mask_30/disentanglement"])
        got["mask_ecs"] = float(ours["mask_30/ecs"])
    got["total"], expected["total"] = float(ours["loss"]), theirs["total"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, got[key], value)


def _digests(run: Path, *names: str) -> dict[str, str]:
    import hashlib

    return {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in names}


def test_run_folders_are_append_only(kang_file: Path, tmp_path: Path, capsys) -> None:
    """Issue 25: validate/test never rewrite the run's metrics.csv (even when they fail), a
    second fit into a finished run is refused, a resume appends to the history it resumes."""
    run = tmp_path / "run"
    quiet = ["--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"]
    options = ["--config", "tiny", "--data.files", f"[{kang_file}]", "--data.val_max_cells", "16"]
    every_2 = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps=2"]
    every_2 += ["--trainer.callbacks.save_top_k=-1"]
    fit_run = ["fit", *options, "--trainer.default_root_dir", str(run), *quiet]
    assert scprint_main(["-q", *fit_run, "--trainer.max_steps", "4", *every_2]) == 0
    history = pd.read_csv(run / "metrics.csv")
    assert sorted(history.dropna(subset=["train/loss"])["step"]) == [0, 1, 2, 3]
    saved = _digests(run, "metrics.csv", "scprint.ckpt", "config.yaml")
    config = ["--config", str(run / "config.yaml")]
    for command, prefix in (("validate", "val"), ("test", "test")):
        assert scprint_main(["-q", command, *config, "--ckpt_path", str(run / "scprint.ckpt")]) == 0
        scored = pd.read_csv(run / command / "version_0" / "metrics.csv")
        assert np.isfinite(scored[f"{prefix}/loss"]).all()
    capsys.readouterr()
    assert scprint_main(["-q", "validate", *config, "--ckpt_path", str(run / "absent.ckpt")]) == 1
    _one_line_error(capsys, "absent.ckpt")
    assert _digests(run, *saved) == saved
    # the reproduction: re-running the saved config with fewer steps
    assert scprint_main(["-q", "fit", *config, "--trainer.max_steps", "3"]) == 2
    _one_line_error(capsys, "already holds a run", "--overwrite")
    middle = str(run / "checkpoints" / "epoch=0-step=2.ckpt")
    assert (
        scprint_main(["-q", "fit", *config, "--ckpt_path", middle, "--trainer.max_steps", "2"]) == 2
    )
    _one_line_error(capsys, "trainer.max_steps (2) is not above the step", "(2)")
    assert _digests(run, *saved) == saved
    assert (
        scprint_main(["-q", "fit", *config, "--ckpt_path", middle, "--trainer.max_steps", "5"]) == 0
    )
    resumed = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"]).set_index("step")
    assert list(resumed.index) == [0, 1, 2, 3, 4]
    before = history.dropna(subset=["train/loss"]).set_index("step")
    np.testing.assert_allclose(resumed.loc[:1, "train/loss"], before.loc[:1, "train/loss"])
    # the rows the resume replaced (steps 2 and 3 of the first run) are kept aside
    archived = pd.read_csv(run / "metrics.1.csv")
    assert archived.equals(history)
    assert (
        torch.load(run / "scprint.ckpt", map_location="cpu", weights_only=True)["global_step"] == 5
    )
    assert scprint_main(["-q", *fit_run, "--trainer.max_steps", "2", "--overwrite"]) == 0
    replaced = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"])
    assert sorted(replaced["step"]) == [0, 1] and not (run / "checkpoints").exists()


def test_a_full_disk_leaves_no_partial_final_checkpoint(tmp_path: Path) -> None:
    """Issue 25: the final checkpoint's temporary is removed when it cannot be written."""
    import errno
    from types import SimpleNamespace

    from scprint.training import FinalCheckpoint

    def save_checkpoint(path: Path) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    trainer = SimpleNamespace(
        default_root_dir=str(tmp_path),
        save_checkpoint=save_checkpoint,
        is_global_zero=True,
        global_step=3,
        strategy=SimpleNamespace(barrier=lambda: None),
    )
    with pytest.raises(OSError, match="could not write the final checkpoint .*No space left"):
        FinalCheckpoint().on_train_end(trainer, None)
    assert list(tmp_path.iterdir()) == []
