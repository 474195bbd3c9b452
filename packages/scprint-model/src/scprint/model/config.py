"""Model hyper-parameters as a small dataclass, readable from the YAML files in ``scprint/configs``.

The fields are the original scPRINT's constructor arguments under readable names (the original
name in brackets in each description); :func:`scprint.load` fills them from a checkpoint's
``hyper_parameters``. The defaults are the original's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: Shipped model sizes (``scprint/configs``; ``finetune.yaml`` is a fine-tuning recipe, not a size).
PRESETS = ("tiny", "small", "medium", "large")
NORMALISATIONS = ("sum", "log")
MVC_STYLES = ("inner product", "concat query", "sum query")


@dataclass
class ModelConfig:
    """Sizes and choices of one scPRINT model.

    Attributes:
        d_model: width of every token [``d_model``].
        n_layers: transformer blocks [``nlayers``].
        n_heads: attention heads per block [``nhead``]; ``d_model`` must be a multiple.
        n_heads_kv: key/value heads (grouped-query attention) [``num_heads_kv``]; ``None``: ``n_heads``.
        dropout: dropout probability on the residual branches, encoders and decoders [``dropout``].
        mlp_ratio: hidden width of the block MLP, in multiples of ``d_model`` (the original's is 4).
        max_len: genes per cell context when sampling training and inference contexts.
        normalisation: expression input to the expression encoder [``normalization``]: ``"sum"``
            (counts / total counts of the context) or ``"log"`` (``log2(1 + counts)``).
        expr_encoder_layers: depth of the expression and depth encoders [``expr_encoder_layers``].
        classifier_layers: hidden widths of each label classifier [``layers_cls``].
        depth_at_input: the total depth enters as a cell token [``depth_atinput``]; otherwise the
            expression decoder reads ``log2(1 + depth)`` next to each gene token.
        depth_token_first: cell-token order ``[depth, base, classes]`` (2.x releases); ``False``:
            ``[base, depth, classes]`` (1.x releases).
        zinb: the expression decoder gives a zero-inflated negative binomial (mean, dispersion,
            zero logit) [``zinb``]; otherwise only the mean.
        mvc_decoder: the cell-embedding expression decoder (``"inner product"``, ``"concat
            query"``, ``"sum query"``) [``mvc_decoder``], or ``None``.
        compress_class_dim: label class -> bits of its FSQ bottleneck [``compress_class_dim``],
            or ``None`` for no bottleneck.
        cell_specific_blocks: cell tokens get their own transformer (6 layers) that cross-attends
            to the genes' outputs, and the gene transformer's cross-attention blocks read the cell
            tokens during generation [``cell_specific_blocks``]; otherwise cell and gene tokens
            share one sequence.
        freeze_gene_embeddings: keep a precomputed gene table fixed in training [``freeze_embeddings``].
        use_positions: add the genomic-position encoding when gene positions are given.
    """

    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 4
    n_heads_kv: int | None = None
    dropout: float = 0.1
    mlp_ratio: float = 4.0
    max_len: int = 2200
    normalisation: str = "sum"
    expr_encoder_layers: int = 2
    classifier_layers: list[int] = field(default_factory=list)
    depth_at_input: bool = True
    depth_token_first: bool = True
    zinb: bool = True
    mvc_decoder: str | None = None
    compress_class_dim: dict[str, int] | None = None
    cell_specific_blocks: bool = False
    freeze_gene_embeddings: bool = True
    use_positions: bool = True

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "max_len", "expr_encoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}), "
                f"e.g. d_model={self.n_heads * max(1, self.d_model // self.n_heads)}"
            )
        if self.n_heads_kv is not None and (self.n_heads_kv < 1 or self.n_heads % self.n_heads_kv):
            raise ValueError(
                f"ModelConfig.n_heads_kv must divide n_heads ({self.n_heads}), got {self.n_heads_kv!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"ModelConfig.mlp_ratio must be positive, got {self.mlp_ratio!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"ModelConfig.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.mvc_decoder is not None and self.mvc_decoder not in MVC_STYLES:
            raise ValueError(
                f"ModelConfig.mvc_decoder must be None or one of {MVC_STYLES}, got {self.mvc_decoder!r}"
            )
        self.classifier_layers = [int(w) for w in self.classifier_layers]
        if any(w < 1 for w in self.classifier_layers):
            raise ValueError(
                f"ModelConfig.classifier_layers must be positive widths, got {self.classifier_layers!r}"
            )
        if self.compress_class_dim is not None:
            self.compress_class_dim = {str(k): int(v) for k, v in self.compress_class_dim.items()}
            bad = {k: v for k, v in self.compress_class_dim.items() if v < 1}
            if bad:
                raise ValueError(f"ModelConfig.compress_class_dim needs positive bits, got {bad}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads."""
        return self.n_heads if self.n_heads_kv is None else self.n_heads_kv

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

        The fields are read from a ``scprint fit`` config's ``model: config:`` section (as in the
        presets), from a ``model:`` section, or from the top level.
        """
        content = read_config_file(name_or_path)
        section = content.get("model", content)
        if isinstance(section, dict) and isinstance(section.get("config"), dict):
            section = section["config"]
        if not isinstance(section, dict):
            raise ValueError(f"{name_or_path}: expected a mapping of ModelConfig fields")
        return cls.from_dict(section)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        allowed = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig keys {unknown}; expected a subset of {sorted(allowed)}"
            )
        return dataclasses.replace(self, **changes)


def preset_path(name: str) -> Path:
    """The YAML file of a shipped preset (``scprint/configs/<name>.yaml``)."""
    return Path(str(resources.files("scprint.configs").joinpath(f"{name}.yaml")))


def read_config_file(name_or_path: str | Path) -> dict[str, Any]:
    """The mapping in a preset (by name) or a YAML file."""
    if str(name_or_path) in PRESETS:
        path, source = preset_path(str(name_or_path)), f"preset {name_or_path!r}"
    else:
        path, source = Path(name_or_path), str(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"model config {str(name_or_path)!r} is neither a preset {PRESETS} nor an existing YAML file"
            )
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{source}: expected a YAML mapping, got {type(content).__name__}")
    return content
