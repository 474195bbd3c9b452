"""Model hyper-parameters as a small dataclass, readable from the YAML files in ``scprint/configs``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PRESETS = ("tiny", "small", "medium", "large")
NORMALISATIONS = ("log1p", "fraction")


@dataclass
class ModelConfig:
    """Sizes and choices of one scPRINT model.

    Attributes:
        d_model: width of every token.
        n_layers: number of transformer blocks.
        n_heads: attention heads per block (``d_model`` must be a multiple).
        dropout: dropout probability inside attention outputs and MLPs.
        mlp_ratio: hidden width of the block MLP, in multiples of ``d_model``.
        max_len: genes sampled per cell (context length without the cell tokens).
        normalisation: expression input, ``"log1p"`` (log(1 + counts)) or ``"fraction"``
            (counts / total counts of the genes in the context).
        gene_embedding_dim: width of the gene-identity table (``None``: ``d_model``; otherwise a
            linear projection maps it to ``d_model``, e.g. for protein-language-model vectors).
        freeze_gene_embeddings: keep the gene-identity table fixed during training.
        use_positions: add the sinusoidal genomic-position encoding when positions are known.
    """

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.1
    mlp_ratio: int = 4
    max_len: int = 512
    normalisation: str = "log1p"
    gene_embedding_dim: int | None = None
    freeze_gene_embeddings: bool = False
    use_positions: bool = True

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "mlp_ratio", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}), "
                f"e.g. d_model={self.n_heads * max(1, self.d_model // self.n_heads)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"ModelConfig.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.gene_embedding_dim is not None and self.gene_embedding_dim < 1:
            raise ValueError(
                f"ModelConfig.gene_embedding_dim must be None or positive, got {self.gene_embedding_dim!r}"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for checkpoints and YAML)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a dictionary; unknown keys raise a ``ValueError`` naming them."""
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig keys {unknown}; expected a subset of {sorted(allowed)}"
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls, name_or_path: str | Path) -> ModelConfig:
        """Read a preset (``"tiny"``, ``"small"``, ``"medium"``, ``"large"``) or a YAML file.

        The file holds the fields at top level or under a ``model:`` section (the presets also
        carry a ``training:`` section with defaults for :func:`scprint.training.fit`).
        """
        return cls.from_dict(read_config_file(name_or_path).get("model", {}))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        allowed = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig keys {unknown}; expected a subset of {sorted(allowed)}"
            )
        return dataclasses.replace(self, **changes)


def read_config_file(name_or_path: str | Path) -> dict[str, Any]:
    """Load a preset or YAML file as ``{"model": {...}, "training": {...}}``.

    A file without sections is read as the ``model`` section.
    """
    if str(name_or_path) in PRESETS:
        text = resources.files("scprint.configs").joinpath(f"{name_or_path}.yaml").read_text()
        source = f"preset {name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"model config {str(name_or_path)!r} is neither a preset {PRESETS} nor an existing YAML file"
            )
        text, source = path.read_text(), str(path)
    content = yaml.safe_load(text) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{source}: expected a YAML mapping, got {type(content).__name__}")
    if "model" not in content and "training" not in content:
        content = {"model": content}
    unknown = sorted(set(content) - {"model", "training"})
    if unknown:
        raise ValueError(f"{source}: unknown sections {unknown}; expected 'model' and 'training'")
    return {
        "model": dict(content.get("model") or {}),
        "training": dict(content.get("training") or {}),
    }
