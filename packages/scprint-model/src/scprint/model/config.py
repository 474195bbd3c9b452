"""Model hyper-parameters as a small dataclass, readable from the YAML files in ``scprint/configs``.

The fields are the original scPRINT's constructor arguments under readable names (the original
name in brackets in each description); :func:`scprint.load` fills them from a checkpoint's
``hyper_parameters``. The defaults are the original's. :class:`ModelConfig` describes the first
generation (:class:`~scprint.model.ScPrint`), :class:`ScPrint2Config` the second
(:class:`~scprint.model.ScPrint2`); :func:`config_from_dict` reads either from its ``to_dict()``.
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
#: scPRINT-2 expression encoders [``expr_emb_style``]
EXPRESSION_ENCODERS = ("continuous", "metacell")
#: scPRINT-2 compressors at or above this many dimensions are VAEs, below it FSQ (as the original)
VAE_MIN_DIM = 8


def _check_positive(owner: str, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _check_heads(
    owner: str, width: str, d_model: int, heads: str, n_heads: int, kv_heads: str, n_kv: int | None
) -> None:
    """``d_model`` a multiple of the heads, the key/value heads a divisor of them."""
    if d_model % n_heads:
        raise ValueError(
            f"{owner}.{width} ({d_model}) must be a multiple of {heads} ({n_heads}), "
            f"e.g. {width}={n_heads * max(1, d_model // n_heads)}"
        )
    if n_kv is not None and (n_kv < 1 or n_heads % n_kv):
        raise ValueError(f"{owner}.{kv_heads} must divide {heads} ({n_heads}), got {n_kv!r}")


def _from_dict(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)``; unknown keys raise a ``ValueError`` naming them."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} keys {unknown}; expected a subset of {sorted(allowed)}"
        )
    return cls(**values)


def _replace(config: Any, changes: dict[str, Any]) -> Any:
    """A copy of a config dataclass with some fields changed (unknown names raise)."""
    allowed = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {type(config).__name__} keys {unknown}; expected a subset of {sorted(allowed)}"
        )
    return dataclasses.replace(config, **changes)


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
        names = ("d_model", "n_layers", "n_heads", "max_len", "expr_encoder_layers")
        _check_positive("ModelConfig", {name: getattr(self, name) for name in names})
        _check_heads(
            "ModelConfig",
            "d_model",
            self.d_model,
            "n_heads",
            self.n_heads,
            "n_heads_kv",
            self.n_heads_kv,
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

    @property
    def cell_dim(self) -> int:
        """Width of the cell tokens (``d_model``)."""
        return self.d_model

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for checkpoints and YAML)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a dictionary; unknown keys raise a ``ValueError`` naming them."""
        return _from_dict(cls, values)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        return _replace(self, changes)

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


