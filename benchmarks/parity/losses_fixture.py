"""Run the ORIGINAL scPRINT 2.3.8 loss functions on fixed synthetic inputs and store the results.

The inputs are synthetic (random tensors of the right shapes and ranges): these fixtures check
mathematics, not data. The output, ``packages/scprint-model/tests/fixtures/parity/losses.npz``,
holds every input and the original's output (and gradients where they matter);
``tests/test_model_losses.py`` checks ``scprint.model.losses`` against it in CI without the
original installed.

The original functions are read from the original's source files without importing the
package: ``scprint/model/loss.py`` needs only torch and numpy, and ``downsample_profile`` is taken
alone from ``scprint/model/utils.py`` (whose imports, lamindb and friends, it does not use).

Usage::

    python benchmarks/parity/losses_fixture.py [--original PATH]

``PATH`` is the original's ``scprint`` package folder; by default the one installed in the peer
venv ``benchmarks/.peer-venvs/scprint-2.3.8``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "packages" / "scprint-model" / "tests" / "fixtures" / "parity" / "losses.npz"
PEER_VENV = ROOT / "benchmarks" / ".peer-venvs" / "scprint-2.3.8"
log = logging.getLogger("losses_fixture")


def find_original(explicit: str | None) -> Path:
    """The original ``scprint`` package folder (holding ``model/loss.py``)."""
    if explicit is not None:
        path = Path(explicit)
        candidates = [path, path / "scprint"]
    else:
        candidates = sorted(PEER_VENV.glob("lib/python*/site-packages/scprint"))
    for candidate in candidates:
        if (candidate / "model" / "loss.py").is_file():
            return candidate
    raise SystemExit(
        f"original scprint package not found (looked in {[str(c) for c in candidates]}); pass "
        "--original PATH to the folder holding model/loss.py"
    )


def load_original(package: Path) -> tuple[ModuleType, Any]:
    """The original ``loss`` module and its ``downsample_profile`` function."""
    spec = importlib.util.spec_from_file_location(
        "original_scprint_loss", package / "model" / "loss.py"
    )
    loss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loss)
    source = (package / "model" / "utils.py").read_text()
    tree = ast.parse(source)
    node = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downsample_profile"
    )
    namespace: dict[str, Any] = {"torch": torch, "Tensor": torch.Tensor}
    exec(
        compile(
            ast.Module(body=[node], type_ignores=[]), str(package / "model" / "utils.py"), "exec"
        ),
        namespace,
    )
    return loss, namespace["downsample_profile"]


def make_fixture(loss: ModuleType, downsample_profile: Any) -> dict[str, np.ndarray]:
    """Synthetic inputs and the original's outputs."""
    rng = np.random.default_rng(20260101)
    out: dict[str, np.ndarray] = {}

    def tensor(values: np.ndarray, grad: bool = False) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, requires_grad=grad)

    # ZINB and the expected-log-expression MSE: counts with many zeros and a heavy tail.
    shape = (6, 40)
    counts = rng.negative_binomial(2, 0.3, size=shape) * (rng.random(shape) > 0.4)
    out["zinb_counts"] = counts.astype(np.float32)
    out["zinb_mean"] = rng.gamma(2.0, 3.0, size=shape).astype(np.float32)
    out["zinb_dispersion"] = rng.gamma(1.5, 2.0, size=shape).astype(np.float32) + 0.05
    out["zinb_dropout_logit"] = rng.normal(0, 2, size=shape).astype(np.float32)
    mean = tensor(out["zinb_mean"], grad=True)
    theta = tensor(out["zinb_dispersion"], grad=True)
    pi = tensor(out["zinb_dropout_logit"], grad=True)
    value = loss.zinb(tensor(out["zinb_counts"]), mean, theta, pi)
    value.backward()
    out["zinb_value"] = value.detach().numpy()
    out["zinb_grad_mean"] = mean.grad.numpy()
    out["zinb_grad_dispersion"] = theta.grad.numpy()
    out["zinb_grad_dropout_logit"] = pi.grad.numpy()
    with torch.no_grad():
        mse = loss.mse(
            input=torch.log(mean + 1) * (1 - torch.sigmoid(pi)),
            target=torch.log(tensor(out["zinb_counts"]) + 1),
        )
    out["mse_value"] = mse.numpy()

    # Hierarchical classification: 6 leaves, 3 coarse labels.
    n_leaves = 6
    hierarchy = np.zeros((3, n_leaves), dtype=bool)
    hierarchy[0, [0, 1, 2]] = True
    hierarchy[1, [3, 4]] = True
    hierarchy[2, [0, 1, 2, 3, 4, 5]] = True
    out["cls_hierarchy"] = hierarchy
    cases = {
        "mixed": np.array([0, 7, -1, 3, 6, 5, 8, 2, -1, 6], dtype=np.int64),
        "leaves": np.array([0, 1, -1, 3, 4, 5, 2, -1], dtype=np.int64),
        "unknown": np.array([-1, -1, -1], dtype=np.int64),
    }
    for name, labels in cases.items():
        logits = tensor(rng.normal(0, 2, size=(len(labels), n_leaves)), grad=True)
        value = loss.classification(
            "cell_type",
            pred=logits,
            cl=torch.from_numpy(labels),
            maxsize=n_leaves,
            labels_hierarchy={"cell_type": torch.from_numpy(hierarchy)},
        )
        value.backward()
        out[f"cls_{name}_labels"] = labels
        out[f"cls_{name}_logits"] = logits.detach().numpy()
        out[f"cls_{name}_value"] = value.detach().numpy()
        out[f"cls_{name}_grad"] = logits.grad.numpy()

    # Disentanglement (within_sample), ECS and contrastive (CCE) on cell tokens / embeddings.
    tokens = tensor(rng.normal(0, 1, size=(5, 4, 16)), grad=True)
    value = loss.within_sample(tokens)
    value.backward()
    out["within_tokens"] = tokens.detach().numpy()
    out["within_value"] = value.detach().numpy()
    out["within_grad"] = tokens.grad.numpy()
    embedding = rng.normal(0.3, 1, size=(7, 16)).astype(np.float32)
    other_view = (embedding + rng.normal(0, 0.5, size=embedding.shape)).astype(np.float32)
    out["ecs_embedding"], out["cce_other_view"] = embedding, other_view
    out["ecs_value"] = loss.ecs(tensor(embedding), ecs_threshold=0.4).numpy()
    out["cce_value"] = loss.contrastive_loss(tensor(embedding), tensor(other_view), 0.2).numpy()

    # The denoising noise: same torch seed, same draws.
    profile = rng.negative_binomial(3, 0.2, size=(4, 50)) * (rng.random((4, 50)) > 0.3)
    out["noise_counts"] = profile.astype(np.float32)
    torch.manual_seed(11)
    out["noise_dropout_0.6_seed_11"] = downsample_profile(tensor(profile), dropout=0.6).numpy()
    torch.manual_seed(12)
    out["noise_random_0.5_seed_12"] = downsample_profile(
        tensor(profile), dropout=0.5, randsamp=True
    ).numpy()
    out["torch_version"] = np.array(torch.__version__)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="the original's scprint package folder")
    parser.add_argument("--out", default=str(OUT), help="output .npz (default: the test fixture)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    package = find_original(args.original)
    loss, downsample_profile = load_original(package)
    fixture = make_fixture(loss, downsample_profile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **fixture)
    log.info("original losses from %s -> %s (%d arrays)", package, out, len(fixture))
    return 0


if __name__ == "__main__":
    sys.exit(main())