@dataclass
class ScPrint2Config:
    """Sizes and choices of one scPRINT-2 model (the ``scprint2`` package's ``scPRINT2``).

    Attributes:
        d_model, n_layers, n_heads, n_heads_kv: the gene transformer [``d_model``, ``nlayers``,
            ``nhead``, ``num_heads_kv``].
        dropout: dropout probability [``dropout``].
        mlp_ratio: hidden width of the block MLPs, in multiples of the block width.
        max_len: genes per cell context when sampling inference contexts.
        normalisation: expression input, ``"sum"`` or ``"log"`` [``normalization``].
        expression_encoder: ``"continuous"`` (an MLP of the expression) or ``"metacell"`` (the
            cell's and its nearest neighbours' expression, :mod:`scprint.model.metacell`)
            [``expr_emb_style``].
        expr_encoder_layers: depth of the expression encoder [``expr_encoder_layers``].
        metacell_token: a learned token before the genes says whether the input is a cell (0)
            or a metacell (1) [``use_metacell_token``].
        classifier_layers: hidden widths of each label classifier [``layers_cls``].
        zinb: ZINB expression decoder (mean, dispersion, zero logit) [``zinb``].
        mvc_decoder: the cell-embedding expression decoder, or ``None`` [``mvc_decoder``].
        compress_class_dim: cell token -> dimensions of its compressor, a VAE from
            :data:`VAE_MIN_DIM` dimensions, FSQ (that many bits) below; the key ``"default"``
            compresses the base token [``compress_class_dim``]. ``None``: no compressors.
        cell_specific_blocks: the cell tokens get their own transformer (width ``d_model_cell``)
            cross-attending to the genes' outputs; the gene transformer's blocks cross-attend to
            the cell tokens when generating [``cell_specific_blocks``].
        d_model_cell, n_layers_cell, n_heads_cell, n_heads_kv_cell: that cell transformer
            [``d_model_cell``, ``nlayers_cell``, ``nhead_cell``, ``num_heads_kv_cell``].
        gene_adapter: a trainable ``Linear, ReLU, Linear`` on the frozen gene table
            [``finetune_gene_emb``].
        freeze_gene_embeddings: keep the gene table fixed in training [``freeze_embeddings``].
        use_positions: a genomic-position encoding is added to the gene tokens (its table is in
            the checkpoint) [``gene_pos_file``].
    """

    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 4
    n_heads_kv: int | None = 4
    dropout: float = 0.1
    mlp_ratio: float = 4.0
    max_len: int = 2200
    normalisation: str = "sum"
    expression_encoder: str = "continuous"
    expr_encoder_layers: int = 3
    metacell_token: bool = False
    classifier_layers: list[int] = field(default_factory=lambda: [256, 128])
    zinb: bool = True
    mvc_decoder: str | None = None
    compress_class_dim: dict[str, int] | None = None
    cell_specific_blocks: bool = False
    d_model_cell: int = 128
    n_layers_cell: int = 6
    n_heads_cell: int = 4
    n_heads_kv_cell: int | None = 4
    gene_adapter: bool = False
    freeze_gene_embeddings: bool = True
    use_positions: bool = False

    def __post_init__(self) -> None:
        names = ("d_model", "n_layers", "n_heads", "max_len", "expr_encoder_layers")
        names += ("d_model_cell", "n_layers_cell", "n_heads_cell")
        _check_positive("ScPrint2Config", {name: getattr(self, name) for name in names})
        owner = "ScPrint2Config"
        _check_heads(
            owner, "d_model", self.d_model, "n_heads", self.n_heads, "n_heads_kv", self.n_heads_kv
        )
        _check_heads(
            owner,
            "d_model_cell",
            self.d_model_cell,
            "n_heads_cell",
            self.n_heads_cell,
            "n_heads_kv_cell",
            self.n_heads_kv_cell,
        )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ScPrint2Config.dropout must be in [0, 1), got {self.dropout!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"ScPrint2Config.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.expression_encoder not in EXPRESSION_ENCODERS:
            raise ValueError(
                f"ScPrint2Config.expression_encoder must be one of {EXPRESSION_ENCODERS}, "
                f"got {self.expression_encoder!r}"
            )
        if self.mvc_decoder is not None and self.mvc_decoder not in MVC_STYLES:
            raise ValueError(
                f"ScPrint2Config.mvc_decoder must be None or one of {MVC_STYLES}, got {self.mvc_decoder!r}"
            )
        if self.mvc_decoder is not None and self.cell_specific_blocks:
            raise ValueError(
                "ScPrint2Config: an MVC decoder cannot be combined with cell_specific_blocks "
                "(as in the original)"
            )
        self.classifier_layers = [int(w) for w in self.classifier_layers]
        if any(w < 1 for w in self.classifier_layers):
            raise ValueError(
                f"ScPrint2Config.classifier_layers must be positive widths, got {self.classifier_layers!r}"
            )
        if self.gene_adapter and not self.freeze_gene_embeddings:
            raise ValueError(
                "ScPrint2Config.gene_adapter needs freeze_gene_embeddings=True (the adapter trains "
                "on a frozen gene table, as in the original)"
            )
        if self.compress_class_dim is not None:
            self.compress_class_dim = {str(k): int(v) for k, v in self.compress_class_dim.items()}
            bad = {k: v for k, v in self.compress_class_dim.items() if v < 1}
            if bad:
                raise ValueError(
                    f"ScPrint2Config.compress_class_dim needs positive sizes, got {bad}"
                )

    @property
    def head_dim(self) -> int:
        """Width of one attention head of the gene transformer."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads of the gene transformer."""
        return self.n_heads if self.n_heads_kv is None else self.n_heads_kv

    @property
    def cell_dim(self) -> int:
        """Width of the cell tokens: ``d_model_cell`` with cell-specific blocks, else ``d_model``."""
        return self.d_model_cell if self.cell_specific_blocks else self.d_model

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary, with ``"generation": 2`` (read by :func:`config_from_dict`)."""
        return {"generation": 2, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScPrint2Config:
        """Build from a dictionary (a ``"generation": 2`` entry is accepted)."""
        values = dict(values)
        generation = values.pop("generation", 2)
        if generation != 2:
            raise ValueError(
                f"ScPrint2Config describes generation 2, got generation={generation!r}"
            )
        return _from_dict(cls, values)

    def replace(self, **changes: Any) -> ScPrint2Config:
        """A copy with some fields changed (validated)."""
        return _replace(self, changes)


def config_from_dict(values: dict[str, Any]) -> ModelConfig | ScPrint2Config:
    """A :class:`ScPrint2Config` when ``values["generation"] == 2``, else a :class:`ModelConfig`."""
    if values.get("generation", 1) == 2:
        return ScPrint2Config.from_dict(values)
    return ModelConfig.from_dict({k: v for k, v in values.items() if k != "generation"})


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
